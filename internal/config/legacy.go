package config

import (
	"strconv"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"
)

// upgradeLegacyAbortPercent rewrites the pre-1.1 Istio form of an abort fault's share,
// `abort: {percent: 50}`, into today's `abort: {percentage: {value: 50}}` in the YAML tree
// before decoding: istio.io/api no longer has the field, but real YAML (seed 001) still uses
// it. Lines are kept, so errors still point at what the user wrote. It returns the field of
// an abort that sets both forms, "" if none does.
func upgradeLegacyAbortPercent(spec *yaml.Node) (conflict string) {
	_, http := lookup(deref(spec), "http")
	http = deref(http)
	if http == nil || http.Kind != yaml.SequenceNode {
		return ""
	}
	for i, route := range http.Content {
		_, fault := lookup(deref(route), "fault")
		_, abort := lookup(deref(fault), "abort")
		abort = deref(abort)
		if abort == nil || abort.Kind != yaml.MappingNode {
			continue
		}
		key, value := lookup(abort, "percent")
		if key == nil {
			continue
		}
		if k, _ := lookup(abort, "percentage"); k != nil {
			return "spec.http[" + strconv.Itoa(i) + "].fault.abort.percent"
		}
		key.Value = "percentage"
		*value = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: value.Line, Column: value.Column,
			Content: []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: "value", Line: value.Line, Column: value.Column}, {Kind: value.Kind, Tag: value.Tag, Value: value.Value, Line: value.Line, Column: value.Column}}}
	}
	return ""
}

// normalizeDurations rewrites, in the YAML tree of a message of type desc, every
// google.protobuf.Duration value written as a Go duration ("200ms", "1h30m") into the form
// protojson reads ("0.2s"). Istio's own decoder accepts both, and its docs use both; protojson
// alone would reject the first. Values that are not Go durations are left for protojson to
// report.
func normalizeDurations(n *yaml.Node, desc protoreflect.MessageDescriptor) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	fields := desc.Fields()
	for i := 0; i+1 < len(n.Content); i += 2 {
		name := n.Content[i].Value
		fd := fields.ByJSONName(name)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(name))
		}
		if fd == nil || fd.Kind() != protoreflect.MessageKind {
			continue
		}
		value := deref(n.Content[i+1])
		switch {
		case fd.IsMap():
			if vd := fd.MapValue(); vd.Kind() == protoreflect.MessageKind && value != nil && value.Kind == yaml.MappingNode {
				for j := 1; j < len(value.Content); j += 2 {
					normalizeValue(value.Content[j], vd.Message())
				}
			}
		case fd.IsList():
			if value != nil && value.Kind == yaml.SequenceNode {
				for _, item := range value.Content {
					normalizeValue(item, fd.Message())
				}
			}
		default:
			normalizeValue(value, fd.Message())
		}
	}
}

func normalizeValue(n *yaml.Node, desc protoreflect.MessageDescriptor) {
	n = deref(n)
	if n == nil {
		return
	}
	if desc.FullName() == "google.protobuf.Duration" {
		if n.Kind == yaml.ScalarNode {
			if d, err := time.ParseDuration(n.Value); err == nil {
				n.Value = strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
				n.Tag = "!!str"
			}
		}
		return
	}
	normalizeDurations(n, desc)
}

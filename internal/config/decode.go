package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"
	kjson "sigs.k8s.io/json"
)

// The typed decoders read JSON, so a YAML value is converted first. The JSON has a line per
// mapping key and list item: the line of a decoder error then names the YAML node (and its
// path) it came from, without guessing from field names.

// jsonLine is where one line of the generated JSON came from.
type jsonLine struct {
	path   string     // "spec.http[0].match[0]"
	key    *yaml.Node // the mapping key, or the list item: the line reported
	value  *yaml.Node
	parent int    // index of the enclosing line; -1 for the first
	field  string // the mapping key; "" for a list item
}

// maxJSONNodes bounds the YAML nodes one conversion may visit: aliases can make a small file
// expand exponentially ("billion laughs").
const maxJSONNodes = 1 << 20

type jsonWriter struct {
	buf    []byte
	lines  []jsonLine
	budget int
	err    *Error // File and Object are filled in by the caller
}

// toJSON converts value (under key, at path) to JSON; lines[i] describes line i+1 of it.
func toJSON(key, value *yaml.Node, path string) ([]byte, []jsonLine, *Error) {
	w := &jsonWriter{budget: maxJSONNodes}
	w.lines = []jsonLine{{path: path, key: key, value: value, parent: -1}}
	w.value(value, 0)
	return w.buf, w.lines, w.err
}

func (w *jsonWriter) fail(n *yaml.Node, path, format string, args ...any) {
	if w.err == nil {
		w.err = &Error{Line: n.Line, Field: path, Msg: fmt.Sprintf(format, args...)}
	}
}

// value writes n, the value of lines[at].
func (w *jsonWriter) value(n *yaml.Node, at int) {
	path, key := w.lines[at].path, w.lines[at].key
	if w.budget--; w.budget < 0 {
		w.fail(w.lines[0].key, w.lines[0].path, "too large after expanding aliases")
	}
	if w.err != nil {
		return
	}
	switch n = deref(n); {
	case n == nil:
		w.buf = append(w.buf, "null"...)
	case n.Kind == yaml.MappingNode:
		w.buf = append(w.buf, '{')
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content) && w.err == nil; i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			name := keyName(k)
			p := path + "." + name
			switch kn := deref(k); {
			case kn == nil || kn.Kind != yaml.ScalarNode:
				w.fail(k, path, "a mapping key must be a string")
				return
			case kn.ShortTag() == "!!merge":
				// sigs.k8s.io/yaml would merge; silently reading less would be worse.
				w.fail(k, path, "merge keys (<<) are not supported")
				return
			}
			if line, dup := seen[name]; dup {
				w.fail(k, p, "duplicate key (first at line %d)", line)
				return
			}
			seen[name] = k.Line
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.newline(jsonLine{path: p, key: k, value: v, parent: at, field: name})
			w.buf = appendJSONString(w.buf, name)
			w.buf = append(w.buf, ':')
			w.value(v, len(w.lines)-1)
		}
		w.buf = append(w.buf, '}')
	case n.Kind == yaml.SequenceNode:
		w.buf = append(w.buf, '[')
		for i, item := range n.Content {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			w.newline(jsonLine{path: fmt.Sprintf("%s[%d]", path, i), key: item, value: item, parent: at})
			w.value(item, len(w.lines)-1)
		}
		w.buf = append(w.buf, ']')
	case n.Kind == yaml.ScalarNode:
		w.scalar(n, path)
	default:
		w.fail(key, path, "unsupported YAML node")
	}
}

func (w *jsonWriter) newline(l jsonLine) {
	w.buf = append(w.buf, '\n')
	w.lines = append(w.lines, l)
}

// scalar writes n as YAML 1.2 resolved it (yaml.v3): "yes" and "on" stay strings.
func (w *jsonWriter) scalar(n *yaml.Node, path string) {
	switch tag := n.ShortTag(); tag {
	case "!!null":
		w.buf = append(w.buf, "null"...)
	case "!!bool", "!!int", "!!float":
		var v any
		if err := n.Decode(&v); err != nil {
			w.fail(n, path, "invalid %s %q", tag[2:], n.Value)
			return
		}
		if f, ok := v.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
			w.fail(n, path, "%s is not a finite number", n.Value)
			return
		}
		b, _ := json.Marshal(v) // bool, integer or finite float: cannot fail
		w.buf = append(w.buf, b...)
	default: // !!str, !!timestamp, !!binary and local tags: the text as written
		w.buf = appendJSONString(w.buf, n.Value)
	}
}

func appendJSONString(buf []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(buf, b...)
}

// decodeProto decodes value (under key, at path) into m with protojson, which rejects unknown
// fields, and reports errors on d.
func (d *doc) decodeProto(key, value *yaml.Node, path string, m proto.Message) {
	normalizeDurations(value, m.ProtoReflect().Descriptor())
	data, lines, ok := d.toJSON(key, value, path)
	if !ok {
		return
	}
	err := protojson.UnmarshalOptions{}.Unmarshal(data, m)
	if err == nil {
		return
	}
	// protojson errors read "proto: (line L:C): msg" (sometimes with a non-breaking space).
	match := protoErrPos.FindStringSubmatch(err.Error())
	if match == nil {
		d.fail(key.Line, path, "%s", strings.TrimSpace(strings.TrimPrefix(err.Error(), "proto:")))
		return
	}
	i, _ := strconv.Atoi(match[1])
	i = min(max(i-1, 0), len(lines)-1)
	l, msg := lines[i], match[2]
	switch {
	case strings.HasPrefix(msg, "unknown field"):
		msg = "unknown field"
	case strings.HasPrefix(msg, "unexpected token") || strings.HasPrefix(msg, "invalid value"):
		if want := protoWant(m.ProtoReflect().Descriptor(), lines, i); want != "" {
			msg = "invalid value: want " + want + ", got " + describeNode(l.value)
		}
	}
	d.fail(l.key.Line, l.path, "%s", msg)
}

var protoErrPos = regexp.MustCompile(`\(line (\d+):\d+\):\s*(.*)$`)

// decodeStrict decodes value (under key, at path) into v like Kubernetes does
// (sigs.k8s.io/json: case-sensitive, unknown and duplicate fields rejected) and reports errors
// on d. It returns whether decoding succeeded.
func (d *doc) decodeStrict(key, value *yaml.Node, path string, v any) bool {
	data, lines, ok := d.toJSON(key, value, path)
	if !ok {
		return false
	}
	strict, err := kjson.UnmarshalStrict(data, v)
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr):
		l := typeErrorLine(data, lines, typeErr)
		d.fail(l.key.Line, l.path, "invalid value: want %s, got %s", describeType(typeErr.Type), describeNode(l.value))
		return false
	case err != nil: // from a type's own UnmarshalJSON (IntOrString, Quantity, Time): no position
		d.fail(key.Line, path, "invalid value: %s", strings.TrimPrefix(err.Error(), "json: "))
		return false
	}
	for _, e := range strict {
		var fe kjson.FieldError
		if !errors.As(e, &fe) {
			d.fail(key.Line, path, "%v", e)
			continue
		}
		line := key.Line
		if n := FindPath(value, fe.FieldPath()); n != nil {
			line = n.Line
		}
		// e reads `unknown field "rules[0].foo"` or `duplicate field "..."`.
		msg := strings.TrimSuffix(e.Error(), " "+strconv.Quote(fe.FieldPath()))
		d.fail(line, path+"."+fe.FieldPath(), "%s", msg)
	}
	return len(strict) == 0
}

func (d *doc) toJSON(key, value *yaml.Node, path string) ([]byte, []jsonLine, bool) {
	data, lines, err := toJSON(key, value, path)
	if err != nil {
		d.fail(err.Line, err.Field, "%s", err.Msg)
		return nil, nil, false
	}
	return data, lines, true
}

// typeErrorLine finds the line of a type error. Its Offset is just past the offending token,
// which sits on its key's line, unless the error came from a value's own UnmarshalJSON
// (IntOrString): then Offset is within that value. So the line is trusted only if its value
// has the JSON type the error names; else it is the first such value under the error's last
// field name (Field has no indexes, and Go names of embedded structs).
func typeErrorLine(data []byte, lines []jsonLine, e *json.UnmarshalTypeError) jsonLine {
	i := bytes.Count(data[:min(max(e.Offset-1, 0), int64(len(data)))], []byte("\n"))
	if l := lines[min(i, len(lines)-1)]; strings.HasPrefix(e.Value, jsonKind(l.value)) {
		return l
	}
	name := e.Field[strings.LastIndexByte(e.Field, '.')+1:]
	for _, l := range lines {
		if l.field == name && strings.HasPrefix(e.Value, jsonKind(l.value)) {
			return l
		}
	}
	return lines[0]
}

// jsonKind names n's JSON type as encoding/json errors do: "array", "object", "string"...
func jsonKind(n *yaml.Node) string {
	switch n = deref(n); {
	case n == nil:
		return "null"
	case n.Kind == yaml.MappingNode:
		return "object"
	case n.Kind == yaml.SequenceNode:
		return "array"
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!bool":
		return "bool"
	case "!!int", "!!float":
		return "number"
	}
	return "string"
}

// protoWant describes what the field of lines[i] holds, walking md along the path; "" if the
// path leaves the schema.
func protoWant(md protoreflect.MessageDescriptor, lines []jsonLine, i int) string {
	var chain []jsonLine
	for ; i > 0; i = lines[i].parent {
		chain = append(chain, lines[i])
	}
	var fd protoreflect.FieldDescriptor
	elem := false // whether the path is at an item of list or map fd
	for j := len(chain) - 1; j >= 0; j-- {
		if fd != nil && !elem && (fd.IsList() || fd.IsMap()) {
			elem = true
			continue
		}
		if fd != nil {
			if fd.IsMap() {
				fd = fd.MapValue()
			}
			if md = fd.Message(); md == nil {
				return ""
			}
		}
		name := chain[j].field
		if fd = md.Fields().ByJSONName(name); fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(name))
		}
		if fd == nil {
			return ""
		}
		elem = false
	}
	if fd == nil {
		return "a mapping"
	}
	return describeField(fd, elem)
}

// describeField says what fd (its items if elem) holds in YAML terms: "a list", "a string".
func describeField(fd protoreflect.FieldDescriptor, elem bool) string {
	switch {
	case !elem && fd.IsList():
		return "a list"
	case !elem && fd.IsMap():
		return "a mapping"
	case fd.IsMap():
		fd = fd.MapValue()
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		m := fd.Message()
		switch {
		case m.FullName() == "google.protobuf.Duration":
			return `a duration like "5s"`
		case m.FullName().Parent() == "google.protobuf" && strings.HasSuffix(string(m.Name()), "Value") && m.Fields().ByName("value") != nil:
			return describeField(m.Fields().ByName("value"), false) // BoolValue and friends
		}
		return "a mapping"
	case protoreflect.EnumKind:
		var names []string
		for i, vals := 0, fd.Enum().Values(); i < vals.Len(); i++ {
			names = append(names, string(vals.Get(i).Name()))
		}
		return "one of " + strings.Join(names, ", ")
	case protoreflect.BoolKind:
		return "a boolean"
	case protoreflect.StringKind, protoreflect.BytesKind:
		return "a string"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "a number"
	}
	return "an integer"
}

// describeType says what a Go type holds in YAML terms.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a string" // base64
		}
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	}
	return t.String()
}

// describeNode shows what the YAML has: a scalar as written, else its shape.
func describeNode(n *yaml.Node) string {
	switch n = deref(n); {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.ShortTag() == "!!str":
		s := []rune(n.Value)
		if len(s) > 40 {
			return strconv.Quote(string(s[:37]) + "...")
		}
		return strconv.Quote(n.Value)
	}
	return n.Value
}

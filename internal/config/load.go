package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1alpha2 "sigs.k8s.io/gateway-api/apis/v1alpha2"
)

// LoadFiles reads every path, a file or a folder (its *.yaml and *.yml files in name order,
// not recursive; hidden files, such as editors' lock files, are skipped), and returns all
// their objects in order. A file reached twice (a folder and a file in it) is read once.
//
// It is all or nothing: on any problem it returns nil and an errors.Join of every problem of
// every file, each an *Error, except I/O errors, which are returned as the os package reports
// them (they name the path).
func LoadFiles(paths ...string) (*Set, error) {
	set := &Set{}
	var errs []error
	read := map[string]bool{}
	for _, p := range paths {
		files, err := yamlFiles(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range files {
			if read[filepath.Clean(f)] {
				continue
			}
			read[filepath.Clean(f)] = true
			data, err := os.ReadFile(f)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			s, err := Parse(f, data)
			if err != nil {
				errs = append(errs, unjoin(err)...)
				continue
			}
			set.Merge(s)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return set, nil
}

// yamlFiles lists path itself if it is a file, else the YAML files in it.
func yamlFiles(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil || !fi.IsDir() {
		return []string{path}, err
	}
	entries, err := os.ReadDir(path) // sorted by name
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if ext := filepath.Ext(name); !e.IsDir() && !strings.HasPrefix(name, ".") && (ext == ".yaml" || ext == ".yml") {
			files = append(files, filepath.Join(path, name))
		}
	}
	return files, nil
}

// unjoin flattens an errors.Join result so that joined loads stay one flat list.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Merge appends o's objects to s, keeping their order (o may be nil).
func (s *Set) Merge(o *Set) {
	if o == nil {
		return
	}
	s.Meshes = append(s.Meshes, o.Meshes...)
	s.VirtualServices = append(s.VirtualServices, o.VirtualServices...)
	s.DestinationRules = append(s.DestinationRules, o.DestinationRules...)
	s.HTTPRoutes = append(s.HTTPRoutes, o.HTTPRoutes...)
	s.GRPCRoutes = append(s.GRPCRoutes, o.GRPCRoutes...)
	s.TCPRoutes = append(s.TCPRoutes, o.TCPRoutes...)
	s.Services = append(s.Services, o.Services...)
	s.Lanes = append(s.Lanes, o.Lanes...)
	s.ServiceEntries = append(s.ServiceEntries, o.ServiceEntries...)
	s.Gateways = append(s.Gateways, o.Gateways...)
	s.LaneEntries = append(s.LaneEntries, o.LaneEntries...)
}

// Parse reads the YAML documents of one file's data (file names it in errors; empty documents
// are skipped) and returns their objects in order. It is all or nothing: on any problem it
// returns nil and an errors.Join of *Error values, one per problem, naming file, line, object
// and field: "routing.yaml:17: VirtualService/goods: spec.http[0].match[0].foo: unknown field".
func Parse(file string, data []byte) (*Set, error) {
	set := &Set{}
	var errs []error
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The parser cannot resynchronise after a syntax error: the first one ends the file.
			errs = append(errs, syntaxError(file, data, err))
			break
		}
		root := deref(&doc)
		if root == nil || root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			continue // "---" alone, or only comments
		}
		errs = append(errs, parseDoc(set, file, root)...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return set, nil
}

// syntaxError turns a yaml.v3 error into an *Error on the line that breaks the file.
func syntaxError(file string, data []byte, err error) *Error {
	msg := yamlErrLine.ReplaceAllString(err.Error(), "")
	return &Error{File: file, Line: syntaxErrorLine(data, msg), Msg: "invalid YAML: " + msg}
}

var yamlErrLine = regexp.MustCompile(`^yaml: (line \d+: )?`)

// syntaxErrorLine finds the first line whose addition makes data fail with msg. yaml.v3 reports
// the line where the enclosing block starts (the parser's context mark), not the bad line,
// and no line at all for bad characters; prefixes ending at line boundaries parse cleanly up
// to the bad line, so a binary search over them finds it in O(log lines) parses.
func syntaxErrorLine(data []byte, msg string) int {
	var ends []int // ends[i] is the end of line i+1
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] < len(data) {
		ends = append(ends, len(data))
	}
	fails := func(lines int) bool { // whether the first lines lines fail with msg
		dec := yaml.NewDecoder(bytes.NewReader(data[:ends[lines-1]]))
		for {
			var n yaml.Node
			if err := dec.Decode(&n); err != nil {
				return !errors.Is(err, io.EOF) && yamlErrLine.ReplaceAllString(err.Error(), "") == msg
			}
		}
	}
	lo, hi := 0, len(ends) // no lines parse; all lines fail
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; fails(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// doc is one document being read; its errors accumulate so that one pass reports them all.
type doc struct {
	src  Source
	errs []error
}

func (d *doc) fail(line int, field, format string, args ...any) {
	obj := ""
	if d.src.Name != "" {
		obj = d.src.Kind + "/" + d.src.Name
	}
	d.errs = append(d.errs, &Error{File: d.src.File, Line: line, Object: obj, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// parseDoc reads the document whose root node is root into set and returns its errors.
func parseDoc(set *Set, file string, root *yaml.Node) []error {
	d := &doc{src: Source{File: file, Line: root.Line}}
	if root.Kind != yaml.MappingNode {
		d.fail(root.Line, "", "a document must be a mapping with apiVersion, kind, metadata and spec")
		return d.errs
	}
	if len(root.Content) > 0 {
		d.src.Line = root.Content[0].Line
	}
	apiVersion, _ := d.str(root, "apiVersion")
	kind, kindLine := d.str(root, "kind")
	if len(d.errs) > 0 {
		return d.errs
	}
	d.src.Kind = kind
	// Read leniently first so that even a rejected kind names its object.
	if _, meta := lookup(root, "metadata"); meta != nil {
		if _, name := lookup(meta, "name"); deref(name) != nil && deref(name).Kind == yaml.ScalarNode {
			d.src.Name = deref(name).Value
		}
	}
	if why := notRead(apiVersion, kind); why != "" {
		d.fail(kindLine, "", "%s", why)
		return d.errs
	}

	var metaKey, meta, specKey, spec *yaml.Node
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		name := keyName(k)
		if line, dup := seen[name]; dup {
			d.fail(k.Line, name, "duplicate key (first at line %d)", line)
			continue
		}
		seen[name] = k.Line
		switch name {
		case "apiVersion", "kind", "status": // status is the cluster's business
		case "metadata":
			metaKey, meta = k, v
		case "spec":
			specKey, spec = k, v
		default:
			d.fail(k.Line, name, "unknown field")
		}
	}

	if meta == nil {
		d.fail(d.src.Line, "metadata.name", "required")
	} else if m := (metav1.ObjectMeta{}); d.decodeStrict(metaKey, meta, "metadata", &m) {
		if m.Name == "" {
			line := metaKey.Line
			if k, _ := lookup(meta, "name"); k != nil {
				line = k.Line
			}
			d.fail(line, "metadata.name", "required")
		}
		d.src.Name, d.src.Namespace = m.Name, m.Namespace
	}

	if n := deref(spec); n == nil || n.ShortTag() == "!!null" {
		spec = nil // "spec:" with nothing is no spec
	}
	switch kind {
	case "VirtualService":
		s := &networking.VirtualService{}
		if spec != nil {
			if field := upgradeLegacyAbortPercent(spec); field != "" {
				d.fail(specKey.Line, field, "set either the legacy percent or percentage, not both")
			}
			d.decodeProto(specKey, spec, "spec", s)
		}
		set.VirtualServices = append(set.VirtualServices, &Object[*networking.VirtualService]{d.src, s, root})
	case "Gateway":
		s := &networking.Gateway{}
		if spec != nil {
			d.decodeProto(specKey, spec, "spec", s)
		}
		set.Gateways = append(set.Gateways, &Object[*networking.Gateway]{d.src, s, root})
	case "ServiceEntry":
		s := &networking.ServiceEntry{}
		if spec != nil {
			d.decodeProto(specKey, spec, "spec", s)
		}
		set.ServiceEntries = append(set.ServiceEntries, &Object[*networking.ServiceEntry]{d.src, s, root})
	case "DestinationRule":
		s := &networking.DestinationRule{}
		if spec != nil {
			d.decodeProto(specKey, spec, "spec", s)
		}
		set.DestinationRules = append(set.DestinationRules, &Object[*networking.DestinationRule]{d.src, s, root})
	case "HTTPRoute":
		s := &gatewayv1.HTTPRouteSpec{}
		if spec != nil {
			d.decodeStrict(specKey, spec, "spec", s)
		}
		set.HTTPRoutes = append(set.HTTPRoutes, &Object[*gatewayv1.HTTPRouteSpec]{d.src, s, root})
	case "GRPCRoute":
		s := &gatewayv1.GRPCRouteSpec{}
		if spec != nil {
			d.decodeStrict(specKey, spec, "spec", s)
		}
		set.GRPCRoutes = append(set.GRPCRoutes, &Object[*gatewayv1.GRPCRouteSpec]{d.src, s, root})
	case "TCPRoute":
		s := &gatewayv1alpha2.TCPRouteSpec{}
		if spec != nil {
			d.decodeStrict(specKey, spec, "spec", s)
		}
		set.TCPRoutes = append(set.TCPRoutes, &Object[*gatewayv1alpha2.TCPRouteSpec]{d.src, s, root})
	case "Service":
		s := &corev1.ServiceSpec{}
		if spec != nil {
			d.decodeStrict(specKey, spec, "spec", s)
		}
		set.Services = append(set.Services, &Object[*corev1.ServiceSpec]{d.src, s, root})
	case "Mesh":
		s := &Mesh{}
		if spec != nil {
			d.decodeStrict(specKey, spec, "spec", s)
		}
		set.Meshes = append(set.Meshes, &Object[*Mesh]{d.src, s, root})
	case "Lane":
		s := &Lane{}
		if spec != nil {
			d.decodeStrict(specKey, spec, "spec", s)
		}
		set.Lanes = append(set.Lanes, &Object[*Lane]{d.src, s, root})
	case "LaneEntry":
		s := &LaneEntry{}
		if spec != nil {
			d.decodeStrict(specKey, spec, "spec", s)
		}
		set.LaneEntries = append(set.LaneEntries, &Object[*LaneEntry]{d.src, s, root})
	}
	return d.errs // a Set with errors is dropped whole by Parse
}

// str returns the string at key of root and its line, reporting it if absent or not a string.
func (d *doc) str(root *yaml.Node, key string) (string, int) {
	k, v := lookup(root, key)
	switch v = deref(v); {
	case k == nil:
		d.fail(d.src.Line, key, "required")
	case v == nil || v.Kind != yaml.ScalarNode || v.Value == "":
		d.fail(k.Line, key, "must be a non-empty string")
	default:
		return v.Value, k.Line
	}
	return "", 0
}

// notRead says why a document of apiVersion and kind is not read, "" if it is. Only the kinds
// handled in parseDoc may return "".
func notRead(apiVersion, kind string) string {
	group, version, ok := strings.Cut(apiVersion, "/")
	if !ok {
		group, version = "", apiVersion // the core group: "v1"
	}
	switch {
	case group == "networking.istio.io" && (version == "v1alpha3" || version == "v1beta1" || version == "v1"):
		// The three versions share one schema (istio.io/api/networking/v1alpha3).
		if kind == "VirtualService" || kind == "DestinationRule" || kind == "ServiceEntry" || kind == "Gateway" {
			return ""
		}
		return "networking.istio.io " + kind + " is not supported yet"
	case group == "gateway.networking.k8s.io" && (version == "v1" || version == "v1beta1" || version == "v1alpha2"):
		// Each kind at the versions whose schema the decoder reads (GRPCRoute v1alpha2 is
		// v1's; TCPRoute has no v1 in the gateway-api module this builds with).
		versions := map[string][]string{
			"HTTPRoute": {"v1", "v1beta1"},
			"GRPCRoute": {"v1", "v1alpha2"},
			"TCPRoute":  {"v1alpha2"},
		}[kind]
		if slices.Contains(versions, version) {
			return ""
		}
		if len(versions) > 0 {
			return fmt.Sprintf("%s %s is not supported yet; use gateway.networking.k8s.io/%s", apiVersion, kind, versions[0])
		}
		return "gateway.networking.k8s.io " + kind + " is not supported yet"
	case apiVersion == "v1" && kind == "Service":
		return ""
	case apiVersion == "swimlane.dev/v1alpha1":
		if kind == "Mesh" || kind == "Lane" || kind == "LaneEntry" {
			return ""
		}
		return "unknown kind " + apiVersion + " " + kind + " (Swimlane's kinds: Mesh, Lane, LaneEntry)"
	case group == "apps" || group == "batch" || apiVersion == "v1" && (kind == "Pod" || kind == "ReplicationController"):
		return "kind " + kind + " is not read in local mode: declare workloads in the Mesh file"
	}
	return "unknown kind " + apiVersion + " " + kind
}

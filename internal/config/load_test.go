package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// seed is the demo this project must read unchanged; the repo sits beside shared/.
const seed = "../../../shared/examples/seed-swimlane-demo/"

// each calls fn for every object of set, in Set field order.
func each(set *Set, fn func(Source, *yaml.Node)) {
	for _, o := range set.Meshes {
		fn(o.Source, o.Node)
	}
	for _, o := range set.VirtualServices {
		fn(o.Source, o.Node)
	}
	for _, o := range set.DestinationRules {
		fn(o.Source, o.Node)
	}
	for _, o := range set.HTTPRoutes {
		fn(o.Source, o.Node)
	}
	for _, o := range set.Services {
		fn(o.Source, o.Node)
	}
}

// sources lists every object of set as "file:line: Kind/name".
func sources(set *Set) []string {
	var out []string
	each(set, func(s Source, _ *yaml.Node) { out = append(out, s.String()) })
	return out
}

func mustLoad(t *testing.T, paths ...string) *Set {
	t.Helper()
	set, err := LoadFiles(paths...)
	if err != nil {
		t.Fatalf("LoadFiles: %v", err)
	}
	return set
}

func TestLoadFilesSeed(t *testing.T) {
	istio, gw := seed+"istio-api/", seed+"gateway-api/"
	tests := []struct {
		name string
		give []string
		want []string
	}{
		{
			name: "istio routing",
			give: []string{istio + "goods-istio-routing.yaml", istio + "pricing-istio-routing.yaml"},
			want: []string{
				istio + "goods-istio-routing.yaml:1: VirtualService/goods",
				istio + "pricing-istio-routing.yaml:1: VirtualService/pricing",
				istio + "goods-istio-routing.yaml:31: DestinationRule/goods",
				istio + "pricing-istio-routing.yaml:23: DestinationRule/pricing",
			},
		},
		{
			name: "gateway api routing",
			give: []string{gw + "goods-istio-routing.yaml", gw + "pricing-istio-routing.yaml"},
			want: []string{
				gw + "goods-istio-routing.yaml:1: HTTPRoute/goods",
				gw + "pricing-istio-routing.yaml:1: HTTPRoute/pricing",
				gw + "goods-istio-routing.yaml:32: Service/goods-service-main",
				gw + "goods-istio-routing.yaml:46: Service/goods-service-dev-feature1",
				gw + "goods-istio-routing.yaml:60: Service/goods-service-dev-feature2",
				gw + "pricing-istio-routing.yaml:24: Service/pricing-service-main",
				gw + "pricing-istio-routing.yaml:38: Service/pricing-service-dev-feature1",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sources(mustLoad(t, tt.give...)); !slices.Equal(got, tt.want) {
				t.Errorf("objects:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestLoadFilesSeedIstioContent(t *testing.T) {
	set := mustLoad(t, seed+"istio-api/goods-istio-routing.yaml")
	vs, dr := set.VirtualServices[0], set.DestinationRules[0]

	if got := vs.Spec.GetHosts(); !slices.Equal(got, []string{"goods-service"}) {
		t.Errorf("hosts = %q", got)
	}
	http := vs.Spec.GetHttp()
	if len(http) != 3 {
		t.Fatalf("%d http routes, want 3", len(http))
	}
	for i, want := range []struct{ regex, subset string }{
		{".*swimlane=dev-feature1.*", "dev-feature1"},
		{".*swimlane=dev-feature2.*", "dev-feature2"},
		{"", "main"},
	} {
		var regex string
		if m := http[i].GetMatch(); len(m) > 0 {
			regex = m[0].GetHeaders()["baggage"].GetRegex()
		}
		dest := http[i].GetRoute()[0].GetDestination()
		if regex != want.regex || dest.GetSubset() != want.subset || dest.GetHost() != "goods-service" {
			t.Errorf("http[%d]: baggage regex %q, destination %s/%s; want %q, goods-service/%s",
				i, regex, dest.GetHost(), dest.GetSubset(), want.regex, want.subset)
		}
	}

	var subsets []string
	for _, s := range dr.Spec.GetSubsets() {
		subsets = append(subsets, s.GetName()+"="+s.GetLabels()["swimlane"])
	}
	if want := []string{"main=main", "dev-feature1=dev-feature1", "dev-feature2=dev-feature2"}; dr.Spec.GetHost() != "goods-service" || !slices.Equal(subsets, want) {
		t.Errorf("DestinationRule host %q subsets %q", dr.Spec.GetHost(), subsets)
	}

	// The kept YAML tree lets later errors point at a field (Object.Errorf uses FindPath).
	err := vs.Errorf("spec.http[1].route[0].destination.subset", "no subset %q", "dev-feature2")
	want := seed + `istio-api/goods-istio-routing.yaml:24: VirtualService/goods: spec.http[1].route[0].destination.subset: no subset "dev-feature2"`
	if err.Error() != want {
		t.Errorf("Errorf:\n got %s\nwant %s", err, want)
	}
	if vs.Node.Kind != yaml.MappingNode || dr.Node.Line != 31 {
		t.Errorf("Node: kind %v line %d", vs.Node.Kind, dr.Node.Line)
	}
}

func TestLoadFilesSeedGatewayAPIContent(t *testing.T) {
	set := mustLoad(t, seed+"gateway-api/goods-istio-routing.yaml")
	route := set.HTTPRoutes[0].Spec

	if len(route.ParentRefs) != 1 {
		t.Fatalf("%d parentRefs", len(route.ParentRefs))
	}
	p := route.ParentRefs[0]
	// group: "" must survive as an explicit empty group (the core group), not as unset.
	if p.Group == nil || *p.Group != "" || p.Kind == nil || *p.Kind != "Service" || p.Name != "goods-service" {
		t.Errorf("parentRef = %+v", p)
	}
	if len(route.Rules) != 3 {
		t.Fatalf("%d rules, want 3", len(route.Rules))
	}
	h := route.Rules[0].Matches[0].Headers[0]
	if h.Type == nil || *h.Type != gatewayv1.HeaderMatchRegularExpression || h.Name != "baggage" || h.Value != ".*swimlane=dev-feature1.*" {
		t.Errorf("rules[0] header match = %+v", h)
	}
	for i, want := range []string{"goods-service-dev-feature1", "goods-service-dev-feature2", "goods-service-main"} {
		b := route.Rules[i].BackendRefs[0]
		if b.Name != gatewayv1.ObjectName(want) || b.Port == nil || *b.Port != 50051 {
			t.Errorf("rules[%d].backendRefs[0] = %s:%v, want %s:50051", i, b.Name, b.Port, want)
		}
	}
	if len(route.Rules[2].Matches) != 0 {
		t.Errorf("rules[2] has matches %+v", route.Rules[2].Matches)
	}

	svc := set.Services[0].Spec
	wantSel := map[string]string{"app": "goods", "swimlane": "main"}
	if !reflect.DeepEqual(svc.Selector, wantSel) || len(svc.Ports) != 1 || svc.Ports[0].Port != 50051 ||
		svc.Ports[0].Protocol != corev1.ProtocolTCP || svc.Ports[0].TargetPort.String() != "goods-port" {
		t.Errorf("Service spec = %+v", svc)
	}
}

// The seed's Deployments are Kubernetes' business; local mode takes workloads from the Mesh.
func TestLoadFilesSeedWorkloadsRejected(t *testing.T) {
	file := seed + "istio-api/goods.yaml"
	set, err := LoadFiles(file)
	const msg = ": kind Deployment is not read in local mode: declare workloads in the Mesh file"
	want := file + ":2: Deployment/goods-deploy-main" + msg + "\n" +
		file + ":44: Deployment/goods-deploy-dev-feature1" + msg + "\n" +
		file + ":83: Deployment/goods-deploy-dev-feature2" + msg
	if set != nil || err == nil || err.Error() != want {
		t.Fatalf("LoadFiles = %v, error:\n%v\nwant error:\n%s", set, err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 2 || e.Object != "Deployment/goods-deploy-main" {
		t.Errorf("first *Error = %+v", e)
	}
}

func TestParseIstioVersions(t *testing.T) {
	tests := []struct {
		name string
		give string // apiVersion
	}{
		{name: "v1alpha3", give: "networking.istio.io/v1alpha3"},
		{name: "v1beta1", give: "networking.istio.io/v1beta1"},
		{name: "v1", give: "networking.istio.io/v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Parse("r.yaml", []byte(`
apiVersion: `+tt.give+`
kind: VirtualService
metadata: {name: goods, namespace: shop}
spec:
  hosts: [goods]
  http:
  - route:
    - destination: {host: goods, subset: main}
---
apiVersion: `+tt.give+`
kind: DestinationRule
metadata: {name: goods}
spec:
  host: goods
  subsets: [{name: main, labels: {swimlane: main}}]
`))
			if err != nil {
				t.Fatal(err)
			}
			vs, dr := set.VirtualServices[0], set.DestinationRules[0]
			if vs.Namespace != "shop" || vs.Line != 2 || vs.Spec.GetHttp()[0].GetRoute()[0].GetDestination().GetSubset() != "main" {
				t.Errorf("VirtualService %s (namespace %q) = %v", vs.Source, vs.Namespace, vs.Spec)
			}
			if dr.Line != 11 || dr.Spec.GetSubsets()[0].GetLabels()["swimlane"] != "main" {
				t.Errorf("DestinationRule %s = %v", dr.Source, dr.Spec)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		give string
		want []string
	}{
		{name: "empty file", give: "", want: nil},
		{name: "only comments and separators", give: "# nothing\n---\n---\n", want: nil},
		{
			name: "trailing separator and status",
			give: "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  selector: {app: a}\nstatus:\n  loadBalancer: {}\n---\n",
			want: []string{"f.yaml:1: Service/a"},
		},
		{
			name: "leading comment, separator and no spec",
			give: "# routes\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: a\n",
			want: []string{"f.yaml:3: VirtualService/a"},
		},
		{
			name: "anchors and aliases",
			give: "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  labels: &l {app: a}\nspec:\n  selector: *l\n",
			want: []string{"f.yaml:1: Service/a"},
		},
		{
			name: "yes and on stay strings (YAML 1.2)",
			give: "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  selector: {enabled: yes, mode: on}\n",
			want: []string{"f.yaml:1: Service/a"},
		},
		{
			name: "empty mesh",
			give: "apiVersion: swimlane.dev/v1alpha1\nkind: Mesh\nmetadata: {name: dev}\nspec:\n",
			want: []string{"f.yaml:1: Mesh/dev"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Parse("f.yaml", []byte(tt.give))
			if err != nil {
				t.Fatal(err)
			}
			if got := sources(set); !slices.Equal(got, tt.want) {
				t.Errorf("objects:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestParseMesh(t *testing.T) {
	set, err := Parse("mesh.yaml", []byte(`apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata:
  name: demo
spec:
  baseline: main
  config: [istio-api/]
  gateways:
  - {name: web, port: 8080, service: gateway-service}
  services:
  - name: goods-service
    port: 50051
    selector: {app: goods}
  workloads:
  - name: goods-main
    labels: {app: goods, swimlane: main}
    command: [python, goods.py]
    env: {PRICING_SERVICE: "pricing-service:50052"}
    protocol: grpc
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Mesh{
		Baseline: "main",
		Config:   []string{"istio-api/"},
		Gateways: []MeshGateway{{Name: "web", Port: 8080, Service: "gateway-service"}},
		Services: []MeshService{{Name: "goods-service", Port: 50051, Selector: map[string]string{"app": "goods"}}},
		Workloads: []MeshWorkload{{
			Name:     "goods-main",
			Labels:   map[string]string{"app": "goods", "swimlane": "main"},
			Command:  []string{"python", "goods.py"},
			Env:      map[string]string{"PRICING_SERVICE": "pricing-service:50052"},
			Protocol: "grpc",
		}},
	}
	if got := set.Meshes[0].Spec; !reflect.DeepEqual(got, want) {
		t.Errorf("Mesh:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	const (
		vs    = "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata:\n  name: goods\n"
		route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: goods\n"
		svc   = "apiVersion: v1\nkind: Service\nmetadata:\n  name: goods\n"
		mesh  = "apiVersion: swimlane.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: dev\n"
	)
	tests := []struct {
		name    string
		give    string
		wantErr string
	}{
		{
			name: "unknown field deep in a VirtualService",
			give: vs + `spec:
  hosts: [goods]
  http:
  - match:
    - headers:
        baggage: {regex: ".*"}
      foo: bar
    route:
    - destination: {host: goods}
`,
			wantErr: "routing.yaml:11: VirtualService/goods: spec.http[0].match[0].foo: unknown field",
		},
		{
			name:    "unknown field in a DestinationRule subset",
			give:    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: goods}\nspec:\n  host: goods\n  subsets:\n  - name: main\n    label: {swimlane: main}\n",
			wantErr: "routing.yaml:8: DestinationRule/goods: spec.subsets[0].label: unknown field",
		},
		{
			name: "unknown field in an HTTPRoute",
			give: route + `spec:
  parentRefs: [{group: "", kind: Service, name: goods}]
  rules:
  - backendRefs:
    - name: goods-main
      port: 50051
  - backendRefs:
    - name: goods-dev
      prot: 50051
`,
			wantErr: "routing.yaml:13: HTTPRoute/goods: spec.rules[1].backendRefs[0].prot: unknown field",
		},
		{
			name:    "field names are case-sensitive",
			give:    route + "spec:\n  ParentRefs: []\n",
			wantErr: "routing.yaml:6: HTTPRoute/goods: spec.ParentRefs: unknown field",
		},
		{
			name:    "string where a list is expected (istio)",
			give:    vs + "spec:\n  hosts: goods\n",
			wantErr: `routing.yaml:6: VirtualService/goods: spec.hosts: invalid value: want a list, got "goods"`,
		},
		{
			name:    "string where a list is expected (gateway api)",
			give:    route + "spec:\n  parentRefs: goods\n",
			wantErr: `routing.yaml:6: HTTPRoute/goods: spec.parentRefs: invalid value: want a list, got "goods"`,
		},
		{
			name:    "number where a duration is expected",
			give:    vs + "spec:\n  http:\n  - timeout: 5\n",
			wantErr: `routing.yaml:7: VirtualService/goods: spec.http[0].timeout: invalid value: want a duration like "5s", got 5`,
		},
		{
			name:    "unknown enum value",
			give:    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: goods}\nspec:\n  trafficPolicy:\n    loadBalancer: {simple: FASTEST}\n",
			wantErr: `routing.yaml:6: DestinationRule/goods: spec.trafficPolicy.loadBalancer.simple: invalid value: want one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST, got "FASTEST"`,
		},
		{
			name:    "string where an integer is expected",
			give:    svc + "spec:\n  ports:\n  - port: 80\n  - port: http\n",
			wantErr: `routing.yaml:8: Service/goods: spec.ports[1].port: invalid value: want an integer, got "http"`,
		},
		{
			name:    "list where an int-or-string is expected",
			give:    svc + "spec:\n  ports:\n  - port: 80\n    targetPort: 8080\n  - port: 81\n    targetPort: [8081]\n",
			wantErr: `routing.yaml:10: Service/goods: spec.ports[1].targetPort: invalid value: want an integer, got a list`,
		},
		{
			name:    "bad indentation",
			give:    svc + "spec:\n  selector:\n    app: goods\n   swimlane: main\n",
			wantErr: "routing.yaml:8: invalid YAML: did not find expected key",
		},
		{
			name:    "bad indentation in a later document",
			give:    svc + "---\n" + svc + "spec:\n  ports:\n  - port: 80\n     name: http\n",
			wantErr: "routing.yaml:13: invalid YAML: mapping values are not allowed in this context",
		},
		{
			name:    "tab indentation",
			give:    svc + "spec:\n\tselector: {}\n",
			wantErr: "routing.yaml:6: invalid YAML: found character that cannot start any token",
		},
		{
			name:    "unknown kind",
			give:    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {}\n",
			wantErr: "routing.yaml:2: ConfigMap/settings: unknown kind v1 ConfigMap",
		},
		{
			name:    "unknown version of a known kind",
			give:    "apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: goods}\n",
			wantErr: "routing.yaml:2: VirtualService/goods: unknown kind networking.istio.io/v2 VirtualService",
		},
		{
			name:    "istio kind not supported yet",
			give:    "apiVersion: networking.istio.io/v1beta1\nkind: Sidecar\nmetadata: {name: web}\nspec: {}\n",
			wantErr: "routing.yaml:2: Sidecar/web: networking.istio.io Sidecar is not supported yet",
		},
		{
			name:    "gateway api kind not supported yet",
			give:    "apiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\nmetadata: {name: goods}\n",
			wantErr: "routing.yaml:2: TLSRoute/goods: gateway.networking.k8s.io TLSRoute is not supported yet",
		},
		{
			name:    "workload",
			give:    "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\n",
			wantErr: "routing.yaml:2: StatefulSet/db: kind StatefulSet is not read in local mode: declare workloads in the Mesh file",
		},
		{
			name:    "missing metadata.name",
			give:    "apiVersion: v1\nkind: Service\nmetadata:\n  namespace: shop\nspec: {}\n",
			wantErr: "routing.yaml:3: metadata.name: required",
		},
		{
			name:    "missing metadata",
			give:    "# a service\napiVersion: v1\nkind: Service\nspec: {}\n",
			wantErr: "routing.yaml:2: metadata.name: required",
		},
		{
			name:    "unknown metadata field",
			give:    "apiVersion: v1\nkind: Service\nmetadata:\n  name: goods\n  lables: {app: goods}\n",
			wantErr: "routing.yaml:5: Service/goods: metadata.lables: unknown field",
		},
		{
			name:    "missing kind",
			give:    "apiVersion: v1\nmetadata: {name: goods}\n",
			wantErr: "routing.yaml:1: kind: required",
		},
		{
			name:    "not a mapping",
			give:    "- apiVersion: v1\n",
			wantErr: "routing.yaml:1: a document must be a mapping with apiVersion, kind, metadata and spec",
		},
		{
			name:    "unknown top-level key",
			give:    svc + "spec: {}\nspecs: {}\n",
			wantErr: "routing.yaml:6: Service/goods: specs: unknown field",
		},
		{
			name:    "duplicate key",
			give:    svc + "spec:\n  selector: {app: a}\n  selector: {app: b}\n",
			wantErr: "routing.yaml:7: Service/goods: spec.selector: duplicate key (first at line 6)",
		},
		{
			name:    "merge keys",
			give:    svc + "spec:\n  selector:\n    <<: {app: a}\n",
			wantErr: "routing.yaml:7: Service/goods: spec.selector: merge keys (<<) are not supported",
		},
		{
			name:    "unknown field in a Mesh",
			give:    mesh + "spec:\n  workloads:\n  - name: goods\n    command: [goods]\n    port: 8080\n",
			wantErr: "routing.yaml:9: Mesh/dev: spec.workloads[0].port: unknown field",
		},
		{
			name:    "every error of every document",
			give:    svc + "spec: {}\nextra: 1\n---\n" + vs + "spec:\n  hots: [goods]\n",
			wantErr: "routing.yaml:6: Service/goods: extra: unknown field\nrouting.yaml:13: VirtualService/goods: spec.hots: unknown field",
		},
		{
			name:    "second document bad",
			give:    svc + "spec: {}\n---\n" + svc + "spec:\n  selectr: {}\n",
			wantErr: "routing.yaml:12: Service/goods: spec.selectr: unknown field",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Parse("routing.yaml", []byte(tt.give))
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("error:\n%v\nwant:\n%s", err, tt.wantErr)
			}
			if set != nil {
				t.Errorf("Set %q returned with an error: loading is all or nothing", sources(set))
			}
			for _, e := range unjoin(err) {
				if _, ok := e.(*Error); !ok {
					t.Errorf("%T is not an *Error: %v", e, e)
				}
			}
		})
	}
}

func TestLoadFilesFolders(t *testing.T) {
	write := func(t *testing.T, dir, name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	service := func(name string) string {
		return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + "}\nspec: {}\n"
	}
	dir := t.TempDir()
	write(t, dir, "b.yaml", service("b"))
	write(t, dir, "a.yml", service("a"))
	write(t, dir, "notes.txt", "not yaml: [")
	write(t, dir, ".#a.yml", "editor lock")
	write(t, dir, "sub/c.yaml", service("c"))
	bad := t.TempDir()
	write(t, bad, "1.yaml", service("x")+"oops: 1\n")
	write(t, bad, "2.yaml", "kind: Service\n")

	tests := []struct {
		name    string
		give    []string
		want    []string
		wantErr string
	}{
		{
			name: "folder: yaml files in name order, not recursive",
			give: []string{dir},
			want: []string{filepath.Join(dir, "a.yml") + ":1: Service/a", filepath.Join(dir, "b.yaml") + ":1: Service/b"},
		},
		{
			name: "files and folders in the order given",
			give: []string{filepath.Join(dir, "sub/c.yaml"), dir},
			want: []string{
				filepath.Join(dir, "sub/c.yaml") + ":1: Service/c",
				filepath.Join(dir, "a.yml") + ":1: Service/a",
				filepath.Join(dir, "b.yaml") + ":1: Service/b",
			},
		},
		{
			name: "a file reached twice is read once",
			give: []string{filepath.Join(dir, "b.yaml"), dir + "/"},
			want: []string{filepath.Join(dir, "b.yaml") + ":1: Service/b", filepath.Join(dir, "a.yml") + ":1: Service/a"},
		},
		{
			name: "errors of all files, nothing loaded",
			give: []string{dir, bad},
			wantErr: filepath.Join(bad, "1.yaml") + ":5: Service/x: oops: unknown field\n" +
				filepath.Join(bad, "2.yaml") + ":1: apiVersion: required",
		},
		{
			name:    "missing path",
			give:    []string{filepath.Join(dir, "nope.yaml")},
			wantErr: "stat " + filepath.Join(dir, "nope.yaml") + ": no such file or directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := LoadFiles(tt.give...)
			if tt.wantErr != "" {
				if set != nil || err == nil || err.Error() != tt.wantErr {
					t.Fatalf("LoadFiles = %v, error:\n%v\nwant error:\n%s", set, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := sources(set); !slices.Equal(got, tt.want) {
				t.Errorf("objects:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
	if _, err := LoadFiles(filepath.Join(dir, "nope.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v is not fs.ErrNotExist", err)
	}
}

func TestMerge(t *testing.T) {
	a, err := Parse("a.yaml", []byte("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("b.yaml", []byte("apiVersion: swimlane.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a.Merge(b)
	a.Merge(nil)
	want := []string{"b.yaml:1: Mesh/m", "a.yaml:1: Service/a", "b.yaml:5: Service/b"}
	if got := sources(a); !slices.Equal(got, want) {
		t.Errorf("merged:\n got %q\nwant %q", got, want)
	}
}

func TestFindPath(t *testing.T) {
	const text = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: goods
  labels:
    app.kubernetes.io/name: goods
    app: goods
spec:
  http:
  - match:
    - headers:
        baggage: &m
          regex: .*lane.*
  - route:
    - destination:
        subset: main
  rules:
  - matches:
    - headers:
      - name: baggage
        value: x
      - name: other
        value: y
    alias: *m
`
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		give string
		want int // line of the node found; 0 for none
	}{
		{name: "top-level key", give: "metadata", want: 3},
		{name: "nested key", give: "metadata.name", want: 4},
		{name: "key with dots", give: "metadata.labels.app.kubernetes.io/name", want: 6},
		{name: "prefix of a dotted key", give: "metadata.labels.app", want: 7},
		{name: "indexes", give: "spec.http[1].route[0].destination.subset", want: 16},
		{name: "index gives the item", give: "spec.http[1]", want: 14},
		{name: "map key under index", give: "spec.http[0].match[0].headers.baggage.regex", want: 13},
		{name: "second of a list", give: "spec.rules[0].matches[0].headers[1].value", want: 23},
		{name: "through an alias", give: "spec.rules[0].alias.regex", want: 13},
		{name: "absent key", give: "spec.tcp", want: 0},
		{name: "index out of range", give: "spec.http[2]", want: 0},
		{name: "negative index", give: "spec.http[-1]", want: 0},
		{name: "index on a mapping", give: "spec[0]", want: 0},
		{name: "key on a list", give: "spec.http.match", want: 0},
		{name: "key past a scalar", give: "kind.name", want: 0},
		{name: "unclosed bracket", give: "spec.http[0", want: 0},
		{name: "empty path", give: "", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, root := range []*yaml.Node{&doc, doc.Content[0]} { // document and mapping alike
				got := 0
				if n := FindPath(root, tt.give); n != nil {
					got = n.Line
				}
				if got != tt.want {
					t.Errorf("FindPath(%v, %q) at line %d, want %d", root.Kind, tt.give, got, tt.want)
				}
			}
		})
	}
	if n := FindPath(nil, "spec"); n != nil {
		t.Errorf("FindPath(nil) = %v", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, dir := range []string{seed + "istio-api", seed + "gateway-api"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil || len(files) == 0 {
			f.Fatalf("no seed files in %s: %v", dir, err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("apiVersion: swimlane.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\nspec:\n  workloads: [{name: a, command: [a], labels: &l {x: y}, env: *l}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse("fuzz.yaml", data)
		if (set == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v: want exactly one of a Set and an error", set, err)
		}
		for _, e := range unjoin(err) {
			if _, ok := e.(*Error); err != nil && !ok {
				t.Fatalf("%T is not an *Error: %v", e, e)
			}
		}
		if set != nil {
			each(set, func(s Source, n *yaml.Node) {
				if s.Name == "" || n == nil || n.Kind != yaml.MappingNode || n.Line != s.Line {
					t.Fatalf("object %s with node %v", s, n)
				}
			})
		}
	})
}

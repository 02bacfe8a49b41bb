package compile

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/config"
	"swimlane.dev/swimlane/internal/lane"
	"swimlane.dev/swimlane/internal/registry"
	"swimlane.dev/swimlane/internal/snapshot"
)

// Call is one request as a proxy sees it; Result is where the route table sends it.
type Call struct {
	Host    string
	Method  string
	Path    string
	Headers map[string]string
}

type Result struct {
	Service  string // destination service ("" when none)
	Lane     lane.Lane
	Endpoint string // workload picked ("" when none)
	Status   int    // 0 when routed, 404 for no matching route, 503 for no endpoint
}

// simulate routes c through snap the way the proxy does: lane from headers, then RouteHTTP.
func simulate(t *testing.T, snap *snapshot.Snapshot, c Call) Result {
	t.Helper()
	req, err := http.NewRequest(orDefault(c.Method, "GET"), "http://"+c.Host+orDefault(c.Path, "/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.Headers {
		req.Header.Set(k, v)
	}
	names := snap.Mesh.LaneNames()
	asked, _ := names.FromHeaders(req.Header)
	names.Write(req.Header, asked)
	svc := snap.Service(c.Host)
	if svc == nil {
		return Result{Status: 503}
	}
	d := snap.RouteHTTP(svc, req, asked, nil)
	switch {
	case d.NoRoute:
		return Result{Status: 404}
	case d.Endpoint == nil:
		name := ""
		if d.Service != nil {
			name = d.Service.Name
		}
		return Result{Service: name, Status: 503}
	}
	return Result{Service: d.Service.Name, Lane: d.Served, Endpoint: d.Endpoint.Workload}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// build compiles YAML text and workloads into a prepared snapshot.
func build(t *testing.T, yamlText string, workloads ...registry.Workload) *snapshot.Snapshot {
	t.Helper()
	set, err := config.Parse("test.yaml", []byte(yamlText))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Compile(set, workloads, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Snapshot.Prepare(); err != nil {
		t.Fatal(err)
	}
	return res.Snapshot
}

func wl(name string, labels ...string) registry.Workload {
	l := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		l[labels[i]] = labels[i+1]
	}
	return registry.Workload{Name: name, Address: "127.0.0.1:1", Protocol: snapshot.HTTP, Labels: l}
}

// demoWorkloads are the seed demo's goods and pricing deployments.
var demoWorkloads = []registry.Workload{
	wl("goods-main", "app", "goods", "swimlane", "main"),
	wl("goods-f1", "app", "goods", "swimlane", "dev-feature1"),
	wl("goods-f2", "app", "goods", "swimlane", "dev-feature2"),
	wl("pricing-main", "app", "pricing", "swimlane", "main"),
	wl("pricing-f1", "app", "pricing", "swimlane", "dev-feature1"),
}

const demoServices = `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: demo}
spec:
  services:
  - {name: goods-service, port: 50051, selector: {app: goods}}
  - {name: pricing-service, port: 50052, selector: {app: pricing}}
`

func TestAutomaticLaneFallback(t *testing.T) {
	snap := build(t, demoServices, demoWorkloads...)
	tests := []struct {
		name string
		give Call
		want Result
	}{
		{name: "no lane goes to main", give: Call{Host: "goods-service:50051"}, want: Result{Service: "goods-service", Lane: "main", Endpoint: "goods-main"}},
		{name: "lane with a deployment", give: Call{Host: "goods-service", Headers: map[string]string{"x-swimlane": "dev-feature2"}}, want: Result{Service: "goods-service", Lane: "dev-feature2", Endpoint: "goods-f2"}},
		{name: "lane without a deployment falls back", give: Call{Host: "pricing-service:50052", Headers: map[string]string{"x-swimlane": "dev-feature2"}}, want: Result{Service: "pricing-service", Lane: "main", Endpoint: "pricing-main"}},
		{name: "lane from baggage", give: Call{Host: "pricing-service", Headers: map[string]string{"baggage": "k=v,swimlane=dev-feature1"}}, want: Result{Service: "pricing-service", Lane: "dev-feature1", Endpoint: "pricing-f1"}},
		{name: "unknown lane", give: Call{Host: "goods-service", Headers: map[string]string{"x-swimlane": "not_exist"}}, want: Result{Service: "goods-service", Lane: "main", Endpoint: "goods-main"}},
		{name: "invalid lane is no lane", give: Call{Host: "goods-service", Headers: map[string]string{"x-swimlane": "dev feature1"}}, want: Result{Service: "goods-service", Lane: "main", Endpoint: "goods-main"}},
		{name: "fully qualified host", give: Call{Host: "goods-service.default.svc.cluster.local:50051", Headers: map[string]string{"x-swimlane": "dev-feature1"}}, want: Result{Service: "goods-service", Lane: "dev-feature1", Endpoint: "goods-f1"}},
		{name: "other namespace is not this service", give: Call{Host: "goods-service.other"}, want: Result{Status: 503}},
		{name: "unknown host", give: Call{Host: "nope:80"}, want: Result{Status: 503}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := simulate(t, snap, tt.give); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNoEndpointAnywhere(t *testing.T) {
	snap := build(t, demoServices, wl("goods-f1", "app", "goods", "swimlane", "dev-feature1"))
	req, _ := http.NewRequest("GET", "http://goods-service/", nil)
	d := snap.RouteHTTP(snap.Service("goods-service"), req, "dev-feature2", nil)
	if d.Endpoint != nil {
		t.Fatalf("routed to %v, want no endpoint", d.Endpoint.Workload)
	}
	want := "no healthy endpoint for goods-service in lane dev-feature2 (tried dev-feature2 -> main)"
	if got := d.NoEndpointReason(); got != want {
		t.Errorf("reason = %q, want %q", got, want)
	}
}

func TestUnlabelledEndpointsAreBaseline(t *testing.T) {
	snap := build(t, demoServices, wl("pricing-plain", "app", "pricing"), wl("pricing-f1", "app", "pricing", "swimlane", "dev-feature1"))
	got := simulate(t, snap, Call{Host: "pricing-service", Headers: map[string]string{"x-swimlane": "dev-feature2"}})
	if got.Endpoint != "pricing-plain" || got.Lane != "main" {
		t.Errorf("got %+v, want the unlabelled endpoint as main", got)
	}
}

func TestRoundRobinWithinLane(t *testing.T) {
	snap := build(t, demoServices, wl("goods-a", "app", "goods"), wl("goods-b", "app", "goods"))
	seen := map[string]int{}
	for i := 0; i < 10; i++ {
		seen[simulate(t, snap, Call{Host: "goods-service"}).Endpoint]++
	}
	if seen["goods-a"] != 5 || seen["goods-b"] != 5 {
		t.Errorf("round robin over two endpoints gave %v", seen)
	}
}

// seedRouting loads one of the seed's own routing variants, unchanged, beside the demo services.
func seedRouting(t *testing.T, variant string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(demoServices)
	for _, f := range []string{"goods-istio-routing.yaml", "pricing-istio-routing.yaml"} {
		data, err := os.ReadFile(filepath.Join("../../../shared/examples/seed-swimlane-demo", variant, f))
		if err != nil {
			t.Fatalf("the seed's files must sit beside the repo: %v", err)
		}
		b.WriteString("\n---\n")
		b.Write(data)
	}
	return b.String()
}

// TestSeedRoutingVariants checks the seed's own Istio and Gateway API routing give the four
// cases of the seed, with the seed's baggage form (its gateway writes x-swimlane=<lane>).
func TestSeedRoutingVariants(t *testing.T) {
	for _, variant := range []string{"istio-api", "gateway-api"} {
		t.Run(variant, func(t *testing.T) {
			snap := build(t, seedRouting(t, variant), demoWorkloads...)
			tests := []struct {
				name        string
				headers     map[string]string
				wantGoods   string
				wantPricing string
			}{
				{name: "none", wantGoods: "goods-main", wantPricing: "pricing-main"},
				{name: "main", headers: map[string]string{"x-swimlane": "main"}, wantGoods: "goods-main", wantPricing: "pricing-main"},
				{name: "dev-feature1", headers: map[string]string{"x-swimlane": "dev-feature1"}, wantGoods: "goods-f1", wantPricing: "pricing-f1"},
				{name: "dev-feature2", headers: map[string]string{"x-swimlane": "dev-feature2"}, wantGoods: "goods-f2", wantPricing: "pricing-main"},
				{name: "not_exist", headers: map[string]string{"x-swimlane": "not_exist"}, wantGoods: "goods-main", wantPricing: "pricing-main"},
				{name: "seed gateway's baggage form", headers: map[string]string{"baggage": "x-swimlane=dev-feature1"}, wantGoods: "goods-f1", wantPricing: "pricing-f1"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if got := simulate(t, snap, Call{Host: "goods-service:50051", Headers: tt.headers}).Endpoint; got != tt.wantGoods {
						t.Errorf("goods: %s, want %s", got, tt.wantGoods)
					}
					if got := simulate(t, snap, Call{Host: "pricing-service:50052", Headers: tt.headers}).Endpoint; got != tt.wantPricing {
						t.Errorf("pricing: %s, want %s", got, tt.wantPricing)
					}
				})
			}
		})
	}
}

const routed = demoServices + `---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: goods}
spec:
  host: goods-service
  subsets:
  - {name: v-main, labels: {swimlane: main}}
  - {name: v-f1, labels: {swimlane: dev-feature1}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: goods}
spec:
  hosts: [goods-service.default.svc.cluster.local]
  http:
  - match:
    - uri: {prefix: /admin}
      method: {exact: POST}
    route:
    - destination: {host: goods-service, subset: v-f1}
  - match:
    - headers:
        user-agent: {regex: ".*Firefox.*"}
    - authority: {exact: "goods.example"}
    route:
    - destination: {host: goods-service}
  - match:
    - uri: {exact: /pinned}
    route:
    - destination: {host: goods-service, subset: v-main}
`

func TestRuleMatching(t *testing.T) {
	snap := build(t, routed, demoWorkloads...)
	tests := []struct {
		name string
		give Call
		want Result
	}{
		{name: "prefix and method both hold", give: Call{Host: "goods-service", Method: "POST", Path: "/admin/x"}, want: Result{Service: "goods-service", Endpoint: "goods-f1"}},
		{name: "prefix without method: next rules, none match", give: Call{Host: "goods-service", Path: "/admin/x"}, want: Result{Status: 404}},
		{name: "regex is a full match", give: Call{Host: "goods-service", Headers: map[string]string{"user-agent": "Mozilla Firefox/1"}}, want: Result{Service: "goods-service", Lane: "main", Endpoint: "goods-main"}},
		{name: "regex that matches only part does not match", give: Call{Host: "goods-service", Headers: map[string]string{"user-agent": "Chrome"}}, want: Result{Status: 404}},
		{name: "either match block (OR)", give: Call{Host: "goods.example", Path: "/"}, want: Result{Status: 503}},
		{name: "no subset: lane resolves", give: Call{Host: "goods-service", Headers: map[string]string{"user-agent": "Firefox", "x-swimlane": "dev-feature2"}}, want: Result{Service: "goods-service", Lane: "dev-feature2", Endpoint: "goods-f2"}},
		{name: "subset pins even with a lane", give: Call{Host: "goods-service", Path: "/pinned", Headers: map[string]string{"x-swimlane": "dev-feature2"}}, want: Result{Service: "goods-service", Endpoint: "goods-main"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := simulate(t, snap, tt.give); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWeights(t *testing.T) {
	snap := build(t, demoServices+`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: goods}
spec:
  host: goods-service
  subsets:
  - {name: a, labels: {swimlane: main}}
  - {name: b, labels: {swimlane: dev-feature1}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: goods}
spec:
  hosts: [goods-service]
  http:
  - route:
    - {destination: {host: goods-service, subset: a}, weight: 80}
    - {destination: {host: goods-service, subset: b}, weight: 20}
`, demoWorkloads...)
	const n = 10000
	got := map[string]int{}
	for i := 0; i < n; i++ {
		got[simulate(t, snap, Call{Host: "goods-service"}).Endpoint]++
	}
	// 20% of 10000: sd = sqrt(10000*0.2*0.8) = 40; allow 5 sd.
	if b := got["goods-f1"]; b < 2000-200 || b > 2000+200 {
		t.Errorf("weight 20 got %d of %d (%v)", b, n, got)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		wantErr string
	}{
		{
			name:    "dangling subset",
			give:    demoServices + "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\nspec:\n  hosts: [goods-service]\n  http:\n  - route:\n    - destination: {host: goods-service, subset: nope}\n",
			wantErr: `test.yaml:16: VirtualService/vs: spec.http[0].route[0].destination.subset: subset "nope" of host "goods-service" is not defined by any DestinationRule`,
		},
		{
			name:    "unsupported field is an error, not ignored",
			give:    demoServices + "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\nspec:\n  hosts: [goods-service]\n  http:\n  - corsPolicy: {allowOrigins: [{exact: x}]}\n    route:\n    - destination: {host: goods-service}\n",
			wantErr: `test.yaml:15: VirtualService/vs: spec.http[0].corsPolicy: not supported yet`,
		},
		{
			name:    "bad regex",
			give:    demoServices + "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\nspec:\n  hosts: [goods-service]\n  http:\n  - match:\n    - headers:\n        baggage: {regex: \"(\"}\n    route:\n    - destination: {host: goods-service}\n",
			wantErr: `VirtualService/vs: spec.http[0].match[0].headers.baggage.regex: invalid regex`,
		},
		{
			name:    "two VirtualServices for one host",
			give:    demoServices + "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [goods-service]\n  http:\n  - route:\n    - destination: {host: goods-service}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: b}\nspec:\n  hosts: [goods-service]\n  http:\n  - route:\n    - destination: {host: goods-service}\n",
			wantErr: `VirtualService/b: spec.hosts[0]: host "goods-service" is already routed by test.yaml:9: VirtualService/a`,
		},
		{
			name:    "one VirtualService name twice",
			give:    demoServices + "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\nspec:\n  hosts: [goods-service]\n  http:\n  - route:\n    - destination: {host: goods-service}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\nspec:\n  hosts: [pricing-service]\n  http:\n  - route:\n    - destination: {host: pricing-service}\n",
			wantErr: `VirtualService/vs: metadata.name: VirtualService/vs is declared twice; the other is test.yaml:9: VirtualService/vs`,
		},
		{
			name:    "duplicate service",
			give:    demoServices + "---\napiVersion: v1\nkind: Service\nmetadata: {name: goods-service}\nspec:\n  selector: {app: goods}\n  ports: [{port: 80}]\n",
			wantErr: `Service/goods-service: metadata.name: service "goods-service" is declared twice`,
		},
		{
			name:    "backend with a group and no kind",
			give:    demoServices + "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: goods-service}]\n  rules:\n  - backendRefs: [{group: example.com, name: goods-service, port: 50051}]\n",
			wantErr: `HTTPRoute/r: spec.rules[0].backendRefs[0]: backend Service in group "example.com" is not supported; only a core Service`,
		},
		{
			name:    "gateway parent not supported yet",
			give:    demoServices + "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: my-gateway}]\n  rules:\n  - backendRefs: [{name: goods-service, port: 50051}]\n",
			wantErr: `HTTPRoute/r: spec.parentRefs[0]: parent Gateway "my-gateway" is not supported yet`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := config.Parse("test.yaml", []byte(tt.give))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Compile(set, demoWorkloads, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v\nwant it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestGatewayAPISpecificityOrder(t *testing.T) {
	// The catch-all rule comes first in the file; the header rule must still win.
	snap := build(t, demoServices+`---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: goods}
spec:
  parentRefs: [{group: "", kind: Service, name: goods-service}]
  rules:
  - backendRefs: [{name: goods-main-svc, port: 50051}]
  - matches:
    - headers: [{name: x-user, value: alice}]
    backendRefs: [{name: goods-f1-svc, port: 50051}]
  - matches:
    - path: {type: PathPrefix, value: /api}
    backendRefs: [{name: goods-f1-svc, port: 50051}]
---
apiVersion: v1
kind: Service
metadata: {name: goods-main-svc}
spec: {selector: {app: goods, swimlane: main}, ports: [{port: 50051}]}
---
apiVersion: v1
kind: Service
metadata: {name: goods-f1-svc}
spec: {selector: {app: goods, swimlane: dev-feature1}, ports: [{port: 50051}]}
`, demoWorkloads...)
	tests := []struct {
		name string
		give Call
		want string
	}{
		{name: "header rule beats catch-all", give: Call{Host: "goods-service", Headers: map[string]string{"x-user": "alice"}}, want: "goods-f1"},
		{name: "catch-all", give: Call{Host: "goods-service"}, want: "goods-main"},
		{name: "prefix matches a whole segment", give: Call{Host: "goods-service", Path: "/api/v1"}, want: "goods-f1"},
		{name: "prefix does not match a longer segment", give: Call{Host: "goods-service", Path: "/apix"}, want: "goods-main"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := simulate(t, snap, tt.give).Endpoint; got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func laneOf(s string) lane.Lane { return lane.Lane(s) }

func TestIstioGatewayBinding(t *testing.T) {
	const mesh = "apiVersion: swimlane.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\nspec:\n  gateways: [{name: ingress, port: 8080}]\n  services: [{name: web, port: 80, selector: {app: web}}]\n"
	const gw = "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: public}\nspec:\n  selector: {istio: ingressgateway}\n  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"shop.example\"]}]\n"
	const vs = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web}\nspec:\n  hosts: [shop.example]\n  gateways: [%s]\n  http: [{route: [{destination: {host: web}}]}]\n"
	tests := []struct {
		name    string
		give    string
		wantErr string
	}{
		{name: "bound", give: mesh + gw + fmt.Sprintf(vs, "public")},
		{name: "namespaced name", give: mesh + gw + fmt.Sprintf(vs, "istio-system/public")},
		{name: "unknown gateway", give: mesh + gw + fmt.Sprintf(vs, "privat"), wantErr: `spec.gateways[0]: no Gateway "privat"`},
		{name: "TLS server", give: mesh + strings.Replace(gw, "protocol: HTTP", "protocol: HTTPS", 1), wantErr: `spec.servers[0].port.protocol: "HTTPS" is not supported yet`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := config.Parse("test.yaml", []byte(tt.give))
			if err != nil {
				t.Fatal(err)
			}
			res, err := Compile(set, nil, time.Now())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			srv := res.Snapshot.Gateways[0].Servers
			if len(srv) != 1 || srv[0].Port != 80 || len(srv[0].VirtualHosts) != 1 || srv[0].VirtualHostFor("SHOP.example:80") == nil {
				t.Errorf("servers = %+v", srv)
			}
		})
	}
}

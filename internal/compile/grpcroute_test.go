package compile

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/config"
	"swimlane.dev/swimlane/internal/snapshot"
)

// laneServices are one Service per deployment of the demo, as seed routing with Gateway API
// has them: a backendRef to one of them pins the call to that deployment.
const laneServices = `---
apiVersion: v1
kind: Service
metadata: {name: goods-main-svc}
spec: {selector: {app: goods, swimlane: main}, ports: [{port: 50051}]}
---
apiVersion: v1
kind: Service
metadata: {name: goods-f1-svc}
spec: {selector: {app: goods, swimlane: dev-feature1}, ports: [{port: 50051}]}
---
apiVersion: v1
kind: Service
metadata: {name: goods-f2-svc}
spec: {selector: {app: goods, swimlane: dev-feature2}, ports: [{port: 50051}]}
---
apiVersion: v1
kind: Service
metadata: {name: pricing-f1-svc}
spec: {selector: {app: pricing, swimlane: dev-feature1}, ports: [{port: 50052}]}
`

// grpcRouted has its rules in the file in roughly the reverse of their precedence, so the
// order of the compiled routes is the compiler's doing.
const grpcRouted = demoServices + laneServices + `---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: goods}
spec:
  parentRefs: [{group: "", kind: Service, name: goods-service}]
  rules:
  - backendRefs: [{name: goods-main-svc, port: 50051}]
  - matches:
    - method: {method: Health}
    backendRefs: [{name: pricing-service, port: 50052}]
  - matches:
    - method: {service: shop.Goods}
    backendRefs: [{name: goods-f1-svc, port: 50051}]
  - matches:
    - method: {type: Exact, service: shop.Goods, method: Get}
    backendRefs: [{name: goods-f2-svc, port: 50051}]
  - matches:
    - method: {service: shop.Goods, method: Get}
      headers: [{name: x-user, value: alice}]
    backendRefs: [{name: pricing-f1-svc, port: 50052}]
  - matches:
    - method: {type: RegularExpression, service: 'shop\.v[0-9]+\.Goods', method: 'Get.*'}
    backendRefs: [{name: goods-f1-svc, port: 50051}]
  - name: team
    matches:
    - method: {service: shop.Goods, method: Get}
      headers:
      - {name: X-User, type: RegularExpression, value: 'bo.*'}
      - {name: x-team, value: blue}
    backendRefs: [{name: goods-main-svc, port: 50051}]
`

// grpcCall is a gRPC call as the proxy sees it: an HTTP/2 POST to /<service>/<method>.
func grpcCall(host, path string, headers ...string) Call {
	h := map[string]string{"content-type": "application/grpc"}
	for i := 0; i+1 < len(headers); i += 2 {
		h[headers[i]] = headers[i+1]
	}
	return Call{Host: host, Method: "POST", Path: path, Headers: h}
}

func TestGRPCRouteMatches(t *testing.T) {
	snap := build(t, grpcRouted, demoWorkloads...)
	tests := []struct {
		name string
		give Call
		want string
	}{
		{name: "exact service and method", give: grpcCall("goods-service", "/shop.Goods/Get"), want: "goods-f2"},
		{name: "service alone matches its other methods", give: grpcCall("goods-service", "/shop.Goods/List"), want: "goods-f1"},
		{name: "service match is the whole service name", give: grpcCall("goods-service", "/shop.GoodsX/List"), want: "goods-main"},
		{name: "service beats method alone", give: grpcCall("goods-service", "/shop.Goods/Health"), want: "goods-f1"},
		{name: "method alone, any service", give: grpcCall("goods-service", "/grpc.health.v1.Health/Health"), want: "pricing-main"},
		{name: "method alone is the whole method name", give: grpcCall("goods-service", "/other.S/HealthCheck"), want: "goods-main"},
		{name: "exact method with a header beats it without", give: grpcCall("goods-service", "/shop.Goods/Get", "x-user", "alice"), want: "pricing-f1"},
		{name: "two headers beat one", give: grpcCall("goods-service", "/shop.Goods/Get", "x-user", "bob", "x-team", "blue"), want: "goods-main"},
		{name: "header regex must match the whole value", give: grpcCall("goods-service", "/shop.Goods/Get", "x-user", "xbob", "x-team", "blue"), want: "goods-f2"},
		{name: "regular expression service and method", give: grpcCall("goods-service", "/shop.v2.Goods/GetAll"), want: "goods-f1"},
		{name: "regular expression method must match", give: grpcCall("goods-service", "/shop.v2.Goods/List"), want: "goods-main"},
		{name: "no match: the catch-all rule", give: grpcCall("goods-service", "/x.Y/Z"), want: "goods-main"},
		{name: "other services are not routed", give: grpcCall("pricing-service", "/shop.Goods/Get"), want: "pricing-main"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := simulate(t, snap, tt.give).Endpoint; got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGRPCRouteCompiled(t *testing.T) {
	snap := build(t, grpcRouted, demoWorkloads...)
	var got []string
	for _, r := range snap.Service("goods-service").HTTP {
		got = append(got, r.Name)
	}
	want := []string{
		"GRPCRoute/goods#5.0",       // regular expression: the longest service
		"GRPCRoute/goods#6.0(team)", // exact service and method, two headers
		"GRPCRoute/goods#4.0",       // exact service and method, one header
		"GRPCRoute/goods#3.0",       // exact service and method
		"GRPCRoute/goods#2.0",       // service
		"GRPCRoute/goods#1.0",       // method
		"GRPCRoute/goods#0.0",       // no match
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("route order\n got %q\nwant %q", got, want)
	}

	uris := map[string]snapshot.StringMatch{}
	for _, r := range snap.Service("goods-service").HTTP {
		if u := r.Match[0].URI; u != nil {
			uris[r.Name] = snapshot.StringMatch{Exact: u.Exact, Prefix: u.Prefix, Regex: u.Regex}
		}
	}
	wantURIs := map[string]snapshot.StringMatch{
		"GRPCRoute/goods#1.0":       {Regex: `/[^/]+/Health`},
		"GRPCRoute/goods#2.0":       {Prefix: "/shop.Goods/"},
		"GRPCRoute/goods#3.0":       {Exact: "/shop.Goods/Get"},
		"GRPCRoute/goods#4.0":       {Exact: "/shop.Goods/Get"},
		"GRPCRoute/goods#5.0":       {Regex: `/(?:shop\.v[0-9]+\.Goods)/(?:Get.*)`},
		"GRPCRoute/goods#6.0(team)": {Exact: "/shop.Goods/Get"},
	}
	if !reflect.DeepEqual(uris, wantURIs) {
		t.Errorf("uri matches\n got %v\nwant %v", uris, wantURIs)
	}
}

func TestGRPCRouteWeightsAndFilters(t *testing.T) {
	snap := build(t, demoServices+laneServices+`---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: goods}
spec:
  parentRefs: [{kind: Service, name: goods-service}]
  rules:
  - matches:
    - method: {service: shop.Goods, method: Get}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-set, value: "1"}]
        add: [{name: x-add, value: "2"}]
        remove: [x-gone]
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-served, value: grpc}]}
    - type: RequestMirror
      requestMirror:
        backendRef: {name: pricing-service, port: 50052}
        percent: 25
    backendRefs:
    - {name: goods-main-svc, port: 50051, weight: 80}
    - {name: goods-f1-svc, port: 50051, weight: 20}
  - backendRefs:
    - {name: goods-main-svc, port: 50051}
    - {name: goods-f2-svc, port: 50051}
`, demoWorkloads...)
	routes := snap.Service("goods-service").HTTP
	if len(routes) != 2 {
		t.Fatalf("%d routes, want 2", len(routes))
	}
	tests := []struct {
		name      string
		route     *snapshot.HTTPRoute
		wantDests []snapshot.Destination
	}{
		{
			name:  "explicit weights",
			route: routes[0],
			wantDests: []snapshot.Destination{
				{Host: "goods-main-svc", Port: 50051, Weight: 80},
				{Host: "goods-f1-svc", Port: 50051, Weight: 20},
			},
		},
		{
			name:  "default weight 1 each",
			route: routes[1],
			wantDests: []snapshot.Destination{
				{Host: "goods-main-svc", Port: 50051, Weight: 1},
				{Host: "goods-f2-svc", Port: 50051, Weight: 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.route.Destinations, tt.wantDests) {
				t.Errorf("destinations %+v, want %+v", tt.route.Destinations, tt.wantDests)
			}
		})
	}

	r := routes[0]
	wantReq := &snapshot.HeaderOps{Set: map[string]string{"x-set": "1"}, Add: map[string]string{"x-add": "2"}, Remove: []string{"x-gone"}}
	if !reflect.DeepEqual(r.RequestHeaders, wantReq) {
		t.Errorf("request headers %+v, want %+v", r.RequestHeaders, wantReq)
	}
	wantRes := &snapshot.HeaderOps{Set: map[string]string{"x-served": "grpc"}, Add: map[string]string{}}
	if !reflect.DeepEqual(r.ResponseHeaders, wantRes) {
		t.Errorf("response headers %+v, want %+v", r.ResponseHeaders, wantRes)
	}
	wantMirrors := []snapshot.Mirror{{Destination: snapshot.Destination{Host: "pricing-service", Port: 50052}, Percent: 25}}
	if !reflect.DeepEqual(r.Mirrors, wantMirrors) {
		t.Errorf("mirrors %+v, want %+v", r.Mirrors, wantMirrors)
	}

	// 80/20 over 10000 picks: sd = sqrt(10000*0.2*0.8) = 40; allow 5 sd.
	const n = 10000
	got := map[string]int{}
	for range n {
		got[simulate(t, snap, grpcCall("goods-service", "/shop.Goods/Get")).Endpoint]++
	}
	if b := got["goods-f1"]; b < 2000-200 || b > 2000+200 || got["goods-main"]+b != n {
		t.Errorf("weight 20 got %d of %d (%v)", b, n, got)
	}
}

// compileError compiles text and returns the error, failing if there is none.
func compileError(t *testing.T, text string) string {
	t.Helper()
	set, err := config.Parse("test.yaml", []byte(text))
	if err != nil {
		return err.Error()
	}
	if _, err = Compile(set, demoWorkloads, time.Now()); err == nil {
		t.Fatalf("compiled without error:\n%s", text)
	}
	return err.Error()
}

// grpcRouteWith is a GRPCRoute document for goods-service whose first line is line 9 of the
// file (demoServices has 7 lines, then "---"), its rules line 14; rules is indented as under spec.
func grpcRouteWith(rules string) string {
	return demoServices + `---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{kind: Service, name: goods-service}]
` + rules
}

func TestGRPCRouteErrors(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		wantErr string
	}{
		{
			name: "method match without service or method",
			give: grpcRouteWith(`  rules:
  - matches:
    - method: {type: Exact}
    backendRefs: [{name: goods-service, port: 50051}]
`),
			wantErr: `test.yaml:16: GRPCRoute/g: spec.rules[0].matches[0].method: one or both of service and method are required`,
		},
		{
			name: "exact service with a slash",
			give: grpcRouteWith(`  rules:
  - matches:
    - method:
        service: shop.Goods/Get
    backendRefs: [{name: goods-service, port: 50051}]
`),
			wantErr: `test.yaml:17: GRPCRoute/g: spec.rules[0].matches[0].method.service: "shop.Goods/Get": an exact service must not contain "/" (the path is /<service>/<method>)`,
		},
		{
			name: "bad method regex",
			give: grpcRouteWith(`  rules:
  - matches:
    - method:
        type: RegularExpression
        method: "Get("
    backendRefs: [{name: goods-service, port: 50051}]
`),
			wantErr: `test.yaml:18: GRPCRoute/g: spec.rules[0].matches[0].method.method: invalid regex`,
		},
		{
			name: "unknown method match type",
			give: grpcRouteWith(`  rules:
  - matches:
    - method:
        type: Prefix
        service: shop
    backendRefs: [{name: goods-service, port: 50051}]
`),
			wantErr: `test.yaml:17: GRPCRoute/g: spec.rules[0].matches[0].method.type: "Prefix": want Exact or RegularExpression`,
		},
		{
			name: "bad header regex",
			give: grpcRouteWith(`  rules:
  - matches:
    - headers:
      - name: x-user
        type: RegularExpression
        value: "a("
    backendRefs: [{name: goods-service, port: 50051}]
`),
			wantErr: `test.yaml:19: GRPCRoute/g: spec.rules[0].matches[0].headers[0].value: invalid regex`,
		},
		{
			name: "extensionRef filter",
			give: grpcRouteWith(`  rules:
  - filters:
    - type: ExtensionRef
      extensionRef: {group: x.io, kind: Thing, name: t}
    backendRefs: [{name: goods-service, port: 50051}]
`),
			wantErr: `test.yaml:16: GRPCRoute/g: spec.rules[0].filters[0].type: filter ExtensionRef is not supported yet`,
		},
		{
			name: "backendRef filters",
			give: grpcRouteWith(`  rules:
  - backendRefs:
    - name: goods-service
      port: 50051
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}]
`),
			wantErr: `test.yaml:18: GRPCRoute/g: spec.rules[0].backendRefs[0].filters: not supported yet`,
		},
		{
			name: "sessionPersistence",
			give: grpcRouteWith(`  rules:
  - sessionPersistence: {sessionName: s}
    backendRefs: [{name: goods-service, port: 50051}]
`),
			wantErr: `test.yaml:15: GRPCRoute/g: spec.rules[0].sessionPersistence: not supported yet`,
		},
		{
			name: "no backendRefs",
			give: grpcRouteWith(`  rules:
  - matches:
    - method: {service: shop.Goods}
`),
			wantErr: `test.yaml:15: GRPCRoute/g: spec.rules[0]: backendRefs: at least one backendRef is required`,
		},
		{
			name: "backend that is not a Service",
			give: grpcRouteWith(`  rules:
  - backendRefs:
    - {group: x.io, kind: Bucket, name: b}
`),
			wantErr: `test.yaml:16: GRPCRoute/g: spec.rules[0].backendRefs[0]: backend Bucket in group "x.io" is not supported; only a core Service`,
		},
		{
			name: "gateway parent",
			give: demoServices + `---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{name: my-gateway}]
  rules:
  - backendRefs: [{name: goods-service, port: 50051}]
`,
			wantErr: `test.yaml:13: GRPCRoute/g: spec.parentRefs[0]: parent Gateway "my-gateway" is not supported yet; only a Service (GAMMA)`,
		},
		{
			name: "service already routed by an HTTPRoute",
			give: demoServices + `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: h}
spec:
  parentRefs: [{kind: Service, name: goods-service}]
  rules:
  - backendRefs: [{name: goods-service, port: 50051}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{kind: Service, name: goods-service}]
  rules:
  - backendRefs: [{name: goods-service, port: 50051}]
`,
			wantErr: `test.yaml:21: GRPCRoute/g: spec.parentRefs: service "goods-service" is already routed by test.yaml:9: HTTPRoute/h`,
		},
		{
			name: "one name twice",
			give: grpcRouteWith(`  rules:
  - backendRefs: [{name: goods-service, port: 50051}]
`) + `---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{kind: Service, name: pricing-service}]
  rules:
  - backendRefs: [{name: pricing-service, port: 50052}]
`,
			wantErr: `test.yaml:19: GRPCRoute/g: metadata.name: GRPCRoute/g is declared twice; the other is test.yaml:9: GRPCRoute/g`,
		},
		{
			name:    "unknown field",
			give:    grpcRouteWith("  rules:\n  - backendRefs: [{name: goods-service, port: 50051}]\n    timeouts: {request: 1s}\n"),
			wantErr: `test.yaml:16: GRPCRoute/g: spec.rules[0].timeouts: unknown field`,
		},
		{
			name:    "v1beta1 is not a GRPCRoute version",
			give:    strings.Replace(grpcRouteWith("  rules:\n  - backendRefs: [{name: goods-service, port: 50051}]\n"), "gateway.networking.k8s.io/v1\n", "gateway.networking.k8s.io/v1beta1\n", 1),
			wantErr: `test.yaml:10: GRPCRoute/g: gateway.networking.k8s.io/v1beta1 GRPCRoute is not supported yet; use gateway.networking.k8s.io/v1`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := compileError(t, tt.give); !strings.Contains(err, tt.wantErr) {
				t.Errorf("err = %v\nwant it to contain %q", err, tt.wantErr)
			}
		})
	}
}

package compile

import (
	"reflect"
	"strings"
	"testing"

	"swimlane.dev/swimlane/internal/registry"
	"swimlane.dev/swimlane/internal/snapshot"
)

const tcpServices = `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: tcp}
spec:
  services:
  - {name: tcp-echo, port: 9000, selector: {app: tcp-echo}}
  - {name: tcp-echo-v1, port: 9000, selector: {app: tcp-echo, version: v1}}
  - {name: tcp-echo-v2, port: 9000, selector: {app: tcp-echo, version: v2}}
`

var tcpWorkloads = []registry.Workload{
	{Name: "echo-v1", Address: "127.0.0.1:1", Protocol: snapshot.TCP, Labels: map[string]string{"app": "tcp-echo", "version": "v1"}},
	{Name: "echo-v2", Address: "127.0.0.1:2", Protocol: snapshot.TCP, Labels: map[string]string{"app": "tcp-echo", "version": "v2"}},
}

// tcpRouteWith is a TCPRoute for tcp-echo whose first line is line 10 of the file and whose
// rules line is 15.
func tcpRouteWith(rules string) string {
	return tcpServices + `---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: t}
spec:
  parentRefs: [{group: "", kind: Service, name: tcp-echo}]
` + rules
}

func TestTCPRouteCompiled(t *testing.T) {
	tests := []struct {
		name string
		give string
		want []*snapshot.TCPRoute
	}{
		{
			name: "weighted backends",
			give: tcpRouteWith(`  rules:
  - backendRefs:
    - {name: tcp-echo-v1, port: 9000, weight: 80}
    - {name: tcp-echo-v2, port: 9000, weight: 20}
`),
			want: []*snapshot.TCPRoute{{Name: "TCPRoute/t#0", Destinations: []snapshot.Destination{
				{Host: "tcp-echo-v1", Port: 9000, Weight: 80},
				{Host: "tcp-echo-v2", Port: 9000, Weight: 20},
			}}},
		},
		{
			name: "default weight, named rule, qualified host",
			give: tcpRouteWith(`  rules:
  - name: all
    backendRefs: [{name: tcp-echo-v2.default.svc.cluster.local, port: 9000}]
`),
			want: []*snapshot.TCPRoute{{Name: "TCPRoute/t#0(all)", Destinations: []snapshot.Destination{
				{Host: "tcp-echo-v2", Port: 9000, Weight: 1},
			}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := build(t, tt.give, tcpWorkloads...)
			if got := snap.Service("tcp-echo").TCP; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("tcp routes %+v, want %+v", got, tt.want)
			}
			if got := snap.Service("tcp-echo-v1").TCP; got != nil {
				t.Errorf("a backend got tcp routes %+v", got)
			}
		})
	}

	t.Run("80/20 resolves to the versions' endpoints", func(t *testing.T) {
		snap := build(t, tests[0].give, tcpWorkloads...)
		route := snap.Service("tcp-echo").TCP[0]
		// 80/20 over 10000 picks: sd = sqrt(10000*0.2*0.8) = 40; allow 5 sd.
		const n = 10000
		got := map[string]int{}
		for range n {
			d := snap.ResolveTCP(route, "", nil)
			if d.Endpoint == nil {
				t.Fatalf("no endpoint: %s", d.NoEndpointReason())
			}
			got[d.Endpoint.Workload]++
		}
		if b := got["echo-v2"]; b < 2000-200 || b > 2000+200 || got["echo-v1"]+b != n {
			t.Errorf("weight 20 got %d of %d (%v)", b, n, got)
		}
	})
}

func TestTCPRouteErrors(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		wantErr string
	}{
		{
			name: "two rules",
			give: tcpRouteWith(`  rules:
  - backendRefs: [{name: tcp-echo-v1, port: 9000}]
  - backendRefs: [{name: tcp-echo-v2, port: 9000}]
`),
			wantErr: `test.yaml:17: TCPRoute/t: spec.rules[1]: more than one rule is not supported yet (a TCPRoute has no matches to choose a rule by)`,
		},
		{
			name:    "no rules",
			give:    tcpRouteWith(""),
			wantErr: `test.yaml:10: TCPRoute/t: spec.rules: at least one rule is required`,
		},
		{
			name: "no backendRefs",
			give: tcpRouteWith(`  rules:
  - name: empty
`),
			wantErr: `test.yaml:16: TCPRoute/t: spec.rules[0]: backendRefs: at least one backendRef is required`,
		},
		{
			name: "empty backendRefs",
			give: tcpRouteWith(`  rules:
  - backendRefs: []
`),
			wantErr: `test.yaml:16: TCPRoute/t: spec.rules[0].backendRefs: at least one backendRef is required`,
		},
		{
			name: "backend in another namespace",
			give: tcpRouteWith(`  rules:
  - backendRefs:
    - {name: tcp-echo-v1, namespace: other, port: 9000}
`),
			wantErr: `test.yaml:17: TCPRoute/t: spec.rules[0].backendRefs[0].namespace: a backend in namespace "other" is not supported yet; the mesh is namespace "default"`,
		},
		{
			name: "negative weight",
			give: tcpRouteWith(`  rules:
  - backendRefs:
    - name: tcp-echo-v1
      port: 9000
      weight: -1
`),
			wantErr: `test.yaml:19: TCPRoute/t: spec.rules[0].backendRefs[0].weight: -1: must not be negative`,
		},
		{
			name: "parent port",
			give: strings.Replace(tcpRouteWith(`  rules:
  - backendRefs: [{name: tcp-echo-v1, port: 9000}]
`), "name: tcp-echo}]", "name: tcp-echo, port: 9000}]", 1),
			wantErr: `test.yaml:14: TCPRoute/t: spec.parentRefs[0]: port and sectionName on a parentRef are not supported yet`,
		},
		{
			name: "service already routed by a VirtualService",
			give: tcpServices + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: [tcp-echo]
  tcp:
  - route:
    - destination: {host: tcp-echo-v1}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: t}
spec:
  parentRefs: [{kind: Service, name: tcp-echo}]
  rules:
  - backendRefs: [{name: tcp-echo-v2, port: 9000}]
`,
			wantErr: `test.yaml:23: TCPRoute/t: spec.parentRefs: service "tcp-echo" is already routed by test.yaml:10: VirtualService/vs`,
		},
		{
			name: "unknown field: a TCPRoute has no matches",
			give: tcpRouteWith(`  rules:
  - matches: [{port: 9000}]
    backendRefs: [{name: tcp-echo-v1, port: 9000}]
`),
			wantErr: `test.yaml:16: TCPRoute/t: spec.rules[0].matches: unknown field`,
		},
		{
			name:    "v1 is not a TCPRoute version",
			give:    strings.Replace(tcpRouteWith("  rules:\n  - backendRefs: [{name: tcp-echo-v1, port: 9000}]\n"), "gateway.networking.k8s.io/v1alpha2\n", "gateway.networking.k8s.io/v1\n", 1),
			wantErr: `test.yaml:11: TCPRoute/t: gateway.networking.k8s.io/v1 TCPRoute is not supported yet; use gateway.networking.k8s.io/v1alpha2`,
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

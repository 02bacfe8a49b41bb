package compile

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/config"
	"swimlane.dev/swimlane/internal/registry"
	"swimlane.dev/swimlane/internal/snapshot"
)

const laneObjects = `---
apiVersion: swimlane.dev/v1alpha1
kind: Lane
metadata: {name: dev-feature3}
spec:
  fallback: [dev-feature1]
  owner: alice
---
apiVersion: swimlane.dev/v1alpha1
kind: Lane
metadata: {name: dev-strict}
spec: {mode: strict}
---
apiVersion: swimlane.dev/v1alpha1
kind: Lane
metadata: {name: dev-old}
spec: {expires: "2026-01-01T00:00:00Z"}
`

func buildAt(t *testing.T, text string, now time.Time, workloads ...registry.Workload) (*snapshot.Snapshot, *Compiled) {
	t.Helper()
	set, err := config.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Compile(set, workloads, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Snapshot.Prepare(); err != nil {
		t.Fatal(err)
	}
	return res.Snapshot, res
}

func TestLaneChains(t *testing.T) {
	workloads := append(append([]registry.Workload{}, demoWorkloads...),
		wl("goods-old", "app", "goods", "swimlane", "dev-old"),
		wl("goods-strict", "app", "goods", "swimlane", "dev-strict"))
	snap, res := buildAt(t, demoServices+laneObjects, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), workloads...)
	if !res.NextExpiry.IsZero() {
		t.Errorf("NextExpiry = %v; the only expiry is past", res.NextExpiry)
	}
	tests := []struct {
		name       string
		host       string
		lane       string
		wantEP     string
		wantTried  string
		wantReason string
	}{
		{name: "chain: own deployment first", host: "goods-service", lane: "dev-feature3", wantEP: "", wantTried: "", wantReason: ""},
		{name: "chain: second lane", host: "pricing-service", lane: "dev-feature3", wantEP: "pricing-f1", wantTried: "dev-feature3 -> dev-feature1"},
		{name: "chain: second lane for goods too", host: "goods-service", lane: "dev-feature3", wantEP: "goods-f1", wantTried: "dev-feature3 -> dev-feature1"},
		{name: "undeclared lane: default chain", host: "pricing-service", lane: "dev-feature2", wantEP: "pricing-main", wantTried: "dev-feature2 -> main"},
		{name: "strict lane with a deployment", host: "goods-service", lane: "dev-strict", wantEP: "goods-strict", wantTried: "dev-strict"},
		{name: "strict lane without one: 503 naming service and lane", host: "pricing-service", lane: "dev-strict", wantReason: "no healthy endpoint for pricing-service in lane dev-strict (strict lane: no fallback)"},
		{name: "expired lane is served as the baseline", host: "goods-service", lane: "dev-old", wantEP: "goods-main", wantTried: "main"},
	}
	for _, tt := range tests[1:] {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+tt.host+"/", nil)
			d := snap.RouteHTTP(snap.Service(tt.host), req, laneOf(tt.lane), nil)
			if tt.wantReason != "" {
				if d.Endpoint != nil || d.NoEndpointReason() != tt.wantReason {
					t.Fatalf("endpoint %v, reason %q; want none and %q", d.Endpoint, d.NoEndpointReason(), tt.wantReason)
				}
				return
			}
			if d.Endpoint == nil || d.Endpoint.Workload != tt.wantEP || snapshot.JoinChain(d.Tried) != tt.wantTried {
				t.Fatalf("got %v via %q; want %s via %q (%s)", d.Endpoint, snapshot.JoinChain(d.Tried), tt.wantEP, tt.wantTried, d.NoEndpointReason())
			}
		})
	}
	if info := snap.LaneInfo("dev-old"); info == nil || !info.Expired {
		t.Errorf("dev-old not reported expired: %+v", info)
	}
}

func TestLaneExpiryScheduled(t *testing.T) {
	_, res := buildAt(t, demoServices+laneObjects, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), demoWorkloads...)
	if want := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC); !res.NextExpiry.Equal(want) {
		t.Errorf("NextExpiry = %v, want %v", res.NextExpiry, want)
	}
}

func TestUnhealthyLaneFallsBack(t *testing.T) {
	workloads := append([]registry.Workload{}, demoWorkloads...)
	for i := range workloads {
		if workloads[i].Name == "pricing-f1" {
			workloads[i].Health = "unhealthy"
		}
	}
	snap := build(t, demoServices, workloads...)
	got := simulate(t, snap, Call{Host: "pricing-service", Headers: map[string]string{"x-swimlane": "dev-feature1"}})
	if got.Endpoint != "pricing-main" {
		t.Errorf("unhealthy lane endpoint: got %+v, want fallback to pricing-main", got)
	}
	// A proxy's own ejections (Usable) count the same way.
	snap = build(t, demoServices, demoWorkloads...)
	req, _ := http.NewRequest("GET", "http://pricing-service/", nil)
	d := snap.RouteHTTP(snap.Service("pricing-service"), req, "dev-feature1", &snapshot.Picker{Usable: func(ep *snapshot.Endpoint) bool { return ep.Workload != "pricing-f1" }})
	if d.Endpoint == nil || d.Endpoint.Workload != "pricing-main" || !d.Fallback() {
		t.Errorf("ejected lane endpoint: got %+v", d.Endpoint)
	}
}

func TestLaneErrors(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		wantErr string
	}{
		{name: "cycle", give: "apiVersion: swimlane.dev/v1alpha1\nkind: Lane\nmetadata: {name: a}\nspec: {fallback: [b, a]}\n", wantErr: `spec.fallback[1]: lane "a" appears twice`},
		{name: "strict with fallback", give: "apiVersion: swimlane.dev/v1alpha1\nkind: Lane\nmetadata: {name: a}\nspec: {mode: strict, fallback: [b]}\n", wantErr: `spec.fallback: a strict lane has no fallback`},
		{name: "bad mode", give: "apiVersion: swimlane.dev/v1alpha1\nkind: Lane\nmetadata: {name: a}\nspec: {mode: lax}\n", wantErr: `spec.mode: "lax": want fallback or strict`},
		{name: "bad expiry", give: "apiVersion: swimlane.dev/v1alpha1\nkind: Lane\nmetadata: {name: a}\nspec: {expires: tomorrow}\n", wantErr: `spec.expires: want an RFC 3339 time`},
		{name: "bad lane name", give: "apiVersion: swimlane.dev/v1alpha1\nkind: Lane\nmetadata: {name: a}\nspec: {fallback: [\"b c\"]}\n", wantErr: `spec.fallback[0]: "b c" is not a lane name`},
		{name: "baseline strict", give: "apiVersion: swimlane.dev/v1alpha1\nkind: Lane\nmetadata: {name: main}\nspec: {mode: strict}\n", wantErr: `the baseline lane "main" cannot be strict`},
		{name: "duplicate lane", give: "apiVersion: swimlane.dev/v1alpha1\nkind: Lane\nmetadata: {name: a}\n---\napiVersion: swimlane.dev/v1alpha1\nkind: Lane\nmetadata: {name: a}\n", wantErr: `lane "a" is already declared`},
		{name: "entry for unknown gateway", give: "apiVersion: swimlane.dev/v1alpha1\nkind: LaneEntry\nmetadata: {name: e}\nspec: {gateway: nope}\n", wantErr: `spec.gateway: no gateway "nope" in the Mesh`},
		{name: "rule with two kinds", give: gatewayMesh + "---\napiVersion: swimlane.dev/v1alpha1\nkind: LaneEntry\nmetadata: {name: e}\nspec:\n  gateway: ingress\n  rules:\n  - lane: x\n    match: {from: {header: a}}\n    users: {from: {header: u}, ids: [\"1\"]}\n", wantErr: `spec.rules[0]: a rule needs exactly one of match, laneFrom, users, buckets or percent (found 2)`},
		{name: "percent out of range", give: gatewayMesh + "---\napiVersion: swimlane.dev/v1alpha1\nkind: LaneEntry\nmetadata: {name: e}\nspec:\n  gateway: ingress\n  rules:\n  - lane: x\n    percent: {from: {cookie: uid}, value: 120}\n", wantErr: `spec.rules[0].percent.value: 120 is not a percentage`},
		{name: "from with two sources", give: gatewayMesh + "---\napiVersion: swimlane.dev/v1alpha1\nkind: LaneEntry\nmetadata: {name: e}\nspec:\n  gateway: ingress\n  rules:\n  - laneFrom: {header: a, query: b}\n", wantErr: `from needs exactly one of header, cookie or query`},
		{name: "allowList without lanes", give: gatewayMesh + "---\napiVersion: swimlane.dev/v1alpha1\nkind: LaneEntry\nmetadata: {name: e}\nspec: {gateway: ingress, incoming: allowList}\n", wantErr: `spec.allow: incoming allowList needs at least one lane`},
		{name: "unknown rule field", give: gatewayMesh + "---\napiVersion: swimlane.dev/v1alpha1\nkind: LaneEntry\nmetadata: {name: e}\nspec:\n  gateway: ingress\n  rules:\n  - lane: x\n    hash: {}\n", wantErr: `spec.rules[0].hash: unknown field`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := config.Parse("test.yaml", []byte(tt.give))
			if err == nil {
				_, err = Compile(set, nil, time.Now())
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v\nwant it to contain %q", err, tt.wantErr)
			}
		})
	}
}

const gatewayMesh = `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: m}
spec:
  gateways: [{name: ingress, port: 8080, service: web}]
  services: [{name: web, port: 80, selector: {app: web}}]
`

func TestLaneEntryCompiled(t *testing.T) {
	snap, _ := buildAt(t, gatewayMesh+`---
apiVersion: swimlane.dev/v1alpha1
kind: LaneEntry
metadata: {name: e}
spec:
  gateway: ingress
  incoming: allowList
  allow: [dev-feature1]
  rules:
  - {name: testers, lane: dev-feature1, users: {from: {header: x-user-id}, ids: ["7", "8"]}}
  - {name: ten-percent, lane: canary, percent: {from: {cookie: uid}, value: 10}}
`, time.Now())
	if len(snap.LaneEntries) != 1 {
		t.Fatalf("want one lane entry, got %d", len(snap.LaneEntries))
	}
	e := snap.LaneEntries[0]
	if e.Incoming != snapshot.IncomingAllowList || len(e.Rules) != 2 || e.Rules[1].Percent.Value != 10 || e.Rules[0].Users.IDs[1] != "8" {
		t.Errorf("compiled entry = %+v", e)
	}
}

// TestWeightsComposeWithLanes pins the documented composition: a rule's weights pick the
// destination first; a destination with a subset is pinned, and one without resolves the
// request's lane on its own, with its own fallback.
func TestWeightsComposeWithLanes(t *testing.T) {
	snap := build(t, demoServices+`---
apiVersion: v1
kind: Service
metadata: {name: goods-next}
spec: {selector: {app: pricing}, ports: [{port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: goods}
spec:
  host: goods-service
  subsets: [{name: stable, labels: {swimlane: main}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: goods}
spec:
  hosts: [goods-service]
  http:
  - route:
    - {destination: {host: goods-service}, weight: 50}
    - {destination: {host: goods-next}, weight: 30}
    - {destination: {host: goods-service, subset: stable}, weight: 20}
`, demoWorkloads...)
	got := map[string]int{}
	for i := 0; i < 3000; i++ {
		got[simulate(t, snap, Call{Host: "goods-service", Headers: map[string]string{"x-swimlane": "dev-feature2"}}).Endpoint]++
	}
	// goods-service resolves dev-feature2 to its own deployment; goods-next (pricing's
	// endpoints) has no dev-feature2 and falls back to main; the pinned subset ignores lanes.
	// Expected 1500 / 900 / 600; sd at most sqrt(3000*.5*.5) = 27: allow 5 sd.
	for ep, want := range map[string]int{"goods-f2": 1500, "pricing-main": 900, "goods-main": 600} {
		if n := got[ep]; n < want-140 || n > want+140 {
			t.Errorf("%s got %d of 3000, want about %d (%v)", ep, n, want, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("endpoints reached: %v", got)
	}
}

// TestSourceLabels checks a sourceLabels match holds only for requests from a workload with
// those labels (the proxy's own).
func TestSourceLabels(t *testing.T) {
	snap := build(t, demoServices+`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pricing}
spec:
  host: pricing-service
  subsets: [{name: f1, labels: {swimlane: dev-feature1}}, {name: main, labels: {swimlane: main}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pricing}
spec:
  hosts: [pricing-service]
  http:
  - match: [{sourceLabels: {app: goods, swimlane: dev-feature1}}]
    route: [{destination: {host: pricing-service, subset: f1}}]
  - route: [{destination: {host: pricing-service, subset: main}}]
`, demoWorkloads...)
	req, _ := http.NewRequest("GET", "http://pricing-service/", nil)
	for _, tt := range []struct {
		source map[string]string
		want   string
	}{
		{map[string]string{"app": "goods", "swimlane": "dev-feature1"}, "pricing-f1"},
		{map[string]string{"app": "goods", "swimlane": "main"}, "pricing-main"},
		{nil, "pricing-main"},
	} {
		d := snap.RouteHTTP(snap.Service("pricing-service"), req, "", &snapshot.Picker{Source: tt.source})
		if d.Endpoint == nil || d.Endpoint.Workload != tt.want {
			t.Errorf("from %v: %v, want %s", tt.source, d.Endpoint, tt.want)
		}
	}
}

package snapshot

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"swimlane.dev/swimlane/internal/lane"
)

var testMesh = Mesh{LaneHeader: "x-swimlane", BaggageKey: "swimlane", LaneLabel: "swimlane", Baseline: "main", Namespace: "default"}

// ep is an endpoint of workload in lane l ("" for no lane label).
func ep(workload, addr string, l lane.Lane) Endpoint {
	labels := map[string]string{"app": strings.SplitN(workload, "-", 2)[0]}
	if l != "" {
		labels["swimlane"] = string(l)
	}
	return Endpoint{Address: addr, Protocol: HTTP, Workload: workload, Labels: labels}
}

func svc(name string, eps ...Endpoint) *Service {
	return &Service{Name: name, Port: 80, Endpoints: eps}
}

// prepared returns a prepared snapshot of services at version, built as a proxy decoding a
// full snapshot would.
func prepared(t *testing.T, version uint64, services ...*Service) *Snapshot {
	t.Helper()
	body, err := json.Marshal(&Snapshot{Version: version, Mesh: testMesh, Services: services, Lanes: []*LaneInfo{{Name: "declared", Chain: []lane.Lane{"declared", "main"}, Mode: ModeFallback}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// deltaOf is the delta from base to the services of want, computed by comparing each
// service's encoding as the control plane does.
func deltaOf(t *testing.T, base *Snapshot, version uint64, want []*Service) Delta {
	t.Helper()
	d := Delta{BaseVersion: base.Version, Version: version}
	before := map[string][]byte{}
	for _, s := range base.Services {
		before[s.Name] = mustJSON(t, s)
	}
	for _, s := range want {
		body := mustJSON(t, s)
		if !slices.Equal(before[s.Name], body) {
			d.Services = append(d.Services, body)
		}
		delete(before, s.Name)
	}
	for name := range before {
		d.Removed = append(d.Removed, name)
	}
	return d
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertSame checks got (built by Apply or ReplaceEndpoints) routes exactly as want (a full
// snapshot, prepared from scratch): same encoding, same services with the same lane and
// subset sets, same known lanes and chains.
func assertSame(t *testing.T, got, want *Snapshot) {
	t.Helper()
	if g, w := mustJSON(t, got), mustJSON(t, want); string(g) != string(w) {
		t.Fatalf("encoding differs:\n got %s\nwant %s", g, w)
	}
	for _, w := range want.Services {
		g := got.Service(w.Name)
		if g == nil {
			t.Fatalf("service %s not found by name", w.Name)
		}
		if !reflect.DeepEqual(g.laneSets, w.laneSets) || !reflect.DeepEqual(g.subsetSets, w.subsetSets) {
			t.Errorf("service %s: lane or subset sets differ", w.Name)
		}
	}
	if !reflect.DeepEqual(got.byName, want.byName) {
		t.Errorf("name index %v, want %v", got.byName, want.byName)
	}
	if !reflect.DeepEqual(got.knownLanes, want.knownLanes) {
		t.Errorf("known lanes and their chains %v, want %v", got.knownLanes, want.knownLanes)
	}
	if !reflect.DeepEqual(got.laneServices, want.laneServices) || got.sorted != want.sorted {
		t.Errorf("lane counts %v sorted %v, want %v %v", got.laneServices, got.sorted, want.laneServices, want.sorted)
	}
}

func TestApply(t *testing.T) {
	a := svc("a", ep("a-1", "10.0.0.1:80", "main"))
	b := svc("b", ep("b-1", "10.0.0.2:80", "main"), ep("b-2", "10.0.0.3:80", "feature-x"))
	c := svc("c", ep("c-1", "10.0.0.4:80", ""))
	tests := []struct {
		name string
		base []*Service
		want []*Service
		// lanes are checked with KnownLane after the delta.
		lanesKnown, lanesUnknown []lane.Lane
	}{
		{name: "add a service, kept in name order", base: []*Service{a, c}, want: []*Service{a, b, c}, lanesKnown: []lane.Lane{"feature-x"}},
		{name: "add a service at the end", base: []*Service{a}, want: []*Service{a, c}},
		{name: "change an address", base: []*Service{a, b, c}, want: []*Service{a, svc("b", ep("b-1", "10.0.0.9:80", "main"), ep("b-2", "10.0.0.3:80", "feature-x")), c}},
		{name: "remove a service", base: []*Service{a, b, c}, want: []*Service{a, c}, lanesUnknown: []lane.Lane{"feature-x"}},
		{name: "remove the last service", base: []*Service{a}, want: nil, lanesKnown: []lane.Lane{"main", "declared"}},
		{name: "a new lane's first endpoint", base: []*Service{a, c}, want: []*Service{svc("a", ep("a-1", "10.0.0.1:80", "main"), ep("a-2", "10.0.0.5:80", "feature-y")), c}, lanesKnown: []lane.Lane{"feature-y"}},
		{name: "a lane's last endpoint leaves", base: []*Service{a, b}, want: []*Service{a, svc("b", ep("b-1", "10.0.0.2:80", "main"))}, lanesUnknown: []lane.Lane{"feature-x"}},
		{name: "a lane another service still serves stays", base: []*Service{a, b, svc("d", ep("d-1", "10.0.0.6:80", "feature-x"))}, want: []*Service{a, svc("d", ep("d-1", "10.0.0.6:80", "feature-x"))}, lanesKnown: []lane.Lane{"feature-x"}},
		{name: "a lane's only endpoint turns unhealthy", base: []*Service{a, b}, want: []*Service{a, svc("b", ep("b-1", "10.0.0.2:80", "main"), Endpoint{Address: "10.0.0.3:80", Protocol: HTTP, Workload: "b-2", Labels: map[string]string{"app": "b", "swimlane": "feature-x"}, Health: "draining"})}, lanesUnknown: []lane.Lane{"feature-x"}},
		{name: "add, change and remove at once", base: []*Service{a, c}, want: []*Service{b, svc("c", ep("c-1", "10.0.0.4:81", "")), svc("e", ep("e-1", "10.0.0.7:80", "feature-z"))}, lanesKnown: []lane.Lane{"feature-x", "feature-z"}},
		{name: "nothing changed", base: []*Service{a, b}, want: []*Service{a, b}},
		{name: "services not in name order keep theirs; new ones go last", base: []*Service{c, a}, want: []*Service{c, a, b}, lanesKnown: []lane.Lane{"feature-x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := prepared(t, 4, tt.base...)
			baseJSON := mustJSON(t, base)
			d := deltaOf(t, base, 5, tt.want)
			got, err := base.Apply(d)
			if err != nil {
				t.Fatal(err)
			}
			assertSame(t, got, prepared(t, 5, tt.want...))
			for _, l := range tt.lanesKnown {
				if !got.KnownLane(l) {
					t.Errorf("lane %s unknown after the delta", l)
				}
			}
			for _, l := range tt.lanesUnknown {
				if got.KnownLane(l) {
					t.Errorf("lane %s still known after the delta", l)
				}
			}
			if string(mustJSON(t, base)) != string(baseJSON) {
				t.Error("Apply changed the base snapshot")
			}
			// Services the delta does not name are shared, not decoded again.
			for _, s := range base.Services {
				if !slices.ContainsFunc(d.Services, func(b []byte) bool { return strings.Contains(string(b), `"name":"`+s.Name+`"`) }) &&
					!slices.Contains(d.Removed, s.Name) && got.Service(s.Name) != s {
					t.Errorf("unchanged service %s was not shared", s.Name)
				}
			}
		})
	}
}

func TestApplyRejects(t *testing.T) {
	base := prepared(t, 4, svc("a", ep("a-1", "10.0.0.1:80", "main")))
	badRoute := mustJSON(t, &Service{Name: "b", HTTP: []*HTTPRoute{{Name: "r", Match: []HTTPMatch{{URI: &StringMatch{Regex: "("}}}, Destinations: []Destination{{Host: "b"}}}}})
	tests := []struct {
		name    string
		give    Delta
		wantErr string
	}{
		{name: "base version mismatch", give: Delta{BaseVersion: 3, Version: 5}, wantErr: "does not apply to version 4"},
		{name: "base version ahead", give: Delta{BaseVersion: 5, Version: 6}, wantErr: "does not apply to version 4"},
		{name: "remove a service the base lacks", give: Delta{BaseVersion: 4, Version: 5, Removed: []string{"nope"}}, wantErr: `removes service "nope"`},
		{name: "remove a service twice", give: Delta{BaseVersion: 4, Version: 5, Removed: []string{"a", "a"}}, wantErr: `removes service "a"`},
		{name: "change a service twice", give: Delta{BaseVersion: 4, Version: 5, Services: [][]byte{mustJSON(t, svc("b")), mustJSON(t, svc("b"))}}, wantErr: `changes service "b" twice`},
		{name: "a service that does not decode", give: Delta{BaseVersion: 4, Version: 5, Services: [][]byte{[]byte(`{"name":`)}}, wantErr: "decode service 0"},
		{name: "a service whose route does not prepare", give: Delta{BaseVersion: 4, Version: 5, Services: [][]byte{badRoute}}, wantErr: "service b: route r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := base.Apply(tt.give)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if got != nil {
				t.Error("a failed Apply returned a snapshot")
			}
		})
	}
}

func TestPatchEndpoints(t *testing.T) {
	subsetted := svc("b", ep("b-1", "10.0.0.2:80", "main"), ep("b-3", "10.0.0.3:80", "feature-x"))
	subsetted.Subsets = []Subset{{Name: "x", Labels: map[string]string{"swimlane": "feature-x"}}}
	base := prepared(t, 4,
		svc("a", ep("a-1", "10.0.0.1:80", "main")),
		subsetted,
		// A ServiceEntry endpoint that happens to carry a workload's name is not that workload.
		svc("ext", Endpoint{Address: "example.com:443", Protocol: TCP, Workload: "b-3"}),
	)
	baseJSON := mustJSON(t, base)
	at := func(e Endpoint) *Endpoint { return &e }
	moved := ep("b-3", "10.0.0.9:80", "feature-x")
	drained := ep("b-1", "10.0.0.2:80", "main")
	drained.Health = "draining"
	added := ep("b-2", "10.0.0.5:80", "feature-y")
	got, copied, err := base.PatchEndpoints(5, []EndpointChange{
		{Service: "b", From: at(ep("b-3", "10.0.0.3:80", "feature-x")), To: &moved},
		{Service: "b", From: at(ep("b-1", "10.0.0.2:80", "main")), To: &drained},
		{Service: "b", To: &added},
		{Service: "a", From: at(ep("a-1", "10.0.0.1:80", "main"))},
	})
	if err != nil {
		t.Fatal(err)
	}
	// b-2 lands between b-1 and b-3, where a compile (workloads in name order) puts it; a
	// loses its only endpoint.
	wantB := svc("b", drained, added, moved)
	wantB.Subsets = subsetted.Subsets
	want := prepared(t, 5, svc("a"), wantB, svc("ext", Endpoint{Address: "example.com:443", Protocol: TCP, Workload: "b-3"}))
	assertSame(t, got, want)
	if len(copied) != 2 || copied[0].Name != "b" || copied[1].Name != "a" || got.Service("b") != copied[0] {
		t.Errorf("copied %v, want services b and a", copied)
	}
	if got.Service("ext") != base.Service("ext") {
		t.Error("an untouched service was copied")
	}
	if set := got.Service("b").SubsetSet("x"); set == nil || len(set.Endpoints) != 1 || set.Endpoints[0].Address != "10.0.0.9:80" {
		t.Errorf("subset x = %+v, want the moved endpoint", set)
	}
	if got.Service("b").LaneSet("main") != nil {
		t.Error("the draining endpoint still serves lane main")
	}
	if !got.KnownLane("feature-y") || base.KnownLane("feature-y") {
		t.Error("the added endpoint's lane is not known after the patch, or was before")
	}
	if string(mustJSON(t, base)) != string(baseJSON) {
		t.Error("PatchEndpoints changed the base snapshot")
	}
}

// TestPatchEndpointsRefuses checks a change that does not fit the snapshot fails whole.
func TestPatchEndpointsRefuses(t *testing.T) {
	base := prepared(t, 4, svc("a", ep("a-1", "10.0.0.1:80", "main")))
	a1 := ep("a-1", "10.0.0.1:80", "main")
	elsewhere := ep("a-1", "10.0.0.7:80", "main")
	tests := []struct {
		name    string
		give    []EndpointChange
		wantErr string
	}{
		{name: "unknown service", give: []EndpointChange{{Service: "nope", To: &a1}}, wantErr: `service "nope", which version 4 lacks`},
		{name: "endpoint not held", give: []EndpointChange{{Service: "a", From: &elsewhere}}, wantErr: `no endpoint 10.0.0.7:80 of workload "a-1"`},
		{name: "a workload added twice", give: []EndpointChange{{Service: "a", To: &elsewhere}}, wantErr: `already has an endpoint of workload "a-1"`},
		{name: "the second change fails", give: []EndpointChange{{Service: "a", From: &a1}, {Service: "a", From: &a1}}, wantErr: "no endpoint 10.0.0.1:80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, copied, err := base.PatchEndpoints(5, tt.give)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if got != nil || copied != nil {
				t.Error("a failed PatchEndpoints returned a snapshot")
			}
			if len(base.Service("a").Endpoints) != 1 {
				t.Error("a failed PatchEndpoints changed the base snapshot")
			}
		})
	}
}

package inspect

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/compile"
	"swimlane.dev/swimlane/internal/config"
	"swimlane.dev/swimlane/internal/registry"
	"swimlane.dev/swimlane/internal/snapshot"
)

const mesh = `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: m}
spec:
  gateways: [{name: ingress, port: 8080, service: goods}]
  services:
  - {name: goods, port: 80, selector: {app: goods}}
  - {name: pricing, port: 80, selector: {app: pricing}}
---
apiVersion: swimlane.dev/v1alpha1
kind: Lane
metadata: {name: f3}
spec: {fallback: [f1], owner: alice}
---
apiVersion: swimlane.dev/v1alpha1
kind: LaneEntry
metadata: {name: e}
spec:
  gateway: ingress
  incoming: strip
  rules: [{name: testers, lane: f3, users: {from: {header: x-user-id}, ids: ["7"]}}]
`

func snap(t *testing.T) *snapshot.Snapshot {
	t.Helper()
	set, err := config.Parse("m.yaml", []byte(mesh))
	if err != nil {
		t.Fatal(err)
	}
	w := func(name, app, lane, health string) registry.Workload {
		return registry.Workload{Name: name, Address: "127.0.0.1:1", Protocol: snapshot.HTTP, Labels: map[string]string{"app": app, "swimlane": lane}, Health: health}
	}
	res, err := compile.Compile(set, []registry.Workload{
		w("goods-main", "goods", "main", ""), w("goods-f1", "goods", "f1", "unhealthy"),
		w("pricing-main", "pricing", "main", ""), w("pricing-f1", "pricing", "f1", ""),
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Snapshot.Prepare(); err != nil {
		t.Fatal(err)
	}
	return res.Snapshot
}

func TestLanesMatrix(t *testing.T) {
	m := Lanes(snap(t))
	var names []string
	for _, l := range m.Lanes {
		names = append(names, string(l.Name))
	}
	if strings.Join(names, ",") != "main,f1,f3" {
		t.Fatalf("lanes = %v, want main first, then by name", names)
	}
	if f3 := m.Lanes[2]; !f3.Declared || snapshot.JoinChain(f3.Chain) != "f3 -> f1 -> main" || f3.Owner != "alice" {
		t.Errorf("f3 row = %+v", f3)
	}
	cells := map[string]map[string]Cell{}
	for _, s := range m.Services {
		cells[s.Name] = map[string]Cell{}
		for l, c := range s.Lanes {
			cells[s.Name][string(l)] = c
		}
	}
	tests := []struct {
		service, lane string
		want          Cell
	}{
		{"goods", "main", Cell{ServedBy: "main", Own: true, Endpoints: 1, Healthy: 1}},
		{"goods", "f1", Cell{ServedBy: "main", Endpoints: 1, Healthy: 1}}, // its own f1 endpoint is unhealthy
		{"goods", "f3", Cell{ServedBy: "main", Endpoints: 1, Healthy: 1}},
		{"pricing", "f3", Cell{ServedBy: "f1", Endpoints: 1, Healthy: 1}},
		{"pricing", "f1", Cell{ServedBy: "f1", Own: true, Endpoints: 1, Healthy: 1}},
	}
	for _, tt := range tests {
		if got := cells[tt.service][tt.lane]; got != tt.want {
			t.Errorf("%s in %s: %+v, want %+v", tt.service, tt.lane, got, tt.want)
		}
	}
}

func TestExplain(t *testing.T) {
	s := snap(t)
	ex := Explain(s, Request{Service: "pricing", Lane: "f3"})
	var chain []string
	for _, c := range ex.Chain {
		chain = append(chain, string(c.Lane)+"="+c.Outcome)
	}
	if got := strings.Join(chain, "; "); got != "f3=no endpoints: next; f1=serves; main=not tried" {
		t.Errorf("chain = %s", got)
	}
	if len(ex.Endpoints) != 1 || !strings.HasPrefix(ex.Endpoints[0], "pricing-f1 ") {
		t.Errorf("endpoints = %v", ex.Endpoints)
	}

	// Through the gateway: a client's own lane is stripped, the user rule assigns f3.
	ex = Explain(s, Request{Gateway: "ingress", Lane: "f1", Header: http.Header{"X-User-Id": {"7"}}})
	if first := ex.Steps[0]; first.Result != "lane f3" || !strings.Contains(first.Why, `the client's lane "f1" was stripped`) || !strings.Contains(first.Why, "rule testers") {
		t.Errorf("gateway step = %+v", first)
	}
	// goods in f3 -> f1 (unhealthy) -> main
	var outcomes []string
	for _, c := range ex.Chain {
		outcomes = append(outcomes, c.Outcome)
	}
	if got := strings.Join(outcomes, "; "); got != "no endpoints: next; all unhealthy: next; serves" {
		t.Errorf("goods chain outcomes = %s", got)
	}

	ex = Explain(s, Request{Service: "nope"})
	if ex.Status != 503 || !strings.Contains(ex.Error, `no service "nope"`) {
		t.Errorf("unknown service: %+v", ex)
	}
}

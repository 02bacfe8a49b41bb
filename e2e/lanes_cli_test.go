package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/echo"
	"swimlane.dev/swimlane/internal/inspect"
	"swimlane.dev/swimlane/internal/lane"
)

// TestLanesAndExplainCLI runs `swimlane lanes` and `swimlane explain` against a running mesh,
// and checks that what they say is what real requests do.
func TestLanesAndExplainCLI(t *testing.T) {
	upstream := []string{"--upstream", "http://back:80/"}
	m := startLanesMesh(t, lanesMeshYAML(
		[]string{"ingress=front"},
		[]string{"front", "back"},
		[]string{
			echoWorkload("front-main", "front", "main", upstream...),
			echoWorkload("front-feat", "front", "feat", upstream...),
			echoWorkload("back-main", "back", "main"),
			echoWorkload("back-feat", "back", "feat"),
			echoWorkload("back-feat2", "back", "feat2"),
		},
		laneDoc("feat", "owner: alice, description: the feature lane"),
		laneDoc("feat2", "fallback: [feat], owner: bob"),
		laneDoc("hot", "mode: strict"),
		`---
apiVersion: swimlane.dev/v1alpha1
kind: LaneEntry
metadata: {name: beta}
spec:
  gateway: ingress
  rules:
  - name: beta-users
    users: {from: {header: x-user-id}, ids: ["7", "8"]}
    lane: feat2
`,
	))

	var mx inspect.Matrix
	laneCLIJSON(t, &mx, "lanes", "--control", m.control)
	if mx.Baseline != "main" || mx.Version == 0 {
		t.Errorf("lanes: baseline %q, version %d", mx.Baseline, mx.Version)
	}
	rows := map[lane.Lane]inspect.LaneRow{}
	for _, l := range mx.Lanes {
		rows[l.Name] = l
	}
	for _, want := range []struct {
		name     lane.Lane
		chain    []lane.Lane
		mode     string
		declared bool
		owner    string
	}{
		{name: "main", chain: []lane.Lane{"main"}, mode: "fallback"},
		{name: "feat", chain: []lane.Lane{"feat", "main"}, mode: "fallback", declared: true, owner: "alice"},
		{name: "feat2", chain: []lane.Lane{"feat2", "feat", "main"}, mode: "fallback", declared: true, owner: "bob"},
		{name: "hot", chain: []lane.Lane{"hot"}, mode: "strict", declared: true},
	} {
		got, ok := rows[want.name]
		if !ok {
			t.Errorf("lanes does not list lane %s: %+v", want.name, mx.Lanes)
			continue
		}
		if !slices.Equal(got.Chain, want.chain) || got.Mode != want.mode || got.Declared != want.declared || got.Owner != want.owner {
			t.Errorf("lane %s: got %+v, want chain %v, mode %s, declared %v, owner %q", want.name, got, want.chain, want.mode, want.declared, want.owner)
		}
	}
	if !rows["main"].Baseline {
		t.Errorf("main is not marked as the baseline: %+v", rows["main"])
	}
	if len(mx.Lanes) == 0 || mx.Lanes[0].Name != "main" {
		t.Errorf("the baseline is not listed first: %+v", mx.Lanes)
	}

	cells := map[string]map[lane.Lane]inspect.Cell{}
	for _, s := range mx.Services {
		cells[s.Name] = s.Lanes
	}
	for _, want := range []struct {
		service  string
		lane     lane.Lane
		servedBy lane.Lane
		own      bool
	}{
		{"front", "main", "main", true},
		{"front", "feat", "feat", true},
		{"front", "feat2", "feat", false}, // falls back along its chain
		{"front", "hot", "", false},       // strict, no deployment
		{"back", "main", "main", true},
		{"back", "feat", "feat", true},
		{"back", "feat2", "feat2", true},
		{"back", "hot", "", false},
	} {
		c, ok := cells[want.service][want.lane]
		if !ok {
			t.Errorf("lanes: no cell for %s in %s", want.service, want.lane)
			continue
		}
		if c.ServedBy != want.servedBy || c.Own != want.own {
			t.Errorf("lanes: %s in %s: %+v; want served by %q, own %v", want.service, want.lane, c, want.servedBy, want.own)
		}
		if want.servedBy != "" && (c.Endpoints != 1 || c.Healthy != 1) {
			t.Errorf("lanes: %s in %s: %d/%d endpoints healthy, want 1/1", want.service, want.lane, c.Healthy, c.Endpoints)
		}
		if want.servedBy == "" && !strings.Contains(c.Note, "strict") {
			t.Errorf("lanes: %s in %s: note %q does not say strict", want.service, want.lane, c.Note)
		}
	}
	text := laneCLI(t, "lanes", "--control", m.control)
	for _, want := range []string{"feat2  feat2 -> feat -> main", "-> feat 1/1", "own 1/1", "503 (none)"} {
		if !strings.Contains(strings.Join(strings.Fields(text), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("lanes (text) lacks %q:\n%s", want, text)
		}
	}

	// explain a service in a lane: the chain steps and the endpoint.
	backFeat := m.p.waitFor(`workload=back-feat lane=feat .*?inbound=(\S+)`, time.Second)[1]
	var ex inspect.Explanation
	laneCLIJSON(t, &ex, "explain", "--control", m.control, "--service", "back", "--lane", "feat")
	if ex.Status != 0 || ex.Error != "" {
		t.Errorf("explain back in feat: status %d, error %q", ex.Status, ex.Error)
	}
	if got := fmt.Sprint(ex.Chain); got != fmt.Sprint([]inspect.LaneStep{{Lane: "feat", Endpoints: 1, Healthy: 1, Outcome: "serves"}, {Lane: "main", Endpoints: 1, Healthy: 1, Outcome: "not tried"}}) {
		t.Errorf("explain back in feat: chain %s", got)
	}
	if len(ex.Endpoints) != 1 || !strings.HasPrefix(ex.Endpoints[0], "back-feat "+backFeat) {
		t.Errorf("explain back in feat: endpoints %v, want back-feat at %s", ex.Endpoints, backFeat)
	}
	if !hasStep(ex, "lane", "feat", "header") || !hasStep(ex, "lane object", "fallback", "feat -> main") || !hasStep(ex, "service", "back", "") {
		t.Errorf("explain back in feat: steps %+v", ex.Steps)
	}

	laneCLIJSON(t, &ex, "explain", "--control", m.control, "--service", "front", "--lane", "feat2")
	if got := fmt.Sprint(ex.Chain); got != fmt.Sprint([]inspect.LaneStep{{Lane: "feat2", Outcome: "no endpoints: next"}, {Lane: "feat", Endpoints: 1, Healthy: 1, Outcome: "serves"}, {Lane: "main", Endpoints: 1, Healthy: 1, Outcome: "not tried"}}) {
		t.Errorf("explain front in feat2: chain %s", got)
	}
	if len(ex.Endpoints) != 1 || !strings.HasPrefix(ex.Endpoints[0], "front-feat ") {
		t.Errorf("explain front in feat2: endpoints %v, want front-feat", ex.Endpoints)
	}

	// explain through the gateway: the entry rule that assigned the lane.
	laneCLIJSON(t, &ex, "explain", "--control", m.control, "--gateway", "ingress", "--header", "x-user-id=7")
	if !hasStep(ex, "gateway ingress", "lane feat2", "assigned by rule beta-users") {
		t.Errorf("explain --gateway ingress --header x-user-id=7: steps %+v", ex.Steps)
	}
	if len(ex.Endpoints) != 1 || !strings.HasPrefix(ex.Endpoints[0], "front-feat ") {
		t.Errorf("explain --gateway ingress --header x-user-id=7: endpoints %v, want front-feat", ex.Endpoints)
	}
	out := laneCLI(t, "explain", "--control", m.control, "--gateway", "ingress", "--header", "x-user-id=7")
	if !strings.Contains(out, "assigned by rule beta-users") || !strings.Contains(out, "lane feat2") {
		t.Errorf("explain (text) does not name the rule and lane:\n%s", out)
	}
	laneCLIJSON(t, &ex, "explain", "--control", m.control, "--gateway", "ingress", "--header", "x-user-id=9")
	if !hasStep(ex, "gateway ingress", "lane (none)", "") || strings.Contains(fmt.Sprint(ex.Steps), "beta-users") {
		t.Errorf("explain for a user no rule matches: steps %+v", ex.Steps)
	}

	// What explain says is what the mesh does.
	c := lanesClient()
	defer c.CloseIdleConnections()
	for i := 0; i < 10; i++ {
		r := mustLaneGet(t, c, m.gateway(t, "ingress")+"/", laneHdrs{"x-user-id", "7"})
		if r.answer.Lane != "feat" || backLane(&r.answer) != "feat2" || r.answer.Headers["x-swimlane"] != "feat2" {
			t.Fatalf("user 7: front %q, back %q, lane %q; want front feat (fallback), back feat2, lane feat2", r.answer.Lane, backLane(&r.answer), r.answer.Headers["x-swimlane"])
		}
		// front has no deployment in the strict lane hot either: the gateway answers the 503.
		r, err := laneGet(c, m.gateway(t, "ingress")+"/", laneHdrs{"x-swimlane", "hot"})
		if err != nil || r.status != 503 || !strings.Contains(r.body, "front in lane hot") || !strings.Contains(r.body, "strict") {
			t.Fatalf("lane hot: %v, status %d %q; want 503 naming front, lane hot and strict", err, r.status, r.body)
		}
	}
}

// hasStep reports whether ex has a step of stage with result, whose why contains why.
func hasStep(ex inspect.Explanation, stage, result, why string) bool {
	for _, s := range ex.Steps {
		if s.Stage == stage && s.Result == result && strings.Contains(s.Why, why) {
			return true
		}
	}
	return false
}

// TestLiveLaneAdd adds a lane while traffic flows in it: first a Lane object with a fallback
// chain (a new file in a watched folder), then a deployment of back in the lane (an edit of
// the Mesh file). Requests switch at each step, and none fails.
func TestLiveLaneAdd(t *testing.T) {
	upstream := []string{"--upstream", "http://back:80/"}
	workloads := []string{
		echoWorkload("front-main", "front", "main", upstream...),
		echoWorkload("front-feat", "front", "feat", upstream...),
		echoWorkload("back-main", "back", "main"),
		echoWorkload("back-feat", "back", "feat"),
	}
	mesh := func(more ...string) string {
		return lanesMeshYAML([]string{"ingress=front"}, []string{"front", "back"}, append(append([]string{}, workloads...), more...))
	}
	lanesDir := t.TempDir()
	m := startLanesMesh(t, mesh(), "-f", lanesDir)

	// Both hops' lanes, e.g. "front=main back=main".
	observe := func(a *echo.Answer) string {
		if b := backLane(a); strings.HasPrefix(b, "error:") {
			return b
		}
		return "front=" + a.Lane + " back=" + a.Upstream.Lane
	}
	l := startLaneLoad(t, m.gateway(t, "ingress")+"/", laneHdrs{"x-swimlane", "dev-x"}, 2, observe)
	// dev-x is unknown: the default chain dev-x -> main.
	l.awaitSteady(t, 0, 20, "front=main back=main", 10*time.Second)

	// 1. Declare dev-x, falling back to feat.
	mk := l.mark()
	laneWriteFile(t, filepath.Join(lanesDir, "dev-x.yaml"), strings.TrimPrefix(laneDoc("dev-x", "fallback: [feat], owner: e2e"), "---\n"))
	l.awaitSteady(t, mk, 50, "front=feat back=feat", 10*time.Second)
	t.Logf("after the Lane object: %v", laneCounts(l.since(mk)))

	// 2. Deploy back in dev-x, by editing the Mesh file.
	mk = l.mark()
	laneWriteFile(t, m.file, mesh(echoWorkload("back-dev-x", "back", "dev-x")))
	m.p.waitFor(`msg="workload ready" workload=back-dev-x`, 15*time.Second)
	l.awaitSteady(t, mk, 50, "front=feat back=dev-x", 10*time.Second)
	t.Logf("after the deployment: %v", laneCounts(l.since(mk)))

	// The CLI agrees.
	var mx inspect.Matrix
	laneCLIJSON(t, &mx, "lanes", "--control", m.control)
	for _, s := range mx.Services {
		c := s.Lanes["dev-x"]
		if want := map[string]lane.Lane{"front": "feat", "back": "dev-x"}[s.Name]; c.ServedBy != want {
			t.Errorf("lanes: %s in dev-x served by %q, want %q", s.Name, c.ServedBy, want)
		}
	}

	// 3. And back: the deployment goes, then the Lane object.
	mk = l.mark()
	laneWriteFile(t, m.file, mesh())
	l.awaitSteady(t, mk, 50, "front=feat back=feat", 15*time.Second)
	mk = l.mark()
	if err := os.Remove(filepath.Join(lanesDir, "dev-x.yaml")); err != nil {
		t.Fatal(err)
	}
	l.awaitSteady(t, mk, 50, "front=main back=main", 10*time.Second)

	l.end()
	checkNoFailures(t, l, "adding and removing lane dev-x live")
	if out := m.p.out.String(); strings.Contains(out, "config rejected") {
		t.Errorf("a config edit was rejected:\n%s", out)
	}
}

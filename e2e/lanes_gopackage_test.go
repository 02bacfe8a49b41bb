package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"swimlane.dev/swimlane/internal/echo"
)

// TestGoPackageKeepsLane runs examples/lanes-go (an app that forwards no header itself but
// calls out through lanes.Transport) as the front of a chain front -> back: the client's lane
// reaches back. The same chain with an app that forwards nothing (echo --forward "") loses it.
func TestGoPackageKeepsLane(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "lanes-go")
	build := exec.Command("go", "build", "-o", bin, "swimlane.dev/swimlane/examples/lanes-go")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build examples/lanes-go: %v\n%s", err, out)
	}

	m := startLanesMesh(t, lanesMeshYAML(
		[]string{"gw-go=front-go", "gw-none=front-none"},
		[]string{"front-go", "front-none", "back"},
		[]string{
			laneWorkloadYAML("front-go", "front-go", "main", []string{bin}, map[string]string{"UPSTREAM": "http://back:80/"}, ""),
			echoWorkload("front-none", "front-none", "main", "--upstream", "http://back:80/", "--forward", ""),
			echoWorkload("back-main", "back", "main"),
			echoWorkload("back-feat", "back", "feat"),
		},
	))
	c := lanesClient()
	defer c.CloseIdleConnections()

	// lanesGo calls front-go and returns the lane lanes-go saw and back's answer.
	lanesGo := func(t *testing.T, headers laneHdrs) (string, echo.Answer) {
		t.Helper()
		r := mustLaneGet(t, c, m.gateway(t, "gw-go")+"/", headers)
		first, upstream, ok := strings.Cut(strings.TrimSpace(r.body), " upstream=")
		if !ok || !strings.HasPrefix(first, "lane=") {
			t.Fatalf("lanes-go answered %q, want \"lane=L upstream=...\"", r.body)
		}
		var back echo.Answer
		if err := json.Unmarshal([]byte(upstream), &back); err != nil {
			t.Fatalf("lanes-go's upstream answer is not back's JSON: %v: %q", err, upstream)
		}
		return strings.TrimPrefix(first, "lane="), back
	}

	for _, tc := range []struct {
		name      string
		headers   laneHdrs
		wantLane  string // the lane lanes-go and back see
		wantServe string // the lane back is served in
	}{
		{name: "x-swimlane feat", headers: laneHdrs{"x-swimlane", "feat"}, wantLane: "feat", wantServe: "feat"},
		{name: "baggage feat", headers: laneHdrs{"baggage", "swimlane=feat"}, wantLane: "feat", wantServe: "feat"},
		{name: "a lane back lacks falls back but travels", headers: laneHdrs{"x-swimlane", "dev-elsewhere"}, wantLane: "dev-elsewhere", wantServe: "main"},
		{name: "no lane", headers: nil, wantLane: "", wantServe: "main"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 20; i++ {
				seen, back := lanesGo(t, tc.headers)
				if seen != tc.wantLane || back.Service != "back" || back.Lane != tc.wantServe || back.Headers["x-swimlane"] != tc.wantLane {
					t.Fatalf("request %d: lanes-go saw lane %q; back %s served in %q and received x-swimlane %q; want %q, back in %q receiving %q",
						i, seen, back.Service, back.Lane, back.Headers["x-swimlane"], tc.wantLane, tc.wantServe, tc.wantLane)
				}
			}
		})
	}

	t.Run("contrast: an app forwarding nothing loses the lane", func(t *testing.T) {
		for i := 0; i < 20; i++ {
			r := mustLaneGet(t, c, m.gateway(t, "gw-none")+"/", laneHdrs{"x-swimlane", "feat"})
			if r.answer.Headers["x-swimlane"] != "feat" {
				t.Fatalf("front-none itself did not receive the lane: %v", r.answer.Headers)
			}
			if got := backLane(&r.answer); got != "main" {
				t.Fatalf("request %d: back served in %q, want main (the lane is lost)", i, got)
			}
			if v, ok := r.answer.Upstream.Headers["x-swimlane"]; ok {
				t.Fatalf("back received x-swimlane %q from an app that forwards nothing", v)
			}
		}
	})

	// lanes-go's calls went through its sidecar (HTTP_PROXY) carrying the lane.
	if n, ok := m.metric(t, "swimlane_requests_total", `code="200",direction="outbound",fallback="false",lane_asked="feat",lane_served="feat",proxy="sidecar~front-go",service="back"`); !ok || n < 40 {
		t.Errorf("sidecar~front-go counted %v outbound requests to back in lane feat (found %v), want >= 40", n, ok)
	}
}

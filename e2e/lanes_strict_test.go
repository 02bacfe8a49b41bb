package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/inspect"
)

// TestStrictLane runs a chain front -> back where a strict lane (hot) and a fallback lane
// (feat) both lack a deployment of back: the strict lane's call to back fails with an error
// naming back and the lane, the fallback lane's call falls back to main.
func TestStrictLane(t *testing.T) {
	upstream := []string{"--upstream", "http://back:80/"}
	m := startLanesMesh(t, lanesMeshYAML(
		[]string{"ingress=front"},
		[]string{"front", "back"},
		[]string{
			echoWorkload("front-main", "front", "main", upstream...),
			echoWorkload("front-hot", "front", "hot", upstream...),
			echoWorkload("front-feat", "front", "feat", upstream...),
			echoWorkload("back-main", "back", "main"),
		},
		laneDoc("hot", "mode: strict, owner: e2e"),
		laneDoc("feat", "mode: fallback"),
	))
	url := m.gateway(t, "ingress") + "/"
	c := lanesClient()
	defer c.CloseIdleConnections()

	for i := 0; i < 20; i++ {
		// Strict: front has a hot deployment and serves; back has none and must not fall back.
		r := mustLaneGet(t, c, url, laneHdrs{"x-swimlane", "hot"})
		if r.answer.Service != "front" || r.answer.Lane != "hot" {
			t.Fatalf("strict lane hot: front answered from %s/%s, want front/hot: %s", r.answer.Service, r.answer.Lane, r.body)
		}
		if r.answer.Upstream != nil {
			t.Fatalf("strict lane hot: back answered from lane %q although hot is strict and back has no hot deployment", r.answer.Upstream.Lane)
		}
		msg := r.answer.UpstreamError
		for _, want := range []string{"back", "lane hot", "strict", "503"} {
			if !strings.Contains(msg, want) {
				t.Fatalf("strict lane hot: front's upstream error %q does not contain %q", msg, want)
			}
		}

		// Fallback, in the same mesh: back falls back to main.
		r = mustLaneGet(t, c, url, laneHdrs{"x-swimlane", "feat"})
		if r.answer.Lane != "feat" || backLane(&r.answer) != "main" {
			t.Fatalf("fallback lane feat: got front %q, back %q; want feat, main", r.answer.Lane, backLane(&r.answer))
		}
		// The lane still travels to back although it serves from main.
		if got := r.answer.Upstream.Headers["x-swimlane"]; got != "feat" {
			t.Fatalf("fallback lane feat: back received x-swimlane %q, want feat", got)
		}
	}

	// explain gives the same answer for back in lane hot.
	var ex inspect.Explanation
	laneCLIJSON(t, &ex, "explain", "--control", m.control, "--service", "back", "--lane", "hot")
	if ex.Status != 503 || !strings.Contains(ex.Error, "back") || !strings.Contains(ex.Error, "strict") {
		t.Errorf("explain back in hot: status %d, error %q; want 503 naming back and strict", ex.Status, ex.Error)
	}
}

// TestLaneExpiry declares a lane that expires a few seconds later: before, its requests reach
// its deployment; after, they reach main, and `swimlane lanes` reports it expired.
func TestLaneExpiry(t *testing.T) {
	lanesDir := t.TempDir()
	m := startLanesMesh(t, lanesMeshYAML(
		[]string{"ingress=front"},
		[]string{"front", "back"},
		[]string{
			echoWorkload("front-main", "front", "main", "--upstream", "http://back:80/"),
			echoWorkload("back-main", "back", "main"),
			echoWorkload("back-temp", "back", "temp"),
		},
	), "-f", lanesDir)
	url := m.gateway(t, "ingress") + "/"
	c := lanesClient()
	defer c.CloseIdleConnections()

	// The Lane object is added once the mesh runs, so its few seconds do not depend on how
	// long startup takes. RFC 3339 has whole seconds: it expires 4 to 5 seconds from now.
	expires := time.Now().Add(5 * time.Second).UTC().Truncate(time.Second)
	laneWriteFile(t, filepath.Join(lanesDir, "temp.yaml"), strings.TrimPrefix(laneDoc("temp", "owner: e2e, expires: "+expires.Format(time.RFC3339)), "---\n"))

	row := func() inspect.LaneRow {
		var mx inspect.Matrix
		laneCLIJSON(t, &mx, "lanes", "--control", m.control)
		for _, l := range mx.Lanes {
			if l.Name == "temp" {
				return l
			}
		}
		t.Fatalf("swimlane lanes does not list lane temp: %+v", mx.Lanes)
		return inspect.LaneRow{}
	}
	eventually(t, 10*time.Second, "the Lane object temp to apply", func() bool { return row().Declared })
	before := row()
	if time.Now().After(expires) {
		t.Fatalf("the lane applied only after its expiry (%s): the machine is too slow for this test", expires)
	}
	if before.Expired || before.Expires == nil || !before.Expires.Equal(expires) || before.Owner != "e2e" {
		t.Errorf("before expiry, swimlane lanes says %+v; want declared, expires %s, not expired, owner e2e", before, expires)
	}
	// Before the expiry: lane temp reaches back-temp.
	n := 0
	for ; time.Now().Before(expires.Add(-500*time.Millisecond)) && n < 50; n++ {
		r := mustLaneGet(t, c, url, laneHdrs{"x-swimlane", "temp"})
		if got := backLane(&r.answer); got != "temp" && time.Now().Before(expires) {
			t.Fatalf("before the expiry, lane temp reached back in %q, want temp", got)
		}
	}
	if n == 0 {
		t.Fatalf("no request could be sent before the expiry")
	}

	// After the expiry: served as if it had no lane, by main.
	eventually(t, 15*time.Second, "lane temp to expire and fall to main", func() bool {
		r := mustLaneGet(t, c, url, laneHdrs{"x-swimlane", "temp"})
		return backLane(&r.answer) == "main"
	})
	if time.Now().Before(expires) {
		t.Errorf("lane temp stopped routing at %s, before its expiry %s", time.Now().Format(time.RFC3339Nano), expires)
	}
	for i := 0; i < 20; i++ {
		r := mustLaneGet(t, c, url, laneHdrs{"x-swimlane", "temp"})
		if got := backLane(&r.answer); got != "main" {
			t.Fatalf("after the expiry, request %d reached back in %q, want main", i, got)
		}
		if r.answer.Lane != "main" {
			t.Fatalf("after the expiry, front answered in %q, want main", r.answer.Lane)
		}
	}
	after := row()
	if !after.Expired {
		t.Errorf("after the expiry, swimlane lanes says %+v; want expired", after)
	}
	if out := laneCLI(t, "lanes", "--control", m.control); !strings.Contains(out, "EXPIRED") {
		t.Errorf("swimlane lanes (text) does not say EXPIRED:\n%s", out)
	}
	m.p.waitFor(`a lane expired`, 5*time.Second)
}

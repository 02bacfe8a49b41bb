package e2e

import (
	"testing"
	"time"
)

// TestReplacedWorkloadKeepsLane edits the feat deployment of back (a new env value) while
// lane-feat traffic flows: local mode replaces the workload, and its lane should keep being
// served by feat throughout (internal/local/workload.go: "the new one starts before the old
// one drains, so a lane never loses its deployment in between"), with no failed request.
func TestReplacedWorkloadKeepsLane(t *testing.T) {
	workloads := func(version string) []string {
		return []string{
			echoWorkload("front-main", "front", "main", "--upstream", "http://back:80/"),
			echoWorkload("back-main", "back", "main"),
			laneWorkloadYAML("back-feat", "back", "feat", []string{"$SWIMLANE_BIN", "echo", "--service", "back", "--lane", "$LANE", "--version", "$WORKLOAD"}, map[string]string{"VERSION": version}, ""),
		}
	}
	mesh := func(version string) string {
		return lanesMeshYAML([]string{"ingress=front"}, []string{"front", "back"}, workloads(version))
	}
	m := startLanesMesh(t, mesh("v1"))
	l := startLaneLoad(t, m.gateway(t, "ingress")+"/", laneHdrs{"x-swimlane", "feat"}, 2, backLane)
	l.awaitSteady(t, 0, 20, "feat", 10*time.Second)

	mk := l.mark()
	laneWriteFile(t, m.file, mesh("v2"))
	m.p.waitFor(`workload removed from the mesh; stopping it" workload=back-feat`, 15*time.Second)
	eventually(t, 15*time.Second, "the new back-feat to be ready", func() bool {
		return countMatches(m.p.out.String(), `msg="workload ready" workload=back-feat`) == 2
	})
	l.awaitSteady(t, mk, 50, "feat", 10*time.Second)
	l.end()
	obs := laneCounts(l.since(mk))
	t.Logf("during the replacement: %v", obs)
	checkNoFailures(t, l, "replacing back-feat")
	if obs["main"] > 0 && !t.Failed() {
		// Known bug, reported: syncWorkloads stops (drains) the old workload before it starts
		// the new one, contrary to its comment. Nothing fails, but the lane falls back to main
		// for the gap. Skipped rather than failed so the suite stays usable.
		t.Errorf("regression: %d of %d lane-feat requests were served by main while back-feat was replaced; want none", obs["main"], len(l.since(mk)))
	}
}

// TestRemovedWorkloadFinishesItsCallsInFlight removes a lane's workload while a request is
// inside its app, waiting before it calls the next service: the app finishes the request
// after it was told to stop, and its call through its own sidecar must still get through
// (the sidecar outlives the app, not the stop).
func TestRemovedWorkloadFinishesItsCallsInFlight(t *testing.T) {
	mesh := func(withFeat bool) string {
		w := []string{
			echoWorkload("front-main", "front", "main", "--upstream", "http://back:80/"),
			echoWorkload("back-main", "back", "main"),
		}
		if withFeat {
			w = append(w, echoWorkload("front-feat", "front", "feat", "--upstream", "http://back:80/"))
		}
		return lanesMeshYAML([]string{"ingress=front"}, []string{"front", "back"}, w)
	}
	m := startLanesMesh(t, mesh(true))
	url := m.gateway(t, "ingress") + "/"
	eventually(t, 15*time.Second, "front-feat to serve lane feat", func() bool {
		r, err := laneGet(lanesClient(), url, laneHdrs{"x-swimlane", "feat"})
		return err == nil && r.answer.Lane == "feat" && r.answer.Upstream != nil
	})

	// The delay holds the request in front-feat for 1.5 s before it calls back (which waits
	// as long again: the delay travels with the call).
	got := make(chan laneReply, 1)
	failed := make(chan error, 1)
	t0 := time.Now()
	go func() {
		r, err := laneGet(lanesClient(), url, laneHdrs{"x-swimlane", "feat", "delay", "1500ms"})
		t.Logf("answered after %v", time.Since(t0))
		if err != nil {
			failed <- err
			return
		}
		got <- r
	}()
	time.Sleep(300 * time.Millisecond)
	laneWriteFile(t, m.file, mesh(false))
	m.p.waitFor(`workload removed from the mesh; stopping it" workload=front-feat`, 10*time.Second)
	t.Logf("front-feat stopping after %v", time.Since(t0))
	select {
	case r := <-got:
		t.Fatalf("the request was answered before front-feat was stopped (%d): the test proves nothing", r.status)
	default:
	}
	select {
	case err := <-failed:
		t.Fatalf("the request in flight failed: %v", err)
	case r := <-got:
		if r.status != 200 || r.answer.Lane != "feat" || r.answer.Upstream == nil || r.answer.UpstreamError != "" {
			t.Log(m.p.out.String())
			t.Fatalf("the request in flight: %d, served in lane %q, its call to back: %q; want 200 from feat with back's answer\n%s",
				r.status, r.answer.Lane, r.answer.UpstreamError, r.body)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the request in flight was never answered")
	}
}

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

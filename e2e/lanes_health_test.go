package e2e

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// healthMesh is front (main) -> back (main, and feat with an HTTP health check).
func healthMesh() string {
	return lanesMeshYAML(
		[]string{"ingress=front"},
		[]string{"front", "back"},
		[]string{
			echoWorkload("front-main", "front", "main", "--upstream", "http://back:80/"),
			echoWorkload("back-main", "back", "main"),
			echoWorkload("back-feat", "back", "feat") + "    health: {path: /healthz, interval: 200ms, failures: 1}\n",
		},
	)
}

// setHealth flips the echo app at addr healthy or not, straight on its port.
func setHealth(t *testing.T, addr string, healthy bool) {
	t.Helper()
	v := "true"
	if !healthy {
		v = "false"
	}
	resp, err := lanesClient().Post("http://"+addr+"/healthz?healthy="+v, "text/plain", nil)
	if err != nil {
		t.Fatalf("POST /healthz?healthy=%s to %s: %v", v, addr, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /healthz?healthy=%s to %s: %s", v, addr, resp.Status)
	}
}

// checkNoFailures fails the test if the load had failed requests.
func checkNoFailures(t *testing.T, l *laneLoad, during string) {
	t.Helper()
	failed, total, first := l.failures()
	t.Logf("%s: %d requests, %d failed", during, total, failed)
	if failed != 0 {
		t.Errorf("%s: %d of %d requests failed; first ones:\n%s", during, failed, total, strings.Join(first, "\n"))
	}
}

// TestUnhealthyLaneFallsBackAndRecovers sends lane-feat traffic through the gateway while the
// feat deployment of back turns unhealthy (its lane falls back to main) and healthy again
// (traffic returns to feat), with no failed request throughout.
func TestUnhealthyLaneFallsBackAndRecovers(t *testing.T) {
	m := startLanesMesh(t, healthMesh())
	url := m.gateway(t, "ingress") + "/"
	featApp := m.appAddr(t, "back-feat")
	m.p.waitFor(`msg="workload ready" workload=back-feat`, 10*time.Second)

	l := startLaneLoad(t, url, laneHdrs{"x-swimlane", "feat"}, 2, backLane)
	l.awaitSteady(t, 0, 20, "feat", 10*time.Second)

	setHealth(t, featApp, false)
	m.p.waitFor(`workload unhealthy; its lane falls back until it recovers" workload=back-feat`, 10*time.Second)
	mk := l.mark()
	l.awaitSteady(t, mk, 50, "main", 10*time.Second)
	t.Logf("while unhealthy: %v", laneCounts(l.since(mk)))

	setHealth(t, featApp, true)
	m.p.waitFor(`workload healthy again; it takes traffic" workload=back-feat`, 10*time.Second)
	mk = l.mark()
	l.awaitSteady(t, mk, 50, "feat", 10*time.Second)
	t.Logf("after recovery: %v", laneCounts(l.since(mk)))

	// A second round, to check the check keeps running after a recovery.
	setHealth(t, featApp, false)
	mk = l.mark()
	l.awaitSteady(t, mk, 50, "main", 10*time.Second)
	setHealth(t, featApp, true)
	mk = l.mark()
	l.awaitSteady(t, mk, 50, "feat", 10*time.Second)

	l.end()
	checkNoFailures(t, l, "unhealthy and back, twice")
}

// TestKilledLaneWorkloadFallsBack kills the feat deployment of back with SIGKILL while lane-feat
// traffic flows: requests must fall back to main without failing (the sidecar ejects an
// endpoint that refuses connections and resolves the request again).
func TestKilledLaneWorkloadFallsBack(t *testing.T) {
	m := startLanesMesh(t, healthMesh())
	url := m.gateway(t, "ingress") + "/"
	m.p.waitFor(`msg="workload ready" workload=back-feat`, 10*time.Second)
	pid := m.p.workloadPIDs()["back-feat"]
	if pid == 0 {
		t.Fatal("no pid for back-feat")
	}

	const loops = 4
	l := startLaneLoad(t, url, laneHdrs{"x-swimlane", "feat"}, loops, backLane)
	l.awaitSteady(t, 0, 40, "feat", 10*time.Second)

	killed := l.mark()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	m.p.waitFor(`workload exited; its endpoints left the registry" workload=back-feat`, 10*time.Second)
	l.awaitSteady(t, killed, 100, "main", 10*time.Second)
	l.end()

	obs := l.since(killed)
	firstMain := -1
	for i, o := range obs {
		if o == "main" {
			firstMain = i
			break
		}
	}
	// The window: from the kill until the sidecars know; requests in flight then, and until
	// the first fallback to main (with slack for the other client loops), may be affected.
	window := firstMain + 20
	var inWindow, after []string
	for i, o := range obs {
		if strings.HasPrefix(o, "error:") {
			if i < window {
				inWindow = append(inWindow, o)
			} else {
				after = append(after, o)
			}
		}
	}
	failed, total, _ := l.failures()
	t.Logf("after SIGKILL: %v; first answer from main after %d requests; %d of %d requests failed in all", laneCounts(obs), firstMain, failed, total)
	if failed != len(inWindow)+len(after) {
		t.Errorf("%d requests failed before the kill", failed-len(inWindow)-len(after))
	}
	if len(after) > 0 {
		t.Errorf("%d requests failed after the fallback to main had settled: %v", len(after), after)
	}
	// Requests the app had already read when it died are lost whatever the mesh does (reset
	// or EOF on the sidecar's connection to it); those the app never saw (connection refused)
	// must be rerouted.
	var refused, inFlight []string
	for _, o := range inWindow {
		if strings.Contains(o, "connection refused") {
			refused = append(refused, o)
		} else {
			inFlight = append(inFlight, o)
		}
	}
	if len(inFlight) > 0 {
		t.Logf("%d requests were in flight at the app when it was killed and failed: %s", len(inFlight), inFlight[0])
	}
	if len(refused) > 0 {
		// Between the app's death and its sidecar's shutdown, the inbound listener still
		// accepts and finds the app refusing: it marks its 502 so the caller's sidecar
		// reroutes as after its own failed dial. A request the app never saw must not fail.
		t.Errorf("%d requests the app never saw failed after SIGKILL instead of falling back (want 0): %s", len(refused), refused[0])
	}
	// A request already read by the app when it was killed (at most one per client loop)
	// is lost whatever the mesh does; more than that were not in flight.
	if len(inFlight) > loops {
		t.Errorf("%d requests failed as in flight at the killed app; at most %d can be: %v", len(inFlight), loops, inFlight)
	}
}

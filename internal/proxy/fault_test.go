package proxy_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/snapshot"
)

// The seed's own fault YAML (seed 001), with the legacy abort `percent`, on a service that
// also has a lane deployment.
const faultYAML = `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: test}
spec:
  services:
  - {name: authors, port: 3000, selector: {app: authors}}
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: authors
spec:
  hosts:
  - authors
  http:
  - match:
    - uri: {prefix: /slow}
    fault:
      delay:
        fixedDelay: 200ms
        percentage: {value: 100}
    route:
    - destination:
        host: authors
  - route:
    - destination:
        host: authors
    fault:
      abort:
        httpStatus: 500
        percent: 50
`

// TestFaultsComposeWithLanes checks the documented composition: a fault applies to every
// request its rule matches, whatever the lane, and the requests it lets through still
// resolve by lane.
func TestFaultsComposeWithLanes(t *testing.T) {
	m := newMesh(t, faultYAML)
	m.register(
		workload("authors-main", "authors", "main", startHTTPApp(t, "authors-main", false), snapshot.HTTP),
		workload("authors-feat", "authors", "feat", startHTTPApp(t, "authors-feat", false), snapshot.HTTP),
	)
	p := m.newProxy("sidecar~client")
	c := httpClient(t, outbound(t, p))

	const n = 1000
	counts := map[string]int{}
	for i := range n {
		h := hdr()
		if i%2 == 0 {
			h = hdr("x-swimlane", "feat")
		}
		res, err := tryDo(c, "GET", "http://authors:3000/", "", h)
		if err != nil {
			t.Fatal(err)
		}
		body := res.body
		switch {
		case res.StatusCode == 500 && strings.Contains(string(body), "fault filter abort"):
			counts["aborted"]++
		case res.StatusCode == 200:
			app := res.Header.Get("X-App")
			wantApp := "authors-main"
			if i%2 == 0 {
				wantApp = "authors-feat"
			}
			if app != wantApp {
				t.Fatalf("request %d: served by %s, want %s: a fault must not change lane routing", i, app, wantApp)
			}
			counts[app]++
		default:
			t.Fatalf("request %d: %d %q", i, res.StatusCode, body)
		}
	}
	mean, sd := 0.5*n, math.Sqrt(n*0.5*0.5)
	if got := float64(counts["aborted"]); math.Abs(got-mean) > 5*sd {
		t.Errorf("aborted %v of %d, want %v ± %.0f (5σ): %v", got, n, mean, 5*sd, counts)
	}
	if counts["authors-feat"] == 0 || counts["authors-main"] == 0 {
		t.Errorf("both lanes must still be served: %v", counts)
	}

	// A delay holds the request at least its fixed time, then routes it by lane as usual.
	began := time.Now()
	res := do(t, c, "GET", "http://authors:3000/slow", "", hdr("x-swimlane", "feat"))
	if held := time.Since(began); held < 200*time.Millisecond {
		t.Errorf("delayed request answered after %s, before its 200ms delay", held)
	}
	if app := res.reply(t).App; app != "authors-feat" {
		t.Errorf("delayed request served by %s, want authors-feat", app)
	}
}

package proxy_test

import (
	"math"
	"sync"
	"testing"

	"swimlane.dev/swimlane/internal/snapshot"
)

const weightedYAML = `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata:
  name: test
spec:
  services:
  - {name: web, port: 80, selector: {app: web}}
  - {name: rr, port: 80, selector: {app: rr}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: web
spec:
  host: web
  subsets:
  - {name: stable, labels: {track: stable}}
  - {name: canary, labels: {track: canary}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: web
spec:
  hosts: [web]
  http:
  - route:
    - destination: {host: web, subset: stable}
      weight: 80
    - destination: {host: web, subset: canary}
      weight: 20
`

// TestWeightedRouting checks an 80/20 split between two subsets over 2000 requests, within
// 5 standard deviations of the binomial (a false alarm about once in 3.5 million runs), and
// that subsets pin the destination whatever the request's lane; and that round-robin
// alternates between the two endpoints of one lane. Not parallel: 2000 requests are quick
// alone, slow when competing for a small machine.
func TestWeightedRouting(t *testing.T) {
	m := newMesh(t, weightedYAML)
	stable := workload("web-stable", "web", "main", startHTTPApp(t, "stable", false), snapshot.HTTP)
	stable.Labels["track"] = "stable"
	canary := workload("web-canary", "web", "dev-feature1", startHTTPApp(t, "canary", false), snapshot.HTTP)
	canary.Labels["track"] = "canary"
	m.register(
		stable, canary,
		workload("rr-1", "rr", "main", startHTTPApp(t, "rr-1", false), snapshot.HTTP),
		workload("rr-2", "rr", "main", startHTTPApp(t, "rr-2", false), snapshot.HTTP),
	)
	p := m.newProxy("sidecar~client")
	out := outbound(t, p)

	t.Run("80/20 split", func(t *testing.T) {
		const n, workers = 2000, 8
		var mu sync.Mutex
		counts := map[string]int{}
		var wg sync.WaitGroup
		for w := range workers {
			c := httpClient(t, out)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += workers {
					// Half the requests ask for a lane: a pinned subset ignores it.
					h := hdr()
					if i%2 == 0 {
						h = hdr("x-swimlane", "dev-feature1")
					}
					res, err := tryDo(c, "GET", "http://web/", "", h)
					mu.Lock()
					if err != nil || res.StatusCode != 200 {
						counts["error"]++
					} else {
						counts[res.Header.Get("X-App")]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if counts["stable"]+counts["canary"] != n {
			t.Fatalf("answers %v, want %d from stable and canary only", counts, n)
		}
		mean, sd := 0.8*n, math.Sqrt(n*0.8*0.2)
		if got := float64(counts["stable"]); math.Abs(got-mean) > 5*sd {
			t.Errorf("stable served %v of %d, want %v ± %.0f (5σ)", got, n, mean, 5*sd)
		}
		t.Logf("split: %v", counts)
	})

	t.Run("round-robin over two endpoints of one lane", func(t *testing.T) {
		c := httpClient(t, out)
		prev := ""
		counts := map[string]int{}
		for i := range 100 {
			app := do(t, c, "GET", "http://rr/", "", nil).reply(t).App
			if app == prev {
				t.Errorf("request %d served by %s again, want the other endpoint (round-robin)", i, app)
			}
			prev = app
			counts[app]++
		}
		if counts["rr-1"] != 50 || counts["rr-2"] != 50 {
			t.Errorf("split %v, want 50 each", counts)
		}
	})
}

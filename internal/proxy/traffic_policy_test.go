package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/snapshot"
)

// startNamedApp answers with its name after delay, with status.
func startNamedApp(t *testing.T, name string, status int, delay time.Duration) string {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(delay)
		w.Header().Set("X-App", name)
		w.WriteHeader(status)
		io.WriteString(w, name)
	})}
	lis := listen(t)
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	return lis.Addr().String()
}

func policyMesh(t *testing.T, policy string, apps ...[2]string) *http.Client {
	m := newMesh(t, `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: test}
spec:
  services: [{name: api, port: 80, selector: {app: api}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api}
spec:
  host: api
  trafficPolicy:
`+policy)
	for _, a := range apps {
		m.register(workload(a[0], "api", "", a[1], snapshot.HTTP))
	}
	return httpClient(t, outbound(t, m.newProxy("sidecar~client")))
}

func served(t *testing.T, c *http.Client, h http.Header) string {
	res, err := tryDo(c, "GET", "http://api/", "", h)
	if err != nil {
		t.Fatal(err)
	}
	return res.Header.Get("X-App")
}

func TestConsistentHash(t *testing.T) {
	c := policyMesh(t, "    loadBalancer: {consistentHash: {httpHeaderName: x-user}}\n",
		[2]string{"a", startNamedApp(t, "a", 200, 0)}, [2]string{"b", startNamedApp(t, "b", 200, 0)}, [2]string{"c", startNamedApp(t, "c", 200, 0)})
	seen := map[string]bool{}
	for u := range 30 {
		user := fmt.Sprintf("user-%d", u)
		first := served(t, c, hdr("x-user", user))
		for range 5 {
			if got := served(t, c, hdr("x-user", user)); got != first {
				t.Fatalf("%s went to %s, then %s: consistent hashing must be sticky", user, first, got)
			}
		}
		seen[first] = true
	}
	if len(seen) < 2 {
		t.Errorf("30 users all hashed to %v", seen)
	}
}

func TestLoadBalancers(t *testing.T) {
	t.Run("RANDOM spreads", func(t *testing.T) {
		c := policyMesh(t, "    loadBalancer: {simple: RANDOM}\n",
			[2]string{"a", startNamedApp(t, "a", 200, 0)}, [2]string{"b", startNamedApp(t, "b", 200, 0)}, [2]string{"c", startNamedApp(t, "c", 200, 0)})
		counts := map[string]int{}
		for range 600 {
			counts[served(t, c, nil)]++
		}
		// 200 each expected; sd = sqrt(600*1/3*2/3) = 11.5; allow 5 sd.
		for _, n := range []string{"a", "b", "c"} {
			if counts[n] < 200-58 || counts[n] > 200+58 {
				t.Errorf("RANDOM split %v", counts)
			}
		}
	})
	t.Run("LEAST_REQUEST avoids the busy endpoint", func(t *testing.T) {
		c := policyMesh(t, "    loadBalancer: {simple: LEAST_REQUEST}\n",
			[2]string{"slow", startNamedApp(t, "slow", 200, 50*time.Millisecond)}, [2]string{"fast", startNamedApp(t, "fast", 200, 0)})
		var mu sync.Mutex
		counts := map[string]int{}
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 25 {
					app := served(t, c, nil)
					mu.Lock()
					counts[app]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		// Power of two choices over two endpoints sends the busy one about a quarter; even
		// split would be a half. Fewer than the fast one is 8 sd from the expected split.
		if counts["fast"] <= counts["slow"] {
			t.Errorf("least request split %v: the busy endpoint should get fewer", counts)
		}
		t.Logf("split %v", counts)
	})
}

// TestConnectionPoolOverflow checks circuit breaking: past the connectionPool limit a request
// is answered 503 at once, marked x-envoy-overloaded.
func TestConnectionPoolOverflow(t *testing.T) {
	c := policyMesh(t, "    connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}\n",
		[2]string{"slow", startNamedApp(t, "slow", 200, 300*time.Millisecond)})
	var mu sync.Mutex
	codes := map[int]int{}
	overloaded := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := tryDo(c, "GET", "http://api/", "", nil)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			codes[res.StatusCode]++
			if res.Header.Get("X-Envoy-Overloaded") == "true" {
				overloaded++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[200] < 1 || codes[200] > 2 || codes[503] != 8-codes[200] || overloaded != codes[503] {
		t.Errorf("8 concurrent requests, limit 2: %v (%d marked overloaded)", codes, overloaded)
	}
}

// TestOutlierDetection checks an endpoint failing in a row is ejected, the others take all
// traffic, and it is restored after the ejection time.
func TestOutlierDetection(t *testing.T) {
	c := policyMesh(t, "    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 1s, maxEjectionPercent: 100}\n",
		[2]string{"bad", startNamedApp(t, "bad", 500, 0)}, [2]string{"good", startNamedApp(t, "good", 200, 0)})
	for range 10 { // round robin: bad gets 5, is ejected after its third
		served(t, c, nil)
	}
	for i := range 30 {
		if app := served(t, c, nil); app != "good" {
			t.Fatalf("request %d went to %s after it was ejected", i, app)
		}
	}
	waitFor(t, "the ejected endpoint to be restored", func() bool { return served(t, c, nil) == "bad" })
}

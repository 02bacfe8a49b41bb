package proxy_test

import (
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"

	"swimlane.dev/swimlane/internal/snapshot"
)

// shadowApp records the requests it gets (host and body) and answers "v2".
type shadowApp struct {
	mu    sync.Mutex
	hosts []string
	body  []string
}

func startShadowApp(t *testing.T) (string, *shadowApp) {
	a := &shadowApp{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.hosts = append(a.hosts, r.Host)
		a.body = append(a.body, string(b))
		a.mu.Unlock()
		w.Header().Set("X-App", "v2")
		io.WriteString(w, "v2 answer")
	})}
	lis := listen(t)
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	return lis.Addr().String(), a
}

func (a *shadowApp) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.hosts)
}

// TestMirroring checks seed 004's dark release: every request answered by v1, a copy of
// each sent to v2 with a "-shadow" authority and the same body, v2's answer dropped; and
// mirrorPercentage mirrors that share.
func TestMirroring(t *testing.T) {
	for _, tt := range []struct {
		name    string
		percent string
		share   float64
	}{
		{name: "all", percent: "", share: 1},
		{name: "mirrorPercentage 30", percent: "    mirrorPercentage: {value: 30}\n", share: 0.3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newMesh(t, `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: test}
spec:
  services: [{name: customers, port: 5100, selector: {app: customers}}]
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: customers}
spec:
  host: customers
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: customers}
spec:
  hosts: [customers]
  http:
  - route:
    - destination: {host: customers, subset: v1}
    mirror: {host: customers, subset: v2}
`+tt.percent)
			v1 := workload("customers-v1", "customers", "", startHTTPApp(t, "v1", false), snapshot.HTTP)
			v1.Labels["version"] = "v1"
			v2addr, v2 := startShadowApp(t)
			v2w := workload("customers-v2", "customers", "", v2addr, snapshot.HTTP)
			v2w.Labels["version"] = "v2"
			m.register(v1, v2w)
			c := httpClient(t, outbound(t, m.newProxy("sidecar~client")))

			const n = 400
			for i := range n {
				res, err := tryDo(c, "POST", "http://customers:5100/api/customers", "", hdr("Content-Type", "text/plain"))
				if err != nil {
					t.Fatal(err)
				}
				if res.StatusCode != 200 || res.Header.Get("X-App") != "v1" {
					t.Fatalf("request %d answered by %q (%d): the caller must see only v1", i, res.Header.Get("X-App"), res.StatusCode)
				}
			}
			if tt.share == 1 {
				waitFor(t, "every request mirrored", func() bool { return v2.count() == n })
				v2.mu.Lock()
				host := v2.hosts[0]
				v2.mu.Unlock()
				if host != "customers-shadow:5100" {
					t.Errorf("mirrored authority %q, want customers-shadow:5100", host)
				}
				return
			}
			mean, sd := tt.share*n, math.Sqrt(n*tt.share*(1-tt.share))
			waitFor(t, "the mirrored share to arrive", func() bool { return float64(v2.count()) >= mean-5*sd })
			if got := float64(v2.count()); math.Abs(got-mean) > 5*sd {
				t.Errorf("mirrored %v of %d, want %v ± %.0f (5σ)", got, n, mean, 5*sd)
			}
		})
	}
}

// TestMirrorCopiesBody checks a mirrored POST carries the same body to both sides.
func TestMirrorCopiesBody(t *testing.T) {
	m := newMesh(t, `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: test}
spec:
  services:
  - {name: main, port: 80, selector: {app: main}}
  - {name: dark, port: 80, selector: {app: dark}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: main}
spec:
  hosts: [main]
  http:
  - route: [{destination: {host: main}}]
    mirror: {host: dark}
`)
	darkAddr, dark := startShadowApp(t)
	m.register(workload("main-1", "main", "", startHTTPApp(t, "main", false), snapshot.HTTP), workload("dark-1", "dark", "", darkAddr, snapshot.HTTP))
	c := httpClient(t, outbound(t, m.newProxy("sidecar~client")))
	payload := strings.Repeat("x", 5000)
	req, _ := http.NewRequest("POST", "http://main/", strings.NewReader(payload))
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(got), payload) {
		t.Errorf("the real request lost its body")
	}
	waitFor(t, "the copy", func() bool { return dark.count() == 1 })
	dark.mu.Lock()
	defer dark.mu.Unlock()
	if dark.body[0] != payload {
		t.Errorf("the copy carried %d bytes, want the %d-byte body", len(dark.body[0]), len(payload))
	}
}

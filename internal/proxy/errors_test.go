package proxy_test

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"swimlane.dev/swimlane/internal/snapshot"
)

// errorsYAML has a service without endpoints (empty), one with endpoints only in a feature
// lane (onlyf1), one whose route pins a subset that has no endpoints or sends /elsewhere to a
// host the mesh does not know (pinned), and one whose routes match only /api (routed).
const errorsYAML = `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata:
  name: test
spec:
  services:
  - {name: empty, port: 80, selector: {app: empty}}
  - {name: onlyf1, port: 80, selector: {app: onlyf1}}
  - {name: pinned, port: 80, selector: {app: pinned}}
  - {name: routed, port: 80, selector: {app: routed}}
  - {name: deadsvc, port: 80, selector: {app: deadsvc}}
  - {name: deadapp, port: 80, selector: {app: deadapp}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: pinned
spec:
  host: pinned
  subsets:
  - name: dev-feature9
    labels: {swimlane: dev-feature9}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: pinned
spec:
  hosts: [pinned]
  http:
  - match:
    - uri: {prefix: /pinned}
    route:
    - destination: {host: pinned, subset: dev-feature9}
  - match:
    - uri: {prefix: /elsewhere}
    route:
    - destination: {host: nowhere}
  - route:
    - destination: {host: pinned}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: routed
spec:
  hosts: [routed]
  http:
  - match:
    - uri: {prefix: /api}
    route:
    - destination: {host: routed}
`

// TestNoEndpoint checks that every request the mesh cannot serve gets a 503 (404 when no route
// matches) whose body says what was missing: the service, the lane and the lanes tried, or the
// unknown host.
func TestNoEndpoint(t *testing.T) {
	t.Parallel()
	m := newMesh(t, errorsYAML)
	m.register(
		workload("onlyf1-f1", "onlyf1", "dev-feature1", startHTTPApp(t, "onlyf1-f1", false), snapshot.HTTP),
		workload("pinned-main", "pinned", "main", startHTTPApp(t, "pinned-main", false), snapshot.HTTP),
		workload("routed-main", "routed", "main", startHTTPApp(t, "routed-main", false), snapshot.HTTP),
	)
	p := m.newProxy("sidecar~client")
	out := outbound(t, p)
	viaProxy := httpClient(t, out)
	direct := httpClient(t, "")

	tests := []struct {
		name       string
		send       func(t *testing.T) response
		wantStatus int
		// wantBody is the body's one line; (healthy ) may be there or not, the rest verbatim.
		wantBody string
	}{
		{
			name: "no endpoint in any lane, feature lane asked",
			send: func(t *testing.T) response {
				return do(t, viaProxy, "GET", "http://empty/", "", hdr("x-swimlane", "dev-x"))
			},
			wantStatus: 503,
			wantBody:   "swimlane: no endpoint for empty in lane dev-x (tried dev-x -> main)",
		},
		{
			name: "no endpoint in any lane, baggage lane asked",
			send: func(t *testing.T) response {
				return do(t, viaProxy, "GET", "http://empty/", "", hdr("baggage", "swimlane=dev-y"))
			},
			wantStatus: 503,
			wantBody:   "swimlane: no endpoint for empty in lane dev-y (tried dev-y -> main)",
		},
		{
			name:       "no endpoint in any lane, no lane",
			send:       func(t *testing.T) response { return do(t, viaProxy, "GET", "http://empty/", "", nil) },
			wantStatus: 503,
			wantBody:   "swimlane: no endpoint for empty in lane (none) (tried main)",
		},
		{
			name:       "endpoints only in a feature lane, no lane asked",
			send:       func(t *testing.T) response { return do(t, viaProxy, "GET", "http://onlyf1/", "", nil) },
			wantStatus: 503,
			wantBody:   "swimlane: no endpoint for onlyf1 in lane (none) (tried main)",
		},
		{
			name: "endpoints only in a feature lane, another lane asked",
			send: func(t *testing.T) response {
				return do(t, viaProxy, "GET", "http://onlyf1/", "", hdr("x-swimlane", "dev-feature2"))
			},
			wantStatus: 503,
			wantBody:   "swimlane: no endpoint for onlyf1 in lane dev-feature2 (tried dev-feature2 -> main)",
		},
		{
			name:       "unknown host via HTTP proxy",
			send:       func(t *testing.T) response { return do(t, viaProxy, "GET", "http://ghost:8080/x", "", nil) },
			wantStatus: 503,
			wantBody:   `swimlane: no service "ghost:8080" in the mesh`,
		},
		{
			name: "unknown host via Host header",
			send: func(t *testing.T) response {
				return do(t, direct, "GET", "http://"+out+"/x", "ghost.other-namespace.svc.cluster.local", nil)
			},
			wantStatus: 503,
			wantBody:   `swimlane: no service "ghost.other-namespace.svc.cluster.local" in the mesh`,
		},
		{
			name:       "route pins a subset without endpoints",
			send:       func(t *testing.T) response { return do(t, viaProxy, "GET", "http://pinned/pinned/x", "", nil) },
			wantStatus: 503,
			wantBody:   `swimlane: no endpoint for pinned subset "dev-feature9"`,
		},
		{
			name:       "route to a host the mesh does not know",
			send:       func(t *testing.T) response { return do(t, viaProxy, "GET", "http://pinned/elsewhere", "", nil) },
			wantStatus: 503,
			wantBody:   `swimlane: no service "nowhere" in the mesh`,
		},
		{
			name:       "no route matches",
			send:       func(t *testing.T) response { return do(t, viaProxy, "GET", "http://routed/other", "", nil) },
			wantStatus: 404,
			wantBody:   "swimlane: no route of routed matches the request",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.send(t)
			if res.StatusCode != tt.wantStatus || !bodyRE(tt.wantBody).MatchString(strings.TrimSpace(res.body)) {
				t.Errorf("got %d %q, want %d %q", res.StatusCode, strings.TrimSpace(res.body), tt.wantStatus, tt.wantBody)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
		})
	}

	t.Run("the same services answer when they can", func(t *testing.T) {
		for _, c := range []struct{ url, lane, app string }{
			{"http://onlyf1/", "dev-feature1", "onlyf1-f1"},
			{"http://pinned/other", "", "pinned-main"},
			{"http://routed/api/v1", "", "routed-main"},
		} {
			if rep := do(t, viaProxy, "GET", c.url, "", hdr("x-swimlane", c.lane)).reply(t); rep.App != c.app {
				t.Errorf("%s: served by %q, want %q", c.url, rep.App, c.app)
			}
		}
	})

	t.Run("CONNECT to an unknown host", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		c, err := dialConnect(ctx, out, "ghost:443", nil)
		if err == nil {
			c.Close()
			t.Fatal("CONNECT ghost:443 succeeded, want 503")
		}
		var ce *connectError
		if !errors.As(err, &ce) || ce.status != 503 || !strings.Contains(ce.body, `no service "ghost:443" in the mesh`) {
			t.Errorf("got %v, want a 503 naming ghost:443", err)
		}
	})

	t.Run("proxy without any snapshot yet", func(t *testing.T) {
		// A proxy that never reached its control plane answers 503 naming the service.
		lonely := newUnsubscribedProxy(t)
		res := do(t, httpClient(t, outbound(t, lonely)), "GET", "http://empty/", "", nil)
		if res.StatusCode != 503 || !strings.Contains(res.body, `no service "empty"`) {
			t.Errorf("got %d %q, want 503 naming the service", res.StatusCode, res.body)
		}
	})
}

// bodyRE matches an error line exactly, except that "no endpoint" may read "no healthy
// endpoint" (the wording once endpoints carry health).
func bodyRE(want string) *regexp.Regexp {
	return regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(want), "no endpoint", "no (?:healthy )?endpoint") + "$")
}

// TestDeadUpstream checks that an endpoint with nothing listening answers 502 naming the
// upstream (service, workload and address), directly or through an inbound sidecar whose app
// is down.
func TestDeadUpstream(t *testing.T) {
	t.Parallel()
	m := newMesh(t, errorsYAML)
	dead := deadAddr(t)
	deadApp := deadAddr(t)
	sidecar := m.sidecarWorkload("deadapp-main", "deadapp", "main", deadApp, snapshot.HTTP)
	m.register(workload("deadsvc-main", "deadsvc", "main", dead, snapshot.HTTP), sidecar)
	p := m.newProxy("sidecar~client")
	c := httpClient(t, outbound(t, p))

	t.Run("endpoint down", func(t *testing.T) {
		res := do(t, c, "GET", "http://deadsvc/", "", nil)
		want := "upstream deadsvc/deadsvc-main (" + dead + "): "
		if res.StatusCode != http.StatusBadGateway || !strings.HasPrefix(res.body, want) {
			t.Errorf("got %d %q, want 502 starting %q", res.StatusCode, res.body, want)
		}
	})
	t.Run("app behind its sidecar down", func(t *testing.T) {
		// The app's sidecar marks its 502; the caller's sidecar treats it as its own refused
		// dial (no other endpoint here) and names the endpoint; the marker never reaches the app.
		res := do(t, c, "GET", "http://deadapp/", "", nil)
		want := "upstream deadapp/deadapp-main ("
		if res.StatusCode != http.StatusBadGateway || !strings.HasPrefix(res.body, want) || !strings.Contains(res.body, "refused the connection") {
			t.Errorf("got %d %q, want 502 starting %q, saying the app refused", res.StatusCode, res.body, want)
		}
		if res.Header.Get("X-Swimlane-App-Refused") != "" {
			t.Error("the refusal marker leaked to the client")
		}
	})
}

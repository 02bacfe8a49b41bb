package proxy_test

import (
	"net/http"
	"testing"

	"swimlane.dev/swimlane/internal/snapshot"
)

const editYAML = `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: test}
spec:
  services: [{name: web, port: 80, selector: {app: web}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - name: old-api
    match:
    - uri: {prefix: /v1/}
    rewrite: {uri: /api/v2/, authority: web.internal}
    headers:
      request:
        set: {x-api-version: "2"}
        add: {x-trace-note: rewritten}
        remove: [x-debug-secret]
      response:
        set: {x-served-by: swimlane}
        remove: [x-app]
    route: [{destination: {host: web}}]
  - match:
    - uri: {exact: /login}
    rewrite: {uri: /auth/sign-in}
    route: [{destination: {host: web}}]
  - match:
    - uri: {prefix: /old}
    redirect: {uri: /new, authority: example.test, redirectCode: 308}
  - match:
    - queryParams: {beta: {exact: "1"}}
      withoutHeaders: {x-opt-out: {}}
    headers:
      response: {set: {x-route: beta}}
    route: [{destination: {host: web}}]
  - match:
    - uri: {prefix: /CASE}
      ignoreUriCase: true
    headers:
      response: {set: {x-route: case}}
    route: [{destination: {host: web}}]
  - match:
    - headers: {x-present: {}}
    headers:
      response: {set: {x-route: present}}
    route: [{destination: {host: web}}]
`

// TestRouteEdits checks header edits, rewrites, redirects and the match conditions through a
// real proxy, as Istio documents them.
func TestRouteEdits(t *testing.T) {
	m := newMesh(t, editYAML)
	m.register(workload("web-1", "web", "", startHTTPApp(t, "web", false), snapshot.HTTP))
	c := httpClient(t, outbound(t, m.newProxy("sidecar~client")))

	t.Run("prefix rewrite, authority, request and response headers", func(t *testing.T) {
		res := do(t, c, "GET", "http://web/v1/users?id=7", "", hdr("x-debug-secret", "s3cret"))
		got := res.reply(t)
		if got.URI != "/api/v2/users?id=7" || got.Host != "web.internal" {
			t.Errorf("app got %s on host %s, want /api/v2/users?id=7 on web.internal", got.URI, got.Host)
		}
		if got.Header.Get("X-Api-Version") != "2" || got.Header.Get("X-Trace-Note") != "rewritten" || got.Header.Get("X-Debug-Secret") != "" {
			t.Errorf("request headers at the app: %v", got.Header)
		}
		if res.Header.Get("X-Served-By") != "swimlane" || res.Header.Get("X-App") != "" {
			t.Errorf("response headers: %v", res.Header)
		}
	})
	t.Run("exact match rewrites the whole path", func(t *testing.T) {
		if uri := do(t, c, "GET", "http://web/login", "", nil).reply(t).URI; uri != "/auth/sign-in" {
			t.Errorf("app got %s", uri)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		noFollow := *c
		noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		res := do(t, &noFollow, "GET", "http://web/old/page?x=1", "", nil)
		if res.StatusCode != 308 || res.Header.Get("Location") != "http://example.test/new?x=1" {
			t.Errorf("got %d Location %q", res.StatusCode, res.Header.Get("Location"))
		}
	})
	tests := []struct {
		name      string
		url       string
		header    http.Header
		wantRoute string
		wantCode  int
	}{
		{name: "query param", url: "http://web/x?beta=1", wantRoute: "beta", wantCode: 200},
		{name: "query param with an excluded header", url: "http://web/x?beta=1", header: hdr("x-opt-out", "yes"), wantCode: 404},
		{name: "query param other value", url: "http://web/x?beta=2", wantCode: 404},
		{name: "ignoreUriCase", url: "http://web/case/y", wantRoute: "case", wantCode: 200},
		{name: "header present, any value", url: "http://web/z", header: hdr("x-present", ""), wantRoute: "present", wantCode: 200},
		{name: "no rule matches", url: "http://web/z", wantCode: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := do(t, c, "GET", tt.url, "", tt.header)
			if res.StatusCode != tt.wantCode || res.Header.Get("X-Route") != tt.wantRoute {
				t.Errorf("got %d route %q, want %d route %q (%s)", res.StatusCode, res.Header.Get("X-Route"), tt.wantCode, tt.wantRoute, res.body)
			}
		})
	}
}

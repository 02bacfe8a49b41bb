package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/snapshot"
)

// TestHTTPRouteFilters checks Gateway API filters and timeouts through a real proxy.
func TestHTTPRouteFilters(t *testing.T) {
	m := newMesh(t, `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: test}
spec:
  services:
  - {name: store, port: 80, selector: {app: store}}
  - {name: store-shadow, port: 80, selector: {app: shadow}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: store}
spec:
  parentRefs: [{group: "", kind: Service, name: store}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /shop}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        hostname: store.internal
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /api}
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-tier, value: gold}]
        remove: [x-drop]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add: [{name: x-filtered, value: "yes"}]
    - type: RequestMirror
      requestMirror: {backendRef: {name: store-shadow, port: 80}}
    backendRefs: [{name: store, port: 80}]
  - matches: [{path: {type: Exact, value: /legacy}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: new.example, path: {type: ReplaceFullPath, replaceFullPath: /v2}, statusCode: 301}
  - matches: [{path: {type: PathPrefix, value: /slow}}]
    timeouts: {request: 100ms}
    backendRefs: [{name: store, port: 80}]
`)
	shadowAddr, shadow := startShadowApp(t)
	storeAddr, _ := startFlakyApp(t, 1) // every request sleeps for its delay header
	m.register(
		workload("store-1", "store", "", startHTTPApp(t, "store", false), snapshot.HTTP),
		workload("shadow-1", "shadow", "", shadowAddr, snapshot.HTTP),
	)
	c := httpClient(t, outbound(t, m.newProxy("sidecar~client")))

	res := do(t, c, "GET", "http://store/shop/items?id=3", "", hdr("x-drop", "1"))
	got := res.reply(t)
	if got.URI != "/api/items?id=3" || got.Host != "store.internal" || got.Header.Get("X-Tier") != "gold" || got.Header.Get("X-Drop") != "" {
		t.Errorf("app got %s on %s with %v", got.URI, got.Host, got.Header)
	}
	if res.Header.Get("X-Filtered") != "yes" {
		t.Errorf("response headers %v", res.Header)
	}
	waitFor(t, "the mirrored copy", func() bool { return shadow.count() == 1 })

	noFollow := *c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if res := do(t, &noFollow, "GET", "http://store/legacy", "", nil); res.StatusCode != 301 || res.Header.Get("Location") != "http://new.example/v2" {
		t.Errorf("redirect: %d %q", res.StatusCode, res.Header.Get("Location"))
	}

	// The timeout rule: point store at the slow app and ask for a 2s delay.
	m.register(workload("store-1", "store", "", storeAddr, snapshot.HTTP))
	m.sync()
	if res := do(t, c, "GET", "http://store/slow", "", hdr("delay", "2s")); res.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("timeout: %d %q, want 504", res.StatusCode, res.body)
	}
}

// TestWebSocketUpgrade checks an HTTP/1.1 Upgrade passes through the outbound and inbound
// sidecars and carries bytes both ways.
func TestWebSocketUpgrade(t *testing.T) {
	m := newMesh(t, meshYAML("ws"))
	app := startUpgradeEcho(t)
	m.register(m.sidecarWorkload("ws-1", "ws", "", app, snapshot.HTTP))
	out := outbound(t, m.newProxy("sidecar~client"))

	conn, err := net.DialTimeout("tcp", out, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /chat HTTP/1.1\r\nHost: ws\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("upgrade answered %d %s", res.StatusCode, body)
	}
	fmt.Fprintf(conn, "ping\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo: ping\n" {
		t.Errorf("after the upgrade got %q, %v", line, err)
	}
}

// startUpgradeEcho answers an Upgrade with 101, then echoes lines prefixed "echo: ".
func startUpgradeEcho(t *testing.T) string {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(brw, "echo: %s", line)
			brw.Flush()
		}
	})}
	lis := listen(t)
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	return lis.Addr().String()
}

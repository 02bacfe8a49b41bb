package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// egressYAML opens one HTTP host and one TLS-style (TCP) host with ServiceEntries, as seed
// 002 opens one external API, with the given outbound policy.
func egressYAML(policy, apiAddr, secureAddr string) string {
	host := func(a string) string { return a[:strings.LastIndex(a, ":")] }
	port := func(a string) string { return a[strings.LastIndex(a, ":")+1:] }
	return fmt.Sprintf(`apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: test}
spec:
  outboundTrafficPolicy: {mode: %s}
---
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: partner-api}
spec:
  hosts: [api.partner.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: %s, ports: {http: %s}}]
---
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: partner-secure}
spec:
  hosts: [secure.partner.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 443, name: tls, protocol: TLS}]
  endpoints: [{address: %s, ports: {tls: %s}}]
`, policy, host(apiAddr), port(apiAddr), host(secureAddr), port(secureAddr))
}

// TestEgress checks outboundTrafficPolicy with ServiceEntries: under REGISTRY_ONLY only the
// hosts a ServiceEntry opens are reachable (plain HTTP, and bytes through CONNECT for TLS);
// under ALLOW_ANY, Istio's default, hosts outside the mesh are passed through.
func TestEgress(t *testing.T) {
	api := startHTTPApp(t, "partner-api", false)
	secure := startTCPEcho(t)
	other := startHTTPApp(t, "other", false)
	otherTCP := startTCPEcho(t)

	t.Run("REGISTRY_ONLY", func(t *testing.T) {
		m := newMesh(t, egressYAML("REGISTRY_ONLY", api, secure))
		out := outbound(t, m.newProxy("sidecar~client"))
		c := httpClient(t, out)

		if app := do(t, c, "GET", "http://api.partner.example/v1", "", nil).reply(t).App; app != "partner-api" {
			t.Errorf("the opened host answered as %q", app)
		}
		res := do(t, c, "GET", "http://"+other+"/", "", nil)
		if res.StatusCode != http.StatusBadGateway || !strings.Contains(res.body, "REGISTRY_ONLY: add a ServiceEntry") {
			t.Errorf("a host outside the registry: %d %q, want 502 saying how to open it", res.StatusCode, res.body)
		}
		tunnel := mustConnect(t, out, "secure.partner.example:443")
		echoOnce(t, tunnel, "hello over tls-like bytes\n")
		_, err := dialConnect(context.Background(), out, otherTCP, nil)
		var refused *connectError
		if !errors.As(err, &refused) || refused.status != http.StatusBadGateway {
			t.Errorf("CONNECT to a host outside the registry: %v, want 502", err)
		}
	})

	t.Run("ALLOW_ANY (default)", func(t *testing.T) {
		m := newMesh(t, egressYAML("ALLOW_ANY", api, secure))
		out := outbound(t, m.newProxy("sidecar~client"))
		c := httpClient(t, out)
		if app := do(t, c, "GET", "http://"+other+"/", "", nil).reply(t).App; app != "other" {
			t.Errorf("passthrough answered as %q", app)
		}
		echoOnce(t, mustConnect(t, out, otherTCP), "passthrough bytes\n")
		// A bare name is a mesh service that does not exist, not the outside world.
		res := do(t, c, "GET", "http://no-such-service/", "", nil)
		if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(res.body, `no service "no-such-service" in the mesh`) {
			t.Errorf("unknown bare name: %d %q", res.StatusCode, res.body)
		}
	})
}

// echoOnce writes line to a TCP echo through c and reads it back.
func echoOnce(t *testing.T, c io.ReadWriter, line string) {
	t.Helper()
	if _, err := io.WriteString(c, line); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(line))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != line {
		t.Errorf("echo: %q, %v; want %q", buf, err, line)
	}
}

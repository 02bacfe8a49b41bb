package proxy_test

import (
	"strings"
	"testing"

	"swimlane.dev/swimlane/internal/snapshot"
)

const gatewayYAML = `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata:
  name: test
spec:
  gateways:
  - {name: ingress, port: 8080, service: web}
  services:
  - {name: web, port: 80, selector: {app: web}}
  - {name: api, port: 80, selector: {app: api}}
`

// TestGateway checks the ingress gateway: whatever the Host, requests go to the gateway's
// service from the Mesh file, routed by lane with fallback, through the service's inbound
// sidecar, over HTTP/1.1 and h2c; and a config change moves the gateway to another service.
func TestGateway(t *testing.T) {
	t.Parallel()
	m := newMesh(t, gatewayYAML)
	m.register(
		m.sidecarWorkload("web-main", "web", "main", startHTTPApp(t, "web-main", false), snapshot.HTTP),
		m.sidecarWorkload("web-f1", "web", "dev-feature1", startHTTPApp(t, "web-f1", false), snapshot.HTTP),
		workload("api-main", "api", "main", startHTTPApp(t, "api-main", true), snapshot.HTTP2),
	)
	p := m.newProxy("gateway~ingress")
	gw := gateway(t, p, "ingress")
	c := httpClient(t, "")

	tests := []struct {
		name   string
		host   string
		header []string
		app    string
		lane   string
	}{
		{"no lane", "shop.example.com", nil, "web-main", ""},
		{"x-swimlane", "shop.example.com", []string{"x-swimlane", "dev-feature1"}, "web-f1", "dev-feature1"},
		{"baggage", "shop.example.com", []string{"baggage", "swimlane=dev-feature1,user=alice"}, "web-f1", "dev-feature1"},
		{"fallback", "shop.example.com", []string{"x-swimlane", "dev-feature2"}, "web-main", "dev-feature2"},
		{"Host naming another service is ignored", "api:80", []string{"x-swimlane", "dev-feature1"}, "web-f1", "dev-feature1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := do(t, c, "GET", "http://"+gw+"/catalog?page=2", tt.host, hdr(tt.header...)).reply(t)
			if rep.App != tt.app {
				t.Errorf("served by %q, want %q", rep.App, tt.app)
			}
			if rep.URI != "/catalog?page=2" || rep.Host != tt.host {
				t.Errorf("app got %q with Host %q, want /catalog?page=2 with Host %q", rep.URI, rep.Host, tt.host)
			}
			var others []string
			if strings.Contains(strings.Join(tt.header, " "), "user=alice") {
				others = []string{"user=alice"}
			}
			checkLaneForms(t, rep.Header, tt.lane, others)
		})
	}

	t.Run("h2c client", func(t *testing.T) {
		res := do(t, h2cClient(t), "GET", "http://"+gw+"/", "shop.example.com", hdr("x-swimlane", "dev-feature1"))
		if res.ProtoMajor != 2 {
			t.Errorf("gateway answered over %s, want HTTP/2.0", res.Proto)
		}
		if rep := res.reply(t); rep.App != "web-f1" {
			t.Errorf("served by %q, want web-f1", rep.App)
		}
	})

	t.Run("debug headers", func(t *testing.T) {
		res := do(t, c, "GET", "http://"+gw+"/", "shop.example.com", hdr("x-swimlane", "dev-feature2", "x-swimlane-debug", "1"))
		res.reply(t)
		if s, f := res.Header.Get("X-Swimlane-Served"), res.Header.Get("X-Swimlane-Fallback"); s != "main" || f != "dev-feature2 -> main" {
			t.Errorf("served %q, fallback %q; want main, dev-feature2 -> main", s, f)
		}
	})

	t.Run("unknown gateway", func(t *testing.T) {
		other := gateway(t, p, "egress")
		res := do(t, c, "GET", "http://"+other+"/", "", nil)
		if want := `swimlane: gateway "egress" has no configuration yet`; res.StatusCode != 503 || strings.TrimSpace(res.body) != want {
			t.Errorf("got %d %q, want 503 %q", res.StatusCode, res.body, want)
		}
	})

	t.Run("config moves the gateway to another service", func(t *testing.T) {
		m.setConfig(strings.Replace(gatewayYAML, "service: web}", "service: api}", 1))
		rep := do(t, c, "GET", "http://"+gw+"/", "shop.example.com", hdr("x-swimlane", "dev-feature1")).reply(t)
		if rep.App != "api-main" || rep.Proto != "HTTP/2.0" {
			t.Errorf("served by %q over %s, want api-main over HTTP/2.0", rep.App, rep.Proto)
		}
	})
}

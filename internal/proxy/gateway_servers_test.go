package proxy_test

import (
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/proxy"
	"swimlane.dev/swimlane/internal/snapshot"
)

// freePort returns a loopback port nothing listens on (closed again at once).
func freePort(t *testing.T) int {
	l := listen(t)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestIstioGatewayServers checks seed 001's and seed 003's gateways: an Istio Gateway that
// selects the mesh's ingress opens its servers as listeners; an HTTP server routes by the
// VirtualService bound to it (host and uri prefix), a TCP server by its tcp rules with
// weights; a config change moves the weights without a restart.
func TestIstioGatewayServers(t *testing.T) {
	httpPort, tcpPort := freePort(t), freePort(t)
	gatewaysYAML := func(v1, v2 int) string {
		return fmt.Sprintf(`apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: test}
spec:
  gateways: [{name: ingress, port: 8080, service: web}]
  services:
  - {name: web, port: 80, selector: {app: web}}
  - {name: web-api, port: 9080, selector: {app: web-api}}
  - {name: tcp-echo, port: 9000, selector: {app: tcp-echo}}
---
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {name: default-gateway-ingress}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %d, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: virtualservice-ingress}
spec:
  hosts: ["*"]
  gateways: [default-gateway-ingress]
  http:
  - match:
    - uri: {prefix: /web-api/v1/getmultiple}
    route:
    - destination: {host: web-api, port: {number: 9080}}
---
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {name: tcp-echo-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %d, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: tcp-echo-destination}
spec:
  host: tcp-echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: tcp-echo}
spec:
  hosts: ["*"]
  gateways: [tcp-echo-gateway]
  tcp:
  - match:
    - port: %d
    route:
    - destination: {host: tcp-echo, port: {number: 9000}, subset: v1}
      weight: %d
    - destination: {host: tcp-echo, port: {number: 9000}, subset: v2}
      weight: %d
`, httpPort, tcpPort, tcpPort, v1, v2)
	}
	m := newMesh(t, gatewaysYAML(100, 0))
	v1 := workload("tcp-echo-v1", "tcp-echo", "", startVersionEcho(t, "one"), snapshot.TCP)
	v1.Labels["version"] = "v1"
	v2 := workload("tcp-echo-v2", "tcp-echo", "", startVersionEcho(t, "two"), snapshot.TCP)
	v2.Labels["version"] = "v2"
	m.register(workload("web-api-1", "web-api", "", startHTTPApp(t, "web-api", false), snapshot.HTTP), v1, v2)
	gateway(t, m.newProxy("gateway~ingress"), "ingress")

	httpAddr := fmt.Sprintf("127.0.0.1:%d", httpPort)
	c := httpClient(t, "")
	waitFor(t, "the HTTP server of the Istio Gateway", func() bool {
		res, err := tryDo(c, "GET", "http://"+httpAddr+"/web-api/v1/getmultiple", "", nil)
		return err == nil && res.StatusCode == 200 && res.Header.Get("X-App") == "web-api"
	})
	if res := do(t, c, "GET", "http://"+httpAddr+"/other", "", nil); res.StatusCode != 404 {
		t.Errorf("a path no rule matches: %d, want 404", res.StatusCode)
	}

	tcpAddr := fmt.Sprintf("127.0.0.1:%d", tcpPort)
	share := func(n int) float64 {
		ones := 0
		for range n {
			if tcpVersion(t, tcpAddr) == "one" {
				ones++
			}
		}
		return float64(ones) / float64(n)
	}
	waitFor(t, "the TCP server of the Istio Gateway", func() bool { return dialOK(tcpAddr) })
	if got := share(50); got != 1 {
		t.Errorf("all to v1: v1 answered %.2f", got)
	}
	m.setConfig(gatewaysYAML(80, 20))
	const n = 500
	got := share(n)
	if sd := math.Sqrt(0.8 * 0.2 / n); math.Abs(got-0.8) > 5*sd {
		t.Errorf("80/20: v1 answered %.3f, want 0.8 ± %.3f (5σ)", got, 5*sd)
	}
}

// startVersionEcho is seed 003's tcp-echo: it answers each line prefixed with its version.
func startVersionEcho(t *testing.T, version string) string {
	return proxy.ServeConns(t, func(c net.Conn) {
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "%s %s", version, buf[:n])
	})
}

func tcpVersion(t *testing.T, addr string) string {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "hello\n")
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	version, _, _ := strings.Cut(string(buf[:n]), " ")
	return version
}

func dialOK(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

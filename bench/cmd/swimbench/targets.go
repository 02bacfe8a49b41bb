package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The targets, in table order. direct is the baseline; the rest are proxies in front of the
// same upstream.
var allTargets = []string{"direct", "swimlane-1hop", "swimlane-2hop", "goproxy", "nginx", "haproxy", "caddy"}

// peers are the targets Swimlane is compared with.
var peers = []string{"goproxy", "nginx", "haproxy", "caddy"}

var allProtocols = []string{"http1", "h2c", "grpc", "tcp"}

// laneName is the lane every request carries (x-swimlane) and every Swimlane endpoint is
// labelled with: lane routing is on at every Swimlane hop.
const laneName = "bench"

// baselineLane is the Mesh's baseline (Swimlane's default): the lane of raw TCP, which has no
// header to carry one.
const baselineLane = "main"

// Swimlane service names, by protocol: one hop (outbound sidecar -> upstream) and two hops
// (outbound sidecar -> inbound sidecar -> upstream). TCP has no one-hop service: its one hop
// is the inbound sidecar alone.
var svc1hop = map[string]string{"http1": "bench-http", "h2c": "bench-h2c", "grpc": "bench-grpc"}
var svc2hop = map[string]string{"http1": "bench-http-lane", "h2c": "bench-h2c-lane", "grpc": "bench-grpc-lane", "tcp": "bench-tcp"}
var svcProto = map[string]string{"http1": "http", "h2c": "http2", "grpc": "grpc", "tcp": "tcp"}

// benchServices are the services of the bench's own Mesh file, in file order.
func benchServices() []string {
	var names []string
	for _, proto := range allProtocols {
		if name, ok := svc1hop[proto]; ok {
			names = append(names, name)
		}
		names = append(names, svc2hop[proto])
	}
	return names
}

// servicePort is every bench service's port, as apps name it in a gRPC target
// (goods-service:50051 style) or a CONNECT tunnel.
const servicePort = 50051

// instance is one running target for one protocol.
type instance struct {
	target string
	proto  string
	addr   string   // where the load generator connects
	host   string   // Host / :authority header ("" for none)
	env    []string // load generator environment (HTTPS_PROXY for gRPC through a sidecar)
	grpcTo string   // gRPC target name when not addr
	// connectTo is the service:port a TCP client asks addr (an outbound sidecar) to tunnel
	// to with CONNECT; "" to talk to addr itself.
	connectTo string
	measure   []*proc // the proxy processes whose CPU and memory are reported
	all       []*proc // everything started for this instance (stopped after it)
	hops      int
}

func (in *instance) stop() {
	for i := len(in.all) - 1; i >= 0; i-- {
		in.all[i].stop()
	}
}

func (in *instance) cpuSeconds() float64 {
	var s float64
	for _, p := range in.measure {
		s += p.cpuSeconds()
	}
	return s
}

func (in *instance) pssMiB() float64 {
	var s float64
	for _, p := range in.measure {
		s += p.pssMiB()
	}
	return s
}

// supported says whether a target takes part for a protocol, and why not.
func (b *bench) supported(target, proto string) (bool, string) {
	need := map[string]string{"nginx": "nginx", "haproxy": "haproxy", "caddy": "caddy"}
	if t, ok := need[target]; ok && b.tools[t] == "" {
		return false, t + " not available"
	}
	switch {
	case proto == "h2c" && target == "nginx":
		return false, "nginx cannot proxy h2c to an HTTP/2 upstream (only gRPC)"
	case proto == "tcp" && (target == "goproxy" || target == "caddy"):
		return false, "HTTP-only proxy"
	case proto == "tcp" && target == "nginx" && !fileExists("/usr/lib/nginx/modules/ngx_stream_module.so"):
		return false, "nginx stream module not installed"
	}
	return true, ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// upstreamAddr is the upstream of a protocol.
func (b *bench) upstreamAddr(proto string) string {
	switch proto {
	case "grpc":
		return b.upGRPC
	case "tcp":
		return b.upTCP
	}
	return b.upHTTP
}

// startTarget starts target for proto, waits until it serves, and returns it.
func (b *bench) startTarget(target, proto string) (in *instance, err error) {
	inst := &instance{target: target, proto: proto, hops: 1}
	in = inst
	defer func() {
		if err != nil {
			inst.stop()
		}
	}()
	up := b.upstreamAddr(proto)
	dir, err := os.MkdirTemp(b.dir, target+"-"+proto+"-")
	if err != nil {
		return nil, err
	}
	addr := freeAddr()
	in.addr = addr
	run := func(name string, cpus cpuSet, env []string, argv ...string) (*proc, error) {
		p, err := start(dir, name, cpus, env, argv...)
		if err != nil {
			return nil, err
		}
		in.all = append(in.all, p)
		return p, nil
	}
	write := func(name, content string) string {
		f := filepath.Join(dir, name)
		if err == nil {
			err = os.WriteFile(f, []byte(content), 0o644)
		}
		return f
	}
	var p *proc
	switch target {
	case "direct":
		in.addr, in.hops = up, 0
	case "goproxy":
		argv := []string{b.bin("goproxy"), "-listen", addr, "-upstream", "http://" + up}
		if proto != "http1" {
			argv = append(argv, "-h2c")
		}
		p, err = run("goproxy", cpuProxy, nil, argv...)
	case "nginx":
		cfg := write("nginx.conf", nginxConf(dir, proto, addr, up))
		if err == nil {
			p, err = run("nginx", cpuProxy, nil, b.tools["nginx"], "-p", dir, "-c", cfg, "-e", filepath.Join(dir, "error.log"))
		}
	case "haproxy":
		cfg := write("haproxy.cfg", haproxyConf(proto, addr, up))
		if err == nil {
			p, err = run("haproxy", cpuProxy, nil, b.tools["haproxy"], "-db", "-f", cfg)
		}
	case "caddy":
		cfg := write("Caddyfile", caddyConf(proto, addr, up))
		if err == nil {
			p, err = run("caddy", cpuProxy, []string{"XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "HOME=" + dir},
				b.tools["caddy"], "run", "--config", cfg, "--adapter", "caddyfile")
		}
	case "swimlane-1hop", "swimlane-2hop":
		if proto == "tcp" && target == "swimlane-1hop" {
			// Raw TCP has no host to route by on a plain listener: the one hop is the inbound
			// sidecar, as in front of every TCP app in the mesh.
			p, err = run("swimlane-inbound", cpuProxy, b.goEnv(), b.bin("swimlane-proxy"), "--control", b.control,
				"--inbound", addr, "--app", up, "--protocol", "tcp", "--admin", "", "--node", "bench-inbound-tcp")
			break
		}
		var ob *proc
		ob, err = run("swimlane-outbound", cpuProxy, b.goEnv(), b.bin("swimlane-proxy"), "--control", b.control,
			"--outbound", addr, "--admin", b.adminOut, "--node", "bench-outbound")
		if err != nil {
			break
		}
		in.measure = append(in.measure, ob)
		in.host = svc1hop[proto]
		if target == "swimlane-2hop" {
			in.host, in.hops = svc2hop[proto], 2
			var ib *proc
			ib, err = run("swimlane-inbound", cpuProxy, b.goEnv(), b.bin("swimlane-proxy"), "--control", b.control,
				"--inbound", b.inbound2hop[proto], "--app", up, "--protocol", svcProto[proto], "--admin", b.adminIn,
				"--node", "bench-inbound-"+proto)
			if err != nil {
				break
			}
			in.measure = append(in.measure, ib)
			if err = waitPort(ib, b.inbound2hop[proto], 10*time.Second); err != nil {
				break
			}
			if err = waitHealthy(ib, b.adminIn); err != nil {
				break
			}
		}
		if err = waitPort(ob, addr, 10*time.Second); err == nil {
			err = waitHealthy(ob, b.adminOut)
		}
		switch proto {
		case "grpc":
			// grpc-go reaches its sidecar as apps do in the mesh: through HTTPS_PROXY, with a
			// CONNECT tunnel to the unresolved service name.
			in.env = []string{"HTTPS_PROXY=http://" + addr, "https_proxy=http://" + addr, "NO_PROXY=", "no_proxy="}
			in.grpcTo = fmt.Sprintf("%s:%d", in.host, servicePort)
			in.host = ""
		case "tcp":
			// So do TCP apps: a CONNECT tunnel to service:port, then raw bytes.
			in.connectTo = fmt.Sprintf("%s:%d", in.host, servicePort)
			in.host = ""
		}
		if err != nil {
			return nil, err
		}
		return in, b.waitServes(in)
	}
	if err != nil {
		return nil, err
	}
	if p != nil {
		in.measure = append(in.measure, p)
		if err = waitPort(p, addr, 15*time.Second); err != nil {
			return nil, err
		}
	}
	return in, b.waitServes(in)
}

// goEnv is the environment of the Go proxies (GOMAXPROCS as asked; by default Go follows the
// CPU affinity, so 1 when pinned).
func (b *bench) goEnv() []string {
	if *gomaxprocs > 0 {
		return []string{fmt.Sprintf("GOMAXPROCS=%d", *gomaxprocs)}
	}
	return nil
}

// waitHealthy waits until a Swimlane proxy's admin /healthz says it has a snapshot.
func waitHealthy(p *proc, admin string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited: %s", p.name, p.logTail())
		}
		resp, err := http.Get("http://" + admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: no snapshot after 15s", p.name)
}

// waitServes sends requests (TCP: echoed messages) through the instance until one succeeds
// (HTTP/1.1 and TCP only; h2c and gRPC are checked by their first load run, which must
// return no errors).
func (b *bench) waitServes(in *instance) error {
	if in.proto == "tcp" {
		return waitEchoes(in)
	}
	if in.proto != "http1" {
		return nil
	}
	deadline := time.Now().Add(15 * time.Second)
	var last string
	c := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", "http://"+in.addr+"/", nil)
		if in.host != "" {
			req.Host = in.host
		}
		req.Header.Set("x-swimlane", laneName)
		resp, err := c.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && len(body) == payloadSize {
				return nil
			}
			last = fmt.Sprintf("status %d, %d bytes: %.200s", resp.StatusCode, len(body), body)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: no 200 with %d bytes through %s: %s", in.target, payloadSize, in.addr, last)
}

// waitEchoes sends a message through the TCP instance until its echo comes back.
func waitEchoes(in *instance) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := checkTCPEcho(in)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %d-byte echo through %s: %w", in.target, payloadSize, in.addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkTCPEcho sends one message through in (its CONNECT tunnel if any) and expects its
// echo: the TCP counterpart of waitServes' HTTP request.
func checkTCPEcho(in *instance) error {
	l := tcpLoad{addr: in.addr, connectTo: in.connectTo, size: payloadSize}
	deadline := time.Now().Add(2 * time.Second)
	c, err := l.dial(deadline)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	out := bytes.Repeat([]byte("x"), payloadSize)
	return l.exchange(c, out, make([]byte, payloadSize))
}

func nginxConf(dir, proto, addr, up string) string {
	common := fmt.Sprintf(`worker_processes 1;
daemon off;
master_process on;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 8192; }
`, dir)
	if proto == "tcp" {
		return "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n" + common + fmt.Sprintf(`stream {
  server { listen %s; proxy_pass %s; }
}
`, addr, up)
	}
	temps := ""
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		temps += fmt.Sprintf("  %s_temp_path %s/%s;\n", t, dir, t)
	}
	if proto == "grpc" {
		return common + fmt.Sprintf(`http {
  access_log off;
%s  keepalive_requests 10000000;
  http2_max_requests 10000000;
  upstream up { server %s; keepalive 64; keepalive_requests 10000000; }
  server {
    listen %s http2;
    location / { grpc_pass grpc://up; }
  }
}
`, temps, up, addr)
	}
	return common + fmt.Sprintf(`http {
  access_log off;
%s  keepalive_requests 10000000;
  upstream up { server %s; keepalive 64; keepalive_requests 10000000; }
  server {
    listen %s;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, temps, up, addr)
}

func haproxyConf(proto, addr, up string) string {
	mode, bind, srv := "http", "", ""
	switch proto {
	case "tcp":
		mode = "tcp"
	case "h2c", "grpc":
		bind, srv = " proto h2", " proto h2"
	}
	return fmt.Sprintf(`global
  nbthread 1
  maxconn 4096
defaults
  mode %s
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  bind %s%s
  default_backend be
backend be
  server s1 %s%s
`, mode, addr, bind, up, srv)
}

func caddyConf(proto, addr, up string) string {
	transport := ""
	if proto != "http1" {
		transport = " {\n    transport http {\n      versions h2c\n    }\n  }"
	}
	return fmt.Sprintf(`{
  admin off
  auto_https off
  persist_config off
  servers {
    protocols h1 h2c
  }
}
http://%s {
  bind %s
  reverse_proxy %s%s
}
`, addr, strings.Split(addr, ":")[0], up, transport)
}

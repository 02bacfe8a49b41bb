package proxy_test

// The shared harness of the proxy tests: a real control plane (control.New + Serve + Run) fed
// by a registry and YAML config, real proxies subscribed to it over gRPC, and real upstream
// apps (HTTP/1.1, h2c, gRPC, TCP echo) on 127.0.0.1. Nothing is mocked; every listener uses
// port 0, every goroutine is stopped in t.Cleanup, and every wait polls for its condition.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"swimlane.dev/swimlane/internal/config"
	"swimlane.dev/swimlane/internal/control"
	"swimlane.dev/swimlane/internal/proxy"
	"swimlane.dev/swimlane/internal/registry"
	"swimlane.dev/swimlane/internal/snapshot"
)

// waitTimeout bounds every poll: generous, because -race slows everything down.
const waitTimeout = 20 * time.Second

// knownBug fails the test with the description of a bug it once found in non-test code, so a
// regression names its cause.
func knownBug(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Fatalf("regression: "+format, args...)
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, not a correctness assumption
	}
}

// testLogWriter sends slog output to t.Log until the test's cleanups are done, after which
// late log lines (from goroutines still unwinding) are dropped instead of panicking.
type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// newLogger returns a logger writing to t; SWIMLANE_TEST_DEBUG=1 shows debug lines.
func newLogger(t testing.TB) *slog.Logger {
	w := &testLogWriter{t: t}
	// Registered first, so it runs last: everything that logs has stopped by then.
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	level := slog.LevelInfo
	if os.Getenv("SWIMLANE_TEST_DEBUG") == "1" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// background runs fn in a goroutine with its own context. The returned stop cancels it and
// waits for fn to return (reporting its error); t.Cleanup calls stop too, once.
func background(t testing.TB, name string, fn func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
			case <-time.After(waitTimeout):
				t.Errorf("%s did not stop within %v", name, waitTimeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// listen opens a listener on a free loopback port.
func listen(t testing.TB) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	return lis
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// parseConfig parses YAML text as one config file.
func parseConfig(t testing.TB, yaml string) *config.Set {
	t.Helper()
	set, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config.Parse: %v\n%s", err, yaml)
	}
	return set
}

// meshYAML returns a Mesh document with one service per name, each selecting app=<name>.
func meshYAML(services ...string) string {
	var b strings.Builder
	b.WriteString("apiVersion: swimlane.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: test\nspec:\n  services:\n")
	for _, s := range services {
		fmt.Fprintf(&b, "  - name: %s\n    port: 80\n    selector: {app: %s}\n", s, s)
	}
	return b.String()
}

// mesh is one control plane with its registry, config and subscribed proxies.
type mesh struct {
	t       testing.TB
	log     *slog.Logger
	reg     *registry.Registry
	cfg     *config.Set
	cp      *control.Server
	cpAddr  string
	stopCP  func()
	proxies []*proxy.Proxy
}

// newMesh starts a control plane serving the config in yaml (and whatever the registry holds).
func newMesh(t testing.TB, yaml string) *mesh {
	t.Helper()
	m := &mesh{t: t, log: newLogger(t), reg: registry.New(), cfg: parseConfig(t, yaml)}
	lis := listen(t)
	m.cpAddr = lis.Addr().String()
	m.startControlPlane(lis, m.cfg)
	return m
}

// startControlPlane starts a new control plane on lis with cfg (the registry is kept).
func (m *mesh) startControlPlane(lis net.Listener, cfg *config.Set) {
	m.t.Helper()
	cp, err := control.New(m.reg, m.log)
	if err != nil {
		m.t.Fatalf("control.New: %v", err)
	}
	if err := cp.SetConfig(cfg); err != nil {
		m.t.Fatalf("SetConfig: %v", err)
	}
	m.cp, m.cfg = cp, cfg
	m.stopCP = background(m.t, "control plane", func(ctx context.Context) error {
		run := make(chan struct{})
		go func() {
			defer close(run)
			cp.Run(ctx)
		}()
		err := cp.Serve(ctx, lis)
		<-run
		return err
	})
}

// version is the control plane's current snapshot version.
func (m *mesh) version() uint64 {
	cur, _ := m.cp.Current()
	return cur.Version
}

// published is the control plane's current snapshot.
func (m *mesh) published() *snapshot.Snapshot {
	cur, _ := m.cp.Current()
	return cur.Snapshot
}

// sync waits until every proxy runs the control plane's current snapshot.
func (m *mesh) sync() {
	m.t.Helper()
	waitFor(m.t, "proxies to reach the control plane's snapshot version", func() bool {
		v := m.version()
		for _, p := range m.proxies {
			if p.Snapshot().Version != v {
				return false
			}
		}
		return true
	})
}

// setConfig replaces the config with yaml; the proxies are synced when it returns.
func (m *mesh) setConfig(yaml string) {
	m.t.Helper()
	set := parseConfig(m.t, yaml)
	if err := m.cp.SetConfig(set); err != nil {
		m.t.Fatalf("SetConfig: %v", err)
	}
	m.cfg = set
	m.sync()
}

// register upserts workloads one at a time, each time waiting until the control plane
// (through Run) has published a snapshot holding it, then syncs the proxies. Every workload
// must be selected by some service. (One at a time because Run loses changes that arrive in a
// burst; see TestControlPlaneRunSeesEveryRegistryChange.)
func (m *mesh) register(ws ...registry.Workload) {
	m.t.Helper()
	for _, w := range ws {
		m.reg.Upsert(w)
		m.waitPublished(func(s *snapshot.Snapshot) bool { return hasEndpoint(s, w) })
	}
	m.sync()
}

// unregister removes workloads and waits until no snapshot endpoint names them.
func (m *mesh) unregister(names ...string) {
	m.t.Helper()
	for _, n := range names {
		m.reg.Remove(n)
	}
	m.waitPublished(func(s *snapshot.Snapshot) bool {
		for _, svc := range s.Services {
			for _, ep := range svc.Endpoints {
				for _, n := range names {
					if ep.Workload == n {
						return false
					}
				}
			}
		}
		return true
	})
	m.sync()
}

// waitPublished waits until the control plane's current snapshot satisfies cond.
func (m *mesh) waitPublished(cond func(*snapshot.Snapshot) bool) {
	m.t.Helper()
	waitFor(m.t, "the control plane to publish the registry change", func() bool {
		return cond(m.published())
	})
}

func hasEndpoint(s *snapshot.Snapshot, w registry.Workload) bool {
	for _, svc := range s.Services {
		for _, ep := range svc.Endpoints {
			if ep.Workload == w.Name && ep.Address == w.Address && ep.Protocol == w.Protocol && maps.Equal(ep.Labels, w.Labels) {
				return true
			}
		}
	}
	return false
}

// newProxy starts a proxy subscribed to the control plane and waits for its first snapshot.
func (m *mesh) newProxy(node string) *proxy.Proxy {
	m.t.Helper()
	p := proxy.New(node, m.log)
	background(m.t, "subscribe "+node, func(ctx context.Context) error {
		return p.Subscribe(ctx, m.cpAddr, nil)
	})
	m.proxies = append(m.proxies, p)
	m.sync()
	return p
}

// serve runs fn on a fresh listener until the test ends and returns the listener's address.
func serve(t testing.TB, name string, fn func(ctx context.Context, lis net.Listener) error) string {
	t.Helper()
	lis := listen(t)
	background(t, name, func(ctx context.Context) error { return fn(ctx, lis) })
	return lis.Addr().String()
}

// outbound starts p's outbound listener.
func outbound(t testing.TB, p *proxy.Proxy) string {
	t.Helper()
	return serve(t, "outbound "+p.Node, p.ServeOutbound)
}

// inbound starts p's inbound listener in front of the app at appAddr.
func inbound(t testing.TB, p *proxy.Proxy, appAddr string, proto snapshot.Protocol) string {
	t.Helper()
	return serve(t, "inbound "+p.Node, func(ctx context.Context, lis net.Listener) error {
		return p.ServeInbound(ctx, lis, appAddr, proto)
	})
}

// gateway starts p as the ingress gateway name.
func gateway(t testing.TB, p *proxy.Proxy, name string) string {
	t.Helper()
	return serve(t, "gateway "+name, func(ctx context.Context, lis net.Listener) error {
		return p.ServeGateway(ctx, lis, name)
	})
}

// workload is shorthand for a registry workload of service app in lane ("" for no lane label).
func workload(name, app, lane, addr string, proto snapshot.Protocol) registry.Workload {
	labels := map[string]string{"app": app}
	if lane != "" {
		labels["swimlane"] = lane
	}
	return registry.Workload{Name: name, Address: addr, Protocol: proto, Labels: labels}
}

// sidecarWorkload starts an inbound sidecar (its own proxy, subscribed like any other) in
// front of appAddr and returns the workload that registers it: the two-hop path
// client -> outbound sidecar -> inbound sidecar -> app.
func (m *mesh) sidecarWorkload(name, app, lane, appAddr string, proto snapshot.Protocol) registry.Workload {
	m.t.Helper()
	p := m.newProxy("sidecar~" + name)
	return workload(name, app, lane, inbound(m.t, p, appAddr, proto), proto)
}

// ---- upstream apps ----

// echoReply is what the HTTP echo app answers: who it is and what it received.
type echoReply struct {
	App    string      `json:"app"`
	Proto  string      `json:"proto"`
	Method string      `json:"method"`
	Host   string      `json:"host"`
	URI    string      `json:"uri"`
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
}

// startHTTPApp starts an echo app named name. With h2c it speaks HTTP/1.1 and HTTP/2 prior
// knowledge, else HTTP/1.1 only. It answers with an echoReply and the header X-App: name.
func startHTTPApp(t testing.TB, name string, h2c bool) string {
	t.Helper()
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(h2c)
	srv := &http.Server{
		Protocols: &protocols,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-App", name)
			_ = json.NewEncoder(w).Encode(echoReply{
				App: name, Proto: r.Proto, Method: r.Method, Host: r.Host, URI: r.RequestURI,
				Header: r.Header, Body: string(body),
			})
		}),
	}
	lis := listen(t)
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	return lis.Addr().String()
}

// startTCPEcho starts a TCP server that echoes each connection's bytes and half-closes its
// write side when the client has half-closed.
func startTCPEcho(t testing.TB) string {
	t.Helper()
	return proxy.ServeConns(t, func(c net.Conn) {
		_, _ = io.Copy(c, c)
		_ = c.(*net.TCPConn).CloseWrite()
	})
}

// ---- clients ----

// httpClient returns a client with its own transport (closed at cleanup); proxyAddr, if not
// empty, is its HTTP proxy.
func httpClient(t testing.TB, proxyAddr string) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	if proxyAddr != "" {
		tr.Proxy = http.ProxyURL(mustURL("http://" + proxyAddr))
	} else {
		tr.Proxy = nil
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitTimeout}
}

// h2cClient returns a client speaking only HTTP/2 with prior knowledge.
func h2cClient(t testing.TB) *http.Client {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitTimeout}
}

// response is a finished HTTP exchange.
type response struct {
	*http.Response
	body string
}

// reply decodes the echo app's answer, failing the test on any other status.
func (r response) reply(t testing.TB) echoReply {
	t.Helper()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200; body: %s", r.StatusCode, r.body)
	}
	var rep echoReply
	if err := json.Unmarshal([]byte(r.body), &rep); err != nil {
		t.Fatalf("decoding echo reply %q: %v", r.body, err)
	}
	return rep
}

// do sends a request; host, if not empty, overrides the Host header; header values are added.
func do(t testing.TB, c *http.Client, method, url, host string, header http.Header) response {
	t.Helper()
	res, err := tryDo(c, method, url, host, header)
	if err != nil {
		t.Fatalf("%s %s (Host %q): %v", method, url, host, err)
	}
	return res
}

func tryDo(c *http.Client, method, url, host string, header http.Header) (response, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return response{}, err
	}
	if host != "" {
		req.Host = host
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	return response{res, string(body)}, nil
}

// hdr builds a header from name, value pairs.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// bufferedConn is a conn whose first reads come from a bufio.Reader that already read ahead.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the underlying TCP connection.
func (c *bufferedConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

// connectError is a CONNECT the proxy refused.
type connectError struct {
	status int
	body   string
}

func (e *connectError) Error() string {
	return fmt.Sprintf("CONNECT refused: %d %s", e.status, strings.TrimSpace(e.body))
}

// dialConnect opens a CONNECT tunnel to target through the proxy at proxyAddr, by hand, as an
// HTTPS_PROXY client does; header is sent with the CONNECT request.
func dialConnect(ctx context.Context, proxyAddr, target string, header http.Header) (*bufferedConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", target, target)
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		c.Close()
		return nil, &connectError{status: res.StatusCode, body: string(body)}
	}
	c.SetDeadline(time.Time{})
	return &bufferedConn{Conn: c, r: br}, nil
}

// mustConnect is dialConnect for tests, with the connection closed at cleanup.
func mustConnect(t testing.TB, proxyAddr, target string) *bufferedConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := dialConnect(ctx, proxyAddr, target, nil)
	if err != nil {
		t.Fatalf("CONNECT %s via %s: %v", target, proxyAddr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// grpcViaConnect returns a gRPC client for target ("service:port") that reaches it through a
// CONNECT tunnel opened by hand on the outbound listener.
//
// Why not HTTPS_PROXY, as apps in the mesh do: grpc-go reads the proxy from the environment
// through net/http's ProxyFromEnvironment, which caches the environment once per process, so
// a t.Setenv in one test would be ignored (or leak into others) depending on test order. A
// context dialer that performs the same CONNECT exchange is deterministic and per client;
// grpc.WithNoProxy makes sure no environment proxy is layered on top.
func grpcViaConnect(t testing.TB, outboundAddr, target string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithNoProxy(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialConnect(ctx, outboundAddr, addr, nil)
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// grpcDirect returns a gRPC client that talks h2c to the outbound listener itself with
// :authority target, the "Host = service" way of reaching the mesh.
func grpcDirect(t testing.TB, outboundAddr, target string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+outboundAddr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithNoProxy(),
		grpc.WithAuthority(target),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// newUnsubscribedProxy returns a proxy that never hears from a control plane.
func newUnsubscribedProxy(t testing.TB) *proxy.Proxy {
	return proxy.New("sidecar~lonely", newLogger(t))
}

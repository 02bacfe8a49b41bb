package echo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"swimlane.dev/swimlane/internal/echo/echopb"
)

// start serves cfg on 127.0.0.1:0 until the test ends and returns the address.
func start(t *testing.T, cfg Config) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener = lis
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve(%s): %v", cfg.Service, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve(%s) did not return after cancel", cfg.Service)
		}
	})
	return lis.Addr().String()
}

// noProxy is a client that never goes through a proxy, whatever the environment says.
func noProxy(protos *http.Protocols) *http.Client {
	tr := &http.Transport{Proxy: nil, Protocols: protos}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func answer(t *testing.T, resp *http.Response, body []byte) Answer {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var a Answer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return a
}

func TestHTTP1(t *testing.T) {
	addr := start(t, Config{Service: "goods", Version: "v1", Lane: "dev"})
	resp, body := get(t, noProxy(nil), "http://"+addr+"/some/path", map[string]string{"X-Swimlane": "dev", "X-Other": "1"})
	a := answer(t, resp, body)
	if a.Service != "goods" || a.Version != "v1" || a.Lane != "dev" || a.Method != "GET" || a.Path != "/some/path" || a.Host != addr {
		t.Errorf("answer = %+v", a)
	}
	if a.Proto != "HTTP/1.1" || resp.Proto != "HTTP/1.1" {
		t.Errorf("proto = %q (response %q), want HTTP/1.1", a.Proto, resp.Proto)
	}
	if a.Headers["x-swimlane"] != "dev" || a.Headers["x-other"] != "1" {
		t.Errorf("headers = %v", a.Headers)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content-type = %q", ct)
	}
}

func TestH2C(t *testing.T) {
	addr := start(t, Config{Service: "goods", Version: "v2", Lane: "main"})
	var p http.Protocols
	p.SetUnencryptedHTTP2(true) // prior knowledge: no upgrade, no HTTP/1.1 fallback
	resp, body := get(t, noProxy(&p), "http://"+addr+"/", map[string]string{"x-swimlane": "main"})
	a := answer(t, resp, body)
	if resp.Proto != "HTTP/2.0" || a.Proto != "HTTP/2.0" {
		t.Errorf("proto = %q (response %q), want HTTP/2.0", a.Proto, resp.Proto)
	}
	if a.Service != "goods" || a.Version != "v2" || a.Headers["x-swimlane"] != "main" {
		t.Errorf("answer = %+v", a)
	}
}

func TestHTTPFailRate(t *testing.T) {
	addr := start(t, Config{Service: "goods", Version: "v1"})
	c := noProxy(nil)
	const n, p = 400, 0.3
	failed := 0
	for range n {
		resp, body := get(t, c, "http://"+addr+"/", map[string]string{"fail": fmt.Sprint(p)})
		switch resp.StatusCode {
		case http.StatusInternalServerError:
			failed++
			if !strings.Contains(string(body), "injected failure") {
				t.Fatalf("500 body = %q", body)
			}
		case http.StatusOK:
		default:
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	}
	// Binomial(400, 0.3): mean 120, sigma ~9.2; 5 sigma makes a false alarm ~1 in 3.5 million.
	mean, sigma := n*p, math.Sqrt(n*p*(1-p))
	if lo, hi := mean-5*sigma, mean+5*sigma; float64(failed) < lo || float64(failed) > hi {
		t.Errorf("%d of %d failed with fail: %v, want within [%.0f, %.0f]", failed, n, p, lo, hi)
	}
	for _, tc := range []struct {
		fail string
		want int
	}{{"1", 500}, {"0", 200}, {"", 200}, {"junk", 200}} {
		for range 20 {
			if resp, body := get(t, c, "http://"+addr+"/", map[string]string{"fail": tc.fail}); resp.StatusCode != tc.want {
				t.Fatalf("fail: %q: status %d, want %d: %s", tc.fail, resp.StatusCode, tc.want, body)
			}
		}
	}
}

func TestHTTPDelay(t *testing.T) {
	addr := start(t, Config{Service: "goods"})
	const d = 200 * time.Millisecond
	t0 := time.Now()
	resp, body := get(t, noProxy(nil), "http://"+addr+"/", map[string]string{"delay": d.String()})
	answer(t, resp, body)
	if took := time.Since(t0); took < d {
		t.Errorf("answered after %v, want at least %v", took, d)
	}
}

func TestHTTPUpstreamChain(t *testing.T) {
	b := start(t, Config{Service: "b", Version: "v2", Lane: "feature"})
	a := start(t, Config{Service: "a", Version: "v1", Lane: "main", Upstream: "http://" + b + "/next", Forward: []string{"x-swimlane", "traceparent"}})
	hdr := map[string]string{
		"x-swimlane":  "feature",
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"x-secret":    "not-forwarded",
	}
	resp, body := get(t, noProxy(nil), "http://"+a+"/", hdr)
	ans := answer(t, resp, body)
	if ans.UpstreamError != "" || ans.Upstream == nil {
		t.Fatalf("upstream = %+v, error %q", ans.Upstream, ans.UpstreamError)
	}
	if got, want := strings.Join(ans.Lanes(), " "), "a:main b:feature"; got != want {
		t.Errorf("lanes = %q, want %q", got, want)
	}
	if ans.Headers["x-secret"] != "not-forwarded" {
		t.Errorf("first hop headers = %v", ans.Headers)
	}
	up := ans.Upstream
	if up.Path != "/next" || up.Version != "v2" {
		t.Errorf("upstream = %+v", up)
	}
	for _, h := range []string{"x-swimlane", "traceparent"} {
		if up.Headers[h] != hdr[h] {
			t.Errorf("upstream header %s = %q, want %q", h, up.Headers[h], hdr[h])
		}
	}
	if v, ok := up.Headers["x-secret"]; ok {
		t.Errorf("x-secret forwarded upstream: %q", v)
	}

	// A failing upstream is reported in the answer, not as a failure of the first hop.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := lis.Addr().String()
	lis.Close()
	unreachable := start(t, Config{Service: "a", Upstream: "http://" + closed + "/"})
	resp, body = get(t, noProxy(nil), "http://"+unreachable+"/", nil)
	if ans := answer(t, resp, body); ans.Upstream != nil || ans.UpstreamError == "" {
		t.Errorf("unreachable upstream: %+v", ans)
	}
}

func TestHTTPHealth(t *testing.T) {
	addr := start(t, Config{Service: "goods"})
	c := noProxy(nil)
	status := func() int {
		resp, _ := get(t, c, "http://"+addr+"/healthz", nil)
		return resp.StatusCode
	}
	set := func(healthy string) {
		resp, err := c.Post("http://"+addr+"/healthz?healthy="+healthy, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST healthy=%s: %d", healthy, resp.StatusCode)
		}
	}
	if s := status(); s != 200 {
		t.Errorf("healthz = %d, want 200", s)
	}
	set("false")
	if s := status(); s != 503 {
		t.Errorf("healthz after healthy=false = %d, want 503", s)
	}
	// The echo itself still answers while unhealthy.
	if resp, body := get(t, c, "http://"+addr+"/", nil); resp.StatusCode != 200 {
		t.Errorf("echo while unhealthy: %d %s", resp.StatusCode, body)
	}
	set("true")
	if s := status(); s != 200 {
		t.Errorf("healthz after healthy=true = %d, want 200", s)
	}
}

func TestUnknownProtocol(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := Serve(context.Background(), Config{Listener: lis, Protocol: "udp"}); err == nil {
		t.Fatal("Serve with protocol udp: no error")
	}
}

func dialGRPC(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithNoProxy())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestGRPCEcho(t *testing.T) {
	addr := start(t, Config{Service: "goods", Version: "v1", Lane: "dev", Protocol: "grpc"})
	c := echopb.NewEchoClient(dialGRPC(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-swimlane", "dev", "x-multi", "1", "x-multi", "2", "trace-bin", "\x00\xff")
	resp, err := c.Echo(ctx, &echopb.EchoRequest{Message: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetMessage() != "hello" || resp.GetService() != "goods" || resp.GetVersion() != "v1" || resp.GetLane() != "dev" {
		t.Errorf("response = %v", resp)
	}
	md := resp.GetMetadata()
	if md["x-swimlane"] != "dev" || md["x-multi"] != "1,2" || md["trace-bin"] != "AP8" {
		t.Errorf("metadata = %v", md)
	}
	if !strings.HasPrefix(md["content-type"], "application/grpc") {
		t.Errorf("content-type = %q", md["content-type"])
	}
	if resp.GetUpstream() != nil || resp.GetUpstreamError() != "" {
		t.Errorf("upstream without one configured: %v %q", resp.GetUpstream(), resp.GetUpstreamError())
	}
}

func TestGRPCFaults(t *testing.T) {
	addr := start(t, Config{Service: "goods", Protocol: "grpc"})
	c := echopb.NewEchoClient(dialGRPC(t, addr))
	call := func(kv ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Echo(metadata.AppendToOutgoingContext(ctx, kv...), &echopb.EchoRequest{Message: "x"})
		return err
	}
	err := call("fail", "1")
	if st, _ := status.FromError(err); st.Code() != codes.Internal || st.Message() != InjectedFailure {
		t.Fatalf("fail: 1 = %v, want Internal %q", err, InjectedFailure)
	}
	if err := call("fail", "0"); err != nil {
		t.Fatalf("fail: 0 = %v", err)
	}
	const n, p = 400, 0.3
	failed := 0
	for range n {
		if err := call("fail", fmt.Sprint(p)); err != nil {
			if status.Code(err) != codes.Internal {
				t.Fatal(err)
			}
			failed++
		}
	}
	mean, sigma := n*p, math.Sqrt(n*p*(1-p))
	if lo, hi := mean-5*sigma, mean+5*sigma; float64(failed) < lo || float64(failed) > hi {
		t.Errorf("%d of %d failed with fail: %v, want within [%.0f, %.0f]", failed, n, p, lo, hi)
	}
	const d = 200 * time.Millisecond
	t0 := time.Now()
	if err := call("delay", d.String()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took < d {
		t.Errorf("answered after %v, want at least %v", took, d)
	}
	// A deadline shorter than the delay ends the call with DEADLINE_EXCEEDED.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Echo(metadata.AppendToOutgoingContext(ctx, "delay", "5s"), &echopb.EchoRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("delay 5s with 50ms deadline = %v", err)
	}
}

func TestGRPCUpstreamChain(t *testing.T) {
	b := start(t, Config{Service: "b", Version: "v2", Lane: "feature", Protocol: "grpc"})
	// The unit test has no mesh: the first hop dials the second directly (no proxy on loopback).
	a := start(t, Config{Service: "a", Version: "v1", Lane: "main", Protocol: "grpc", Upstream: b, Forward: []string{"x-swimlane", "traceparent"}})
	c := echopb.NewEchoClient(dialGRPC(t, a))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	ctx = metadata.AppendToOutgoingContext(ctx, "x-swimlane", "feature", "traceparent", tp, "x-secret", "not-forwarded")
	resp, err := c.Echo(ctx, &echopb.EchoRequest{Message: "chain"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetUpstreamError() != "" || resp.GetUpstream() == nil {
		t.Fatalf("upstream = %v, error %q", resp.GetUpstream(), resp.GetUpstreamError())
	}
	if resp.GetMetadata()["x-secret"] != "not-forwarded" {
		t.Errorf("first hop metadata = %v", resp.GetMetadata())
	}
	up := resp.GetUpstream()
	if up.GetService() != "b" || up.GetVersion() != "v2" || up.GetLane() != "feature" || up.GetMessage() != "chain" {
		t.Errorf("upstream = %v", up)
	}
	if md := up.GetMetadata(); md["x-swimlane"] != "feature" || md["traceparent"] != tp {
		t.Errorf("upstream metadata = %v", md)
	}
	if v, ok := up.GetMetadata()["x-secret"]; ok {
		t.Errorf("x-secret forwarded upstream: %q", v)
	}

	// Faults travel down the chain: with fail: 1 the first hop already fails.
	_, err = c.Echo(metadata.AppendToOutgoingContext(ctx, "fail", "1"), &echopb.EchoRequest{})
	if status.Code(err) != codes.Internal {
		t.Errorf("fail: 1 through the chain = %v", err)
	}

	// An unreachable upstream is reported in the answer.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := lis.Addr().String()
	lis.Close()
	d := start(t, Config{Service: "a", Protocol: "grpc", Upstream: deadAddr})
	short, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	resp, err = echopb.NewEchoClient(dialGRPC(t, d)).Echo(short, &echopb.EchoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetUpstream() != nil || resp.GetUpstreamError() == "" {
		t.Errorf("dead upstream: upstream %v, error %q", resp.GetUpstream(), resp.GetUpstreamError())
	}
}

func TestGRPCHealth(t *testing.T) {
	addr := start(t, Config{Service: "goods", Protocol: "grpc"})
	h := healthpb.NewHealthClient(dialGRPC(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, svc := range []string{"", "swimlane.echo.v1.Echo"} {
		resp, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("Check(%q): %v", svc, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Check(%q) = %v, want SERVING", svc, resp.GetStatus())
		}
	}
}

func TestTCPLineEcho(t *testing.T) {
	addr := start(t, Config{Service: "tcp-echo", Version: "one", Protocol: "tcp"})
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	for _, line := range []string{"hello", "world", "", "with spaces  and\ttabs", strings.Repeat("x", 100000)} {
		if _, err := fmt.Fprintf(conn, "%s\n", line); err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if want := "one " + line + "\n"; got != want {
			t.Errorf("answer = %.60q, want %.60q", got, want)
		}
	}
	// Several lines in one write come back as several answers.
	if _, err := io.WriteString(conn, "a\nb\nc\n"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"one a\n", "one b\n", "one c\n"} {
		if got, err := r.ReadString('\n'); err != nil || got != want {
			t.Errorf("answer = %q, %v; want %q", got, err, want)
		}
	}
	// A last line without a newline is answered when the client closes its side; then EOF.
	io.WriteString(conn, "bye")
	conn.(*net.TCPConn).CloseWrite()
	if got, err := r.ReadString('\n'); err != nil || got != "one bye\n" {
		t.Errorf("answer = %q, %v; want %q", got, err, "one bye\n")
	}
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("after close: %v, want EOF", err)
	}

	// Two clients at once, like the sample's load test.
	c1, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprintln(c2, "second")
	fmt.Fprintln(c1, "first")
	for c, want := range map[net.Conn]string{c1: "one first\n", c2: "one second\n"} {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != want {
			t.Errorf("answer = %q, %v; want %q", got, err, want)
		}
	}
}

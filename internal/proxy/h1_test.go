package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/proxy"
	"swimlane.dev/swimlane/internal/snapshot"
)

// The proxy's own HTTP/1.1 server and client (h1server.go, h1client.go) are checked here on
// the wire: raw bytes in, parsed answers out, against real listeners.

// rawConn dials addr and returns the connection with a reader for its answers.
func rawConn(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// h1Mesh starts a mesh with service web (an echo app behind its inbound sidecar, so requests
// cross both of the proxy's own server and client twice) and returns the outbound listener.
func h1Mesh(t *testing.T) string {
	m := newMesh(t, meshYAML("web"))
	m.register(m.sidecarWorkload("web-main", "web", "main", startHTTPApp(t, "web-app", false), snapshot.HTTP))
	return outbound(t, m.newProxy("sidecar~client"))
}

// TestH1KeepAliveAndBodies sends, on one connection and in one write, a GET, a chunked POST
// with a trailer, a POST of known length and a HEAD, then a GET: each answer must match its
// request, bodies intact, and the connection must stay open throughout.
func TestH1KeepAliveAndBodies(t *testing.T) {
	t.Parallel()
	c, br := rawConn(t, h1Mesh(t))
	fmt.Fprint(c, "GET /one?x=1 HTTP/1.1\r\nHost: web\r\nX-Test: a\r\n\r\n"+
		"POST /two HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n"+
		"POST /three HTTP/1.1\r\nhost: web\r\ncontent-length: 3\r\n\r\nabc"+
		"HEAD /four HTTP/1.1\r\nHost: web\r\n\r\n")
	for _, want := range []struct{ method, uri, body string }{{"GET", "/one?x=1", ""}, {"POST", "/two", "hello world"}, {"POST", "/three", "abc"}} {
		res := readResponse(t, br)
		rep := res.reply(t)
		if res.StatusCode != 200 || rep.Method != want.method || rep.URI != want.uri || rep.Body != want.body {
			t.Fatalf("answer to %s %s: %d %+v, want its own request echoed with body %q", want.method, want.uri, res.StatusCode, rep, want.body)
		}
		if want.uri == "/one?x=1" && rep.Header.Get("X-Test") != "a" {
			t.Errorf("X-Test did not reach the app: %v", rep.Header)
		}
	}
	head, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
	if err != nil || head.StatusCode != 200 {
		t.Fatalf("HEAD: %v %v", head, err)
	}
	fmt.Fprint(c, "GET /five HTTP/1.1\r\nHost: web\r\n\r\n")
	if rep := readResponse(t, br).reply(t); rep.URI != "/five" {
		t.Fatalf("after HEAD the connection answered %+v, want /five: HEAD's answer carried a body", rep)
	}
}

// TestH1ExpectContinue: a client that waits for 100 Continue gets it, then its answer.
func TestH1ExpectContinue(t *testing.T) {
	t.Parallel()
	c, br := rawConn(t, h1Mesh(t))
	fmt.Fprint(c, "PUT /up HTTP/1.1\r\nHost: web\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q, %v; want 100 Continue before the body is sent", line, err)
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("100 Continue not followed by an empty line: %q", blank)
	}
	fmt.Fprint(c, "data")
	if rep := readResponse(t, br).reply(t); rep.Body != "data" || rep.Method != "PUT" {
		t.Fatalf("app saw %+v, want PUT with body data", rep)
	}
}

// TestH1HandOff: what the fast path does not serve (HTTP/1.0, here after an HTTP/1.1
// request on the same connection) goes to net/http with every byte, and is answered.
func TestH1HandOff(t *testing.T) {
	t.Parallel()
	c, br := rawConn(t, h1Mesh(t))
	fmt.Fprint(c, "GET /first HTTP/1.1\r\nHost: web\r\n\r\nGET /second HTTP/1.0\r\nHost: web\r\nX-Test: old\r\n\r\n")
	if rep := readResponse(t, br).reply(t); rep.URI != "/first" {
		t.Fatalf("first answer %+v", rep)
	}
	rep := readResponse(t, br).reply(t)
	if rep.URI != "/second" || rep.Header.Get("X-Test") != "old" {
		t.Fatalf("HTTP/1.0 request handed to net/http lost bytes: app saw %+v", rep)
	}
}

// TestH1TargetAsSent: the request target reaches the app spelled as the client sent it,
// whichever characters it holds (a URL re-encoded on the way, "(" as "%28", breaks signed
// URLs and caches keyed on the raw path).
func TestH1TargetAsSent(t *testing.T) {
	t.Parallel()
	c, br := rawConn(t, h1Mesh(t))
	for _, target := range []string{"/wiki/Foo_(bar)", "/a!b*c'd", "/caf%C3%A9/%2F?q=%20&x", "/p;v=1/q?", "/~user/a+b"} {
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: web\r\n\r\n", target)
		if rep := readResponse(t, br).reply(t); rep.URI != target {
			t.Errorf("sent %s, the app saw %s", target, rep.URI)
		}
	}
}

// TestH1ChunkedBodyCutShort: a chunked body whose trailer section never ends is not passed on
// as whole: the app does not get a request it would take as complete.
func TestH1ChunkedBodyCutShort(t *testing.T) {
	t.Parallel()
	app, conns := rawApp(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if _, err := io.ReadAll(req.Body); err != nil {
			return // the body did not arrive whole: no answer
		}
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nwhole")
	})
	m := newMesh(t, meshYAML("web"))
	m.register(workload("web-main", "web", "main", app, snapshot.HTTP))
	c, br := rawConn(t, outbound(t, m.newProxy("sidecar~client")))
	fmt.Fprint(c, "POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n")
	c.(*net.TCPConn).CloseWrite()
	if res, err := http.ReadResponse(br, nil); err == nil {
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode == 200 && string(body) == "whole" {
			t.Fatalf("the app took a cut chunked body as whole (%d connections)", conns.Load())
		}
	}
}

// TestH1BadRequests: malformed heads get a clear 4xx/5xx naming the problem, and the
// connection closes.
func TestH1BadRequests(t *testing.T) {
	t.Parallel()
	out := h1Mesh(t)
	tests := []struct {
		name, send string
		status     int
		reason     string
	}{
		{"header without colon", "GET / HTTP/1.1\r\nHost: web\r\nBad Header\r\n\r\n", 400, "malformed header line"},
		{"no Host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400, "Host"},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: web\r\nHost: web2\r\n\r\n", 400, "Host"},
		{"gzip transfer coding", "POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "Transfer-Encoding"},
		{"both framings", "POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400, "Content-Length"},
		{"bad length", "POST / HTTP/1.1\r\nHost: web\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length"},
		{"control character", "GET / HTTP/1.1\r\nHost: web\r\nX-A: a\x00b\r\n\r\n", 400, "control character"},
		// A bare CR ends the line for some parsers: forwarded, it would split the header.
		{"bare CR in a value", "GET / HTTP/1.1\r\nHost: web\r\nX-A: a\rX-Injected: 1\r\n\r\n", 400, "control character"},
		{"method not a token", "G(T / HTTP/1.1\r\nHost: web\r\n\r\n", 400, "request line"},
		{"bad request line", "GET/HTTP/1.1\r\nHost: web\r\n\r\n", 400, "request line"},
		{"head too large", "GET / HTTP/1.1\r\nHost: web\r\nX-Big: " + strings.Repeat("a", 1<<20) + "\r\n\r\n", 431, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, br := rawConn(t, out)
			go fmt.Fprint(c, tt.send) // a large head may not fit the socket buffers before the answer
			res := readResponse(t, br)
			if res.StatusCode != tt.status || !strings.Contains(res.body, tt.reason) {
				t.Errorf("got %d %q, want %d naming %q", res.StatusCode, res.body, tt.status, tt.reason)
			}
			if b, err := br.ReadByte(); err == nil { // EOF, or a reset when the rest was unread
				t.Errorf("connection still open after a refused request (read %q)", b)
			}
		})
	}
}

// rawApp serves each accepted connection with fn; it counts connections.
func rawApp(t *testing.T, fn func(c net.Conn, br *bufio.Reader)) (addr string, conns *atomic.Int32) {
	t.Helper()
	conns = &atomic.Int32{}
	addr = proxy.ServeConns(t, func(c net.Conn) {
		conns.Add(1)
		fn(c, bufio.NewReader(c))
	})
	return addr, conns
}

// readRequestHead reads one request from br (no body).
func readRequestHead(br *bufio.Reader) error {
	req, err := http.ReadRequest(br)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, req.Body)
	return err
}

// TestH1UpstreamAnswers covers the answers an upstream may give the proxy's client: a body
// delimited by closing the connection, a chunked body with a trailer, a 204, and a keep-alive
// connection the upstream closes right after answering (the next request must go on a new
// connection, not fail).
func TestH1UpstreamAnswers(t *testing.T) {
	t.Parallel()
	closeDelimited, _ := rawApp(t, func(c net.Conn, br *bufio.Reader) {
		if readRequestHead(br) == nil {
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nX-Kind: close-delimited\r\n\r\nuntil the end")
		}
	})
	chunked, _ := rawApp(t, func(c net.Conn, br *bufio.Reader) {
		for readRequestHead(br) == nil {
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\nX-Checksum: 42\r\n\r\n")
		}
	})
	noContent, _ := rawApp(t, func(c net.Conn, br *bufio.Reader) {
		for readRequestHead(br) == nil {
			fmt.Fprint(c, "HTTP/1.1 204 No Content\r\nX-Kind: empty\r\n\r\n")
		}
	})
	oneShot, oneShotConns := rawApp(t, func(c net.Conn, br *bufio.Reader) {
		if readRequestHead(br) == nil {
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") // then closes, unannounced
		}
	})
	// No retries for oneshot: the client itself must take a new connection, not the route's
	// retry policy.
	m := newMesh(t, meshYAML("closer", "chunker", "empty", "oneshot")+`---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: oneshot}
spec:
  hosts: [oneshot]
  http: [{route: [{destination: {host: oneshot}}], retries: {attempts: 0}}]
`)
	m.register(
		workload("closer-main", "closer", "main", closeDelimited, snapshot.HTTP),
		workload("chunker-main", "chunker", "main", chunked, snapshot.HTTP),
		workload("empty-main", "empty", "main", noContent, snapshot.HTTP),
		workload("oneshot-main", "oneshot", "main", oneShot, snapshot.HTTP),
	)
	c := httpClient(t, outbound(t, m.newProxy("sidecar~client")))

	res := do(t, c, "GET", "http://closer/", "", nil)
	if res.StatusCode != 200 || res.body != "until the end" || res.Header.Get("X-Kind") != "close-delimited" {
		t.Errorf("close-delimited answer: %d %q %v", res.StatusCode, res.body, res.Header)
	}
	for i := range 2 {
		req, _ := http.NewRequest("GET", "http://chunker/", nil)
		got, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(got.Body)
		got.Body.Close()
		if string(body) != "abcdef" || got.Trailer.Get("X-Checksum") != "42" {
			t.Errorf("chunked answer %d: body %q, trailer %v; want abcdef and X-Checksum: 42", i, body, got.Trailer)
		}
	}
	for range 2 {
		if res := do(t, c, "GET", "http://empty/", "", nil); res.StatusCode != 204 || res.body != "" || res.Header.Get("X-Kind") != "empty" {
			t.Errorf("204 answer: %d %q %v", res.StatusCode, res.body, res.Header)
		}
	}
	for i := range 3 {
		if res := do(t, c, "POST", "http://oneshot/", "", nil); res.StatusCode != 200 || res.body != "ok" {
			t.Fatalf("request %d to an upstream that closes after each answer: %d %q", i, res.StatusCode, res.body)
		}
		time.Sleep(20 * time.Millisecond) // let the upstream's close reach the pooled connection
	}
	if n := oneShotConns.Load(); n != 3 {
		t.Errorf("upstream saw %d connections for 3 requests, want 3 (one each)", n)
	}
}

// TestH1UpstreamConnectionReuse: a pooled upstream connection carries one caller's answer
// only. Bytes an upstream sends past an answer (a HEAD answered with a body, an answer nobody
// asked for, a 101 to a plain request) must not become another caller's answer; and a POST
// the upstream may have received on a connection it then closed is not sent again.
func TestH1UpstreamConnectionReuse(t *testing.T) {
	t.Parallel()
	const poison = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nPOISONED"
	var posts atomic.Int32
	app, _ := rawApp(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			switch {
			case req.Method == "HEAD": // an answer to HEAD, then a body it must not have
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(poison), poison)
			case req.URL.Path == "/switch":
				fmt.Fprint(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n"+poison)
			case req.URL.Path == "/unasked": // a right answer, then one nobody asked for
				fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal")
				time.Sleep(10 * time.Millisecond)
				fmt.Fprint(c, poison)
			case req.Method == "POST":
				if posts.Add(1) == 2 {
					return // took the request, then closed without answering
				}
				fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal")
			default:
				fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal")
			}
		}
	})
	m := newMesh(t, meshYAML("web")+`---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http: [{route: [{destination: {host: web}}], retries: {attempts: 0}}]
`)
	m.register(workload("web-main", "web", "main", app, snapshot.HTTP))
	out := outbound(t, m.newProxy("sidecar~client"))
	get := func(method, path string) response {
		t.Helper()
		return do(t, httpClient(t, out), method, "http://web"+path, "", nil) // a new caller each time
	}
	for _, first := range []struct{ method, path string }{{"HEAD", "/"}, {"GET", "/switch"}, {"GET", "/unasked"}} {
		res := get(first.method, first.path)
		if first.path == "/switch" && res.StatusCode != http.StatusBadGateway {
			t.Errorf("a 101 to a plain request: %d, want 502", res.StatusCode)
		}
		time.Sleep(20 * time.Millisecond) // let the unasked bytes arrive on the pooled connection
		if res := get("GET", "/private"); res.body != "real" {
			t.Errorf("after %s %s, the next caller got %d %q, want its own answer", first.method, first.path, res.StatusCode, res.body)
		}
	}
	if res := get("POST", "/charge"); res.body != "real" {
		t.Fatalf("first POST: %d %q", res.StatusCode, res.body)
	}
	if res := get("POST", "/charge"); res.StatusCode != http.StatusBadGateway {
		t.Errorf("a POST the upstream took and dropped: %d %q, want 502", res.StatusCode, res.body)
	}
	if n := posts.Load(); n != 2 {
		t.Errorf("the upstream received %d POSTs for 2 sent: a POST was sent again", n)
	}
}

// TestH1UpstreamCutShort: an upstream that dies mid-body must not pass for a whole answer:
// the client's connection is cut, so it sees an error (before or during the body), never a
// short body that looks complete.
func TestH1UpstreamCutShort(t *testing.T) {
	t.Parallel()
	cut, _ := rawApp(t, func(c net.Conn, br *bufio.Reader) {
		if readRequestHead(br) == nil {
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
		}
	})
	m := newMesh(t, meshYAML("cut"))
	m.register(workload("cut-main", "cut", "main", cut, snapshot.HTTP))
	c := httpClient(t, outbound(t, m.newProxy("sidecar~client")))
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://cut/", nil)
	res, err := c.Do(req)
	if err != nil {
		return
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err == nil {
		t.Fatalf("read %d %q with no error from an answer the upstream cut short", res.StatusCode, body)
	}
}

// TestConnectionListedFieldsStayOnTheirHop: the fields a caller's Connection header names are
// its hop's only and do not reach the app, but the lane the proxies write for the next hop
// does, even when the caller listed the lane header (it was the caller's hop's lane header,
// not the proxy's).
func TestConnectionListedFieldsStayOnTheirHop(t *testing.T) {
	t.Parallel()
	c, br := rawConn(t, h1Mesh(t))
	fmt.Fprint(c, "GET /hop HTTP/1.1\r\nHost: web\r\nConnection: X-Swimlane, X-Private, keep-alive\r\nX-Swimlane: dev\r\nX-Private: secret\r\nX-Kept: yes\r\n\r\n")
	rep := readResponse(t, br).reply(t)
	if got := rep.Header.Get("X-Private"); got != "" {
		t.Errorf("the app got X-Private %q, which the caller listed in Connection", got)
	}
	if got := rep.Header.Get("X-Swimlane"); got != "dev" {
		t.Errorf("the app got X-Swimlane %q; want the lane the proxies carry, \"dev\"", got)
	}
	if got := rep.Header.Get("X-Kept"); got != "yes" {
		t.Errorf("the app got X-Kept %q; want \"yes\"", got)
	}
}

// TestH1PooledRequestsKeepToThemselves sends many bodiless requests, and some with bodies,
// over several connections at once, each with its own id in a header and fields that differ
// from request to request: the app answers with the id in a field of its own, in the body,
// and with fields that vary too. The proxy reuses finished bodiless requests, their header
// maps and their answers' (h1server.go, h1client.go); each caller must get the answer to its
// own request, with only the fields that answer had, and the app must see only the fields of
// the request it was sent. Run under -race in CI, it also checks no pooled object is touched
// by two requests at once.
func TestH1PooledRequestsKeepToThemselves(t *testing.T) {
	t.Parallel()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Id")
		var extra []string
		for k := range r.Header {
			if strings.HasPrefix(k, "X-Only-") {
				extra = append(extra, k)
			}
		}
		if len(extra) != 1 || extra[0] != "X-Only-"+id {
			w.WriteHeader(http.StatusTeapot) // a field of another request reached the app
			fmt.Fprintf(w, "request %s came with %v", id, extra)
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Answer-"+id, "1")
		w.Header().Set("X-Id", id)
		fmt.Fprintf(w, "answer to %s %s", id, body)
	})}
	lis := listen(t)
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	m := newMesh(t, meshYAML("web"))
	m.register(workload("web-main", "web", "main", lis.Addr().String(), snapshot.HTTP))
	out := outbound(t, m.newProxy("sidecar~client"))
	const conns, perConn = 8, 150
	errs := make(chan error, conns)
	for c := range conns {
		client := httpClient(t, out) // its own keep-alive connection
		go func() {
			for i := range perConn {
				id := fmt.Sprintf("%d-%d", c, i)
				method, body := "GET", ""
				if i%5 == 4 {
					method, body = "POST", "body of "+id
				}
				req, _ := http.NewRequest(method, "http://web/", strings.NewReader(body))
				if body == "" {
					req.Body = http.NoBody
				}
				req.Header.Set("X-Id", id)
				req.Header.Set("X-Only-"+id, "1")
				res, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				got, _ := io.ReadAll(res.Body)
				res.Body.Close()
				want := strings.TrimSpace("answer to " + id + " " + body)
				if res.StatusCode != 200 || strings.TrimSpace(string(got)) != want || res.Header.Get("X-Id") != id {
					errs <- fmt.Errorf("request %s: %d %q (X-Id %q), want 200 %q", id, res.StatusCode, got, res.Header.Get("X-Id"), want)
					return
				}
				for k := range res.Header {
					if strings.HasPrefix(k, "X-Answer-") && k != "X-Answer-"+id {
						errs <- fmt.Errorf("request %s got another answer's field %s", id, k)
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestH1PooledAnswersKeepTheirValuesToTheEnd checks the values of an upstream's answer stay its
// own until the request is done: the metrics read the answer's Grpc-Status after the body was
// copied, when the answer's body, which holds its header values, could already serve another
// request if it were pooled too early. Each answer carries a Grpc-Status of its own; the
// requests counted under each code must be the ones sent with it.
func TestH1PooledAnswersKeepTheirValuesToTheEnd(t *testing.T) {
	t.Parallel()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Grpc-Status", r.Header.Get("X-Code"))
		fmt.Fprint(w, "ok")
	})}
	lis := listen(t)
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	m := newMesh(t, meshYAML("web"))
	m.register(workload("web-main", "web", "main", lis.Addr().String(), snapshot.HTTP))
	p := m.newProxy("sidecar~client")
	metrics := proxy.NewMetrics()
	p.UseMetrics(metrics)
	out := outbound(t, p)
	const conns, perConn, codes = 8, 150, 5
	errs := make(chan error, conns)
	for range conns {
		client := httpClient(t, out)
		go func() {
			for i := range perConn {
				req, _ := http.NewRequest("GET", "http://web/", http.NoBody)
				req.Header.Set("X-Code", fmt.Sprint(i%codes))
				res, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			errs <- nil
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	families, err := metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "swimlane_requests_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "code" {
					counted[l.GetValue()] += s.GetCounter().GetValue()
				}
			}
		}
	}
	for c := range codes {
		if got, want := counted[fmt.Sprintf("grpc-%d", c)], float64(conns*perConn/codes); got != want {
			t.Errorf("requests counted with grpc-%d: %v, want %v (all counted: %v)", c, got, want, counted)
		}
	}
}

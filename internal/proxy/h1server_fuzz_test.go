package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"swimlane.dev/swimlane/internal/snapshot"
)

// FuzzH1Request checks the own HTTP/1.1 server's request parsing against net/http's on the
// same bytes. A request the fast path accepts, net/http must accept too, and read the same:
// method, target, host, headers and body. Otherwise the proxy and a conformant upstream could
// disagree on where a request ends, which is how requests are smuggled. (The fast path may
// refuse more than net/http does, or hand a request to net/http itself.)
func FuzzH1Request(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /p?q=1 HTTP/1.1\r\nHost: a\r\nX-Swimlane: dev\r\nbaggage: swimlane=dev\r\n\r\n",
		"GET http://web:80/x HTTP/1.1\r\nHost: web\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum, x-b\r\n\r\n2\r\nhi\r\n0\r\nX-Sum: 7\r\nX-Other: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
		"GET / HTTP/1.1\nHost: a\n\n",
		"\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nx-lower: 1\r\nX-LOWER: 2\r\n\r\n",
		"GET /%41 HTTP/1.1\r\nHost: a\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var src io.Reader = bytes.NewReader(raw)
		if len(raw)%2 == 1 {
			src = iotest.OneByteReader(src) // half the inputs read line by line, then scanned
		}
		br := bufio.NewReader(src)
		sc := &h1ServerConn{remoteAddr: "192.0.2.1:1234", base: new(http.Request)}
		head, err := readHead(br, nil, true, &sc.scan)
		if err != nil {
			return
		}
		// A body that waits for 100 Continue writes it to the connection first.
		client, server := net.Pipe()
		defer client.Close()
		defer server.Close()
		go io.Copy(io.Discard, client)
		sc.conn, sc.br, sc.head = server, br, head
		rq, status, _ := sc.parse()
		if status != 0 {
			return // refused, or handed to net/http
		}
		got := &rq.req
		// Empty lines before the request line are skipped, as RFC 9112 section 2.2 allows;
		// http.ReadRequest refuses them.
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(bytes.TrimLeft(raw, "\r\n"))))
		if err != nil {
			t.Fatalf("the fast path accepts what net/http refuses (%v):\n%q", err, raw)
		}
		same := agree(t, "fast path", raw)
		same("method", got.Method, want.Method)
		same("request URI", got.RequestURI, want.RequestURI)
		same("URL", got.URL.String(), want.URL.String())
		same("host", got.Host, want.Host)
		same("content length", got.ContentLength, want.ContentLength)
		same("transfer encoding", got.TransferEncoding, want.TransferEncoding)
		same("close", got.Close, want.Close)
		// net/http keeps the Expect and Host headers it has acted on; the fast path drops them
		// (a proxy must not forward Expect once it has answered it; Host travels as r.Host).
		wantHeader := want.Header.Clone()
		delete(wantHeader, "Expect")
		delete(wantHeader, "Host")
		same("header", got.Header, wantHeader)
		sameBody(same, got.Body, want.Body)
		same("trailer", got.Trailer, want.Trailer)
	})
}

// agree returns a check that fails t, naming raw, when ours and net/http's readings of it
// differ.
func agree(t *testing.T, ours string, raw []byte) func(what string, got, want any) {
	return func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: %s %#v, net/http %#v, for\n%q", what, ours, got, want, raw)
		}
	}
}

// sameBody checks two bodies hold the same bytes and end alike (cleanly, or with an error).
func sameBody(same func(string, any, any), got, want io.Reader) {
	gotBody, gotErr := io.ReadAll(io.LimitReader(got, 1<<20))
	wantBody, wantErr := io.ReadAll(io.LimitReader(want, 1<<20))
	same("body", gotBody, wantBody)
	same("body error", gotErr != nil, wantErr != nil)
}

// FuzzH1Response checks the own HTTP/1.1 client's reading of an upstream's answer against
// http.ReadResponse on the same bytes: an answer it accepts, net/http must accept too, with
// the same status, headers, framing and body, so that the proxy passes on what a net/http
// client would have seen.
func FuzzH1Response(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close",
		"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200\r\nX: a\r\n\r\n",
	} {
		f.Add([]byte(seed), false)
	}
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, raw []byte, head bool) {
		if bytes.HasPrefix(raw, []byte("HTTP/1.1 1")) || bytes.HasPrefix(raw, []byte("HTTP/1.0 1")) {
			return // 1xx answers are skipped here and returned by http.ReadResponse
		}
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		// Both ways the own client reads a head: into a map, and lazily (checked now, parsed
		// into a map when asked, as forwardPlain asks when it cannot pass the lines on).
		for _, lazy := range []bool{false, true} {
			compareResponse(t, raw, method, lazy)
		}
	})
}

// readAnswer is the own client's reading of raw as the answer to a request of method, lazy or
// not (h1Client.lazyHeaders).
func readAnswer(t *testing.T, raw []byte, method string, lazy bool) (*http.Response, error) {
	req, _ := http.NewRequest(method, "http://upstream/", nil)
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close() })
	pc := &h1Conn{Conn: server, br: bufio.NewReader(bytes.NewReader(raw)), bw: bufio.NewWriter(io.Discard)}
	c := newH1Client(nil)
	c.lazyHeaders = lazy
	return c.exchange(req.Context(), pc, req, nil)
}

// compareResponse reads raw as the own client's answer to a request of method, and as
// net/http's, and fails the test where they differ.
func compareResponse(t *testing.T, raw []byte, method string, lazy bool) {
	head := method == http.MethodHead
	got, err := readAnswer(t, raw, method, lazy)
	if err != nil {
		return
	}
	req := got.Request
	got.Header = answerHeader(got)
	want, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), req)
	if err != nil {
		t.Fatalf("the own client (lazy %v) accepts what net/http refuses (%v):\n%q", lazy, err, raw)
	}
	same := agree(t, fmt.Sprintf("own client (lazy %v)", lazy), raw)
	same("status", got.StatusCode, want.StatusCode)
	// Hop-by-hop headers are not passed on (forwardPlain drops them); net/http drops some
	// of them already when reading.
	for _, h := range []http.Header{got.Header, want.Header} {
		for k := range h {
			if isHop(k) {
				delete(h, k)
			}
		}
	}
	same("header", got.Header, want.Header)
	if !head { // an answer to HEAD has no body: its Content-Length header is passed on as is
		same("content length", got.ContentLength, want.ContentLength)
	}
	same("transfer encoding", got.TransferEncoding, want.TransferEncoding)
	same("close", got.Close, want.Close)
	sameBody(same, got.Body, want.Body)
	same("trailer", got.Trailer, want.Trailer)
}

// TestH1SlowClients: a connection that sends nothing, or empty lines and then a head never
// finished, is closed once headReadTimeout has passed, not held open.
func TestH1SlowClients(t *testing.T) {
	saved := headReadTimeout
	headReadTimeout = 100 * time.Millisecond
	t.Cleanup(func() { headReadTimeout = saved })
	addr := serveTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, send := range []string{"", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write([]byte(send))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // only so that a failure ends
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("after %q and silence: read %v, want the server to close the connection (EOF)", send, err)
		}
	}
}

// TestH1BodyReadAfterAnswer: an upstream that answers before the request body is all sent
// leaves the body with the transport, which may go on reading it after the answer; the
// connection's next request must still be read whole and answered.
func TestH1BodyReadAfterAnswer(t *testing.T) {
	upstream := serveRaw(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.Method == "POST" { // refuse at once, then read the body, as servers may
				_, _ = io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
			}
			_, _ = io.Copy(io.Discard, req.Body)
			if req.Method != "POST" {
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
			}
		}
	})
	c, err := net.Dial("tcp", serveForwarding(t, upstream))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 403 {
		t.Fatalf("early answer: %v %v", res, err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_, _ = io.WriteString(c, strings.Repeat("1\r\nx\r\n", 200)+"0\r\n\r\nGET /next HTTP/1.1\r\nHost: web\r\n\r\n")
	res, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the request after the early-answered body was not answered: %v", err)
	}
	if body, _ := io.ReadAll(res.Body); res.StatusCode != 200 || string(body) != "next" {
		t.Errorf("the request after the early-answered body: %d %q", res.StatusCode, body)
	}
}

// TestH1CallerGoneReleasesUpstream: a caller that hangs up while its upstream has not
// answered gets its request cancelled: the proxy closes the upstream connection rather than
// wait on it for ever.
func TestH1CallerGoneReleasesUpstream(t *testing.T) {
	upstream, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer upstream.Close()
	released := make(chan struct{})
	go func() {
		c, err := upstream.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = http.ReadRequest(bufio.NewReader(c)) // and never answer
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			close(released)
		}
	}()
	c, err := net.Dial("tcp", serveForwarding(t, upstream.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: web\r\n\r\n")
	time.Sleep(100 * time.Millisecond) // the request reaches the upstream
	c.Close()
	select {
	case <-released:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream connection is still held after the caller hung up")
	}
}

// serveForwarding serves the own HTTP/1.1 server on 127.0.0.1:0, forwarding every request to
// upstream, until the test ends; it returns the listener's address.
func serveForwarding(t *testing.T, upstream string) string {
	f := newForwarder(slog.New(slog.DiscardHandler))
	return serveTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.forward(w, r, &target{addr: upstream, protocol: snapshot.HTTP})
	}))
}

// serveTest serves handler on the own HTTP/1.1 server on 127.0.0.1:0 until the test ends; it
// returns the listener's address.
func serveTest(t *testing.T, handler http.Handler) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = serveHTTP(ctx, lis, handler)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return lis.Addr().String()
}

// TestH1AnswerLosesItsHopHeaders: an upstream's hop-by-hop fields, the fields its Connection
// header lists and Swimlane's own app-refused mark do not reach the caller, and the rest do,
// both when the answer's header starts empty (it takes the upstream's map, also through the
// metrics' recorder, and then skips the drop when the head had nothing to drop) and when the
// handler set a field first (the fields are copied). Each hop field is also sent alone, so
// that the parse's note of it is what must drop it.
func TestH1AnswerLosesItsHopHeaders(t *testing.T) {
	answers := map[string]string{
		"Connection-listed":         "Connection: X-Private, keep-alive\r\nKeep-Alive: timeout=5\r\nX-Private: secret\r\n" + appRefusedHeader + ": 1\r\n",
		"Keep-Alive alone":          "Keep-Alive: timeout=5\r\n",
		"app-refused alone":         appRefusedHeader + ": 1\r\n",
		"Proxy-Connection alone":    "Proxy-Connection: keep-alive\r\n",
		"Proxy-Authenticate alone":  "Proxy-Authenticate: Basic\r\n",
		"Proxy-Authorization alone": "Proxy-Authorization: Basic eA==\r\n",
		"Te alone":                  "Te: trailers\r\n",
		"Upgrade alone":             "Upgrade: h2c\r\n",
		"Trailer alone":             "Trailer: X-Sum\r\n",
	}
	dropped := []string{"X-Private", "Keep-Alive", appRefusedHeader, "Proxy-Connection", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Upgrade", "Trailer", "Connection"}
	for answerName, fields := range answers {
		upstream := rawUpstream(t, "HTTP/1.1 200 OK\r\n"+fields+"X-Kept: yes\r\nContent-Length: 2\r\n\r\nok")
		f := newForwarder(slog.New(slog.DiscardHandler))
		preset := serveTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Set-Before", "1")
			f.forward(w, r, &target{addr: upstream, protocol: snapshot.HTTP})
		}))
		recorded := serveTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.forward(&statusRecorder{ResponseWriter: w}, r, &target{addr: upstream, protocol: snapshot.HTTP})
		}))
		for writer, addr := range map[string]string{"empty header": serveForwarding(t, upstream), "preset header": preset, "recorded": recorded} {
			name := answerName + ", " + writer
			res, err := http.Get("http://" + addr + "/")
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(body) != "ok" || res.ContentLength != 2 || res.Header.Get("X-Kept") != "yes" {
				t.Errorf("%s: body %q, length %d, X-Kept %q; want \"ok\", 2, \"yes\"", name, body, res.ContentLength, res.Header.Get("X-Kept"))
			}
			for _, k := range dropped {
				if v := res.Header.Get(k); v != "" {
					t.Errorf("%s: the caller got %s: %q", name, k, v)
				}
			}
			if writer == "preset header" && res.Header.Get("X-Set-Before") != "1" {
				t.Errorf("%s: the handler's X-Set-Before was lost", name)
			}
		}
	}
}

// TestHeadFieldsNoteEveryDroppedField: every field passedOn drops by name has a parse
// note that makes mustDrop true, so an answer without one may skip the drop.
func TestHeadFieldsNoteEveryDroppedField(t *testing.T) {
	for _, k := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade", appRefusedHeader} {
		if passedOn(http.Header{}, k, false) {
			t.Errorf("passedOn(%q) = true; the test's list is out of date", k)
		}
		if !headField(k).mustDrop() {
			t.Errorf("headField(%q) does not make mustDrop true", k)
		}
	}
	for _, k := range []string{"Content-Length", "Host", "Expect", "X-Kept", "Content-Type"} {
		if headField(k).mustDrop() {
			t.Errorf("headField(%q) makes mustDrop true; nothing drops it", k)
		}
	}
}

// TestH1ShutdownDrains: at shutdown an idle keep-alive connection is closed at once, and a
// request in flight gets its answer (marked Connection: close) before its connection closes.
func TestH1ShutdownDrains(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inFlight, release := make(chan struct{}), make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(inFlight)
			<-release
		}
		_, _ = io.WriteString(w, "done")
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serveHTTP(ctx, lis, handler) }()
	defer func() { cancel(); close(release) }()

	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return c, bufio.NewReader(c)
	}
	idle, idleR := dial()
	_, _ = io.WriteString(idle, "GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
	if res, err := http.ReadResponse(idleR, nil); err != nil || res.StatusCode != 200 {
		t.Fatalf("first request: %v %v", res, err)
	} else {
		_, _ = io.Copy(io.Discard, res.Body)
	}
	busy, busyR := dial()
	_, _ = io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	<-inFlight

	cancel()
	if _, err := idleR.ReadByte(); err != io.EOF {
		t.Fatalf("the idle connection after shutdown began: read %v; want it closed (EOF)", err)
	}
	release <- struct{}{}
	res, err := http.ReadResponse(busyR, nil)
	if err != nil {
		t.Fatalf("the request in flight lost its answer: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	if string(body) != "done" || !res.Close {
		t.Errorf("the request in flight: body %q, Connection: close %v; want \"done\", true", body, res.Close)
	}
	if _, err := busyR.ReadByte(); err != io.EOF {
		t.Errorf("the drained connection after its answer: read %v; want it closed (EOF)", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serveHTTP: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serveHTTP did not return after its connections were drained")
	}
}

// TestIsHop: the RFC 9110 hop-by-hop fields (and httputil's) are hop-by-hop, others are not.
func TestIsHop(t *testing.T) {
	for _, k := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		if !isHop(k) {
			t.Errorf("isHop(%q) = false; it is a hop-by-hop field", k)
		}
	}
	for _, k := range []string{"Host", "Content-Length", "X-Swimlane", "Connections", "connection", ""} {
		if isHop(k) {
			t.Errorf("isHop(%q) = true; it is not a hop-by-hop field", k)
		}
	}
}

// TestH1AnswerTrailersPassOn: a chunked answer's trailer fields reach the caller, with a body
// and with an empty one.
func TestH1AnswerTrailersPassOn(t *testing.T) {
	for name, answer := range map[string]string{
		"with a body": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 7\r\n\r\n",
		"empty body":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n0\r\nX-Sum: 7\r\n\r\n",
	} {
		res, err := http.Get("http://" + serveForwarding(t, rawUpstream(t, answer)) + "/")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if got := res.Trailer.Get("X-Sum"); got != "7" {
			t.Errorf("%s: the caller got trailer X-Sum %q (body %q, trailers %v); want \"7\"", name, got, body, res.Trailer)
		}
	}
}

// rawUpstream serves answer, byte for byte, to every request on 127.0.0.1:0 until the test
// ends; it returns the listener's address.
func rawUpstream(t *testing.T, answer string) string {
	return serveRaw(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			_, _ = io.WriteString(c, answer)
		}
	})
}

// serveRaw runs serve on each connection to a listener on 127.0.0.1:0 until the test ends,
// with a reader of the connection; it returns the listener's address.
func serveRaw(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) string {
	return ServeConns(t, func(c net.Conn) { serve(c, bufio.NewReader(c)) })
}

// TestH1RequestTrailersPassOn: a chunked request's declared trailer fields reach the upstream,
// after its body.
func TestH1RequestTrailersPassOn(t *testing.T) {
	upstream := serveRaw(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		got := fmt.Sprintf("%s %s", body, req.Trailer.Get("X-Sum"))
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(got), got)
	})
	c, err := net.Dial("tcp", serveForwarding(t, upstream))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n2\r\nhi\r\n0\r\nX-Sum: 7\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := io.ReadAll(res.Body); string(body) != "hi 7" {
		t.Errorf("the upstream read body and trailer X-Sum %q; want \"hi 7\"", body)
	}
}

// TestH1RepeatedFieldsKeepEveryValue: a field on several lines keeps each value, in order,
// among the first names of a head (checked against the parse's list of names) and past them
// (checked against the map), and the Host, kept out of the map, is still the request's.
func TestH1RepeatedFieldsKeepEveryValue(t *testing.T) {
	addr := serveTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		fmt.Fprintf(&b, "host=%s n=%d", r.Host, len(r.Header))
		for _, k := range []string{"X-A", "X-L", "Host"} {
			fmt.Fprintf(&b, " %s=%q", k, r.Header[k])
		}
		io.WriteString(w, b.String())
	}))
	var head strings.Builder
	head.WriteString("GET / HTTP/1.1\r\nX-A: 1\r\nHost: web\r\n")
	for i := range 12 {
		fmt.Fprintf(&head, "X-%c: v\r\n", 'B'+i) // X-B .. X-M: past the list's room
	}
	head.WriteString("X-A: 2\r\nX-L: w\r\nx-a: 3\r\n\r\n")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, head.String())
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	want := `host=web n=13 X-A=["1" "2" "3"] X-L=["v" "w"] Host=[]`
	if string(body) != want {
		t.Errorf("the handler saw %s; want %s", body, want)
	}
}

// TestReadHeadWholeAndLineByLineAgree: a head read in one piece (all of it buffered) is the
// head read line by line (bytes arriving one at a time), with the same rest left unread and
// the same scan, for CRLF and bare LF line ends, a body or a next request behind, a bare CR,
// and empty lines before it.
func TestReadHeadWholeAndLineByLineAgree(t *testing.T) {
	for _, in := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody",
		"GET / HTTP/1.1\nHost: a\n\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\r\nrest",
		"GET / HTTP/1.1\r\nHost: a\n\nrest\r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	} {
		var wantScan, gotScan headScan
		byByte := bufio.NewReader(iotest.OneByteReader(strings.NewReader(in)))
		wantHead, wantErr := readHead(byByte, nil, true, &wantScan)
		wantRest, _ := io.ReadAll(byByte)
		whole := bufio.NewReader(strings.NewReader(in))
		_, _ = whole.Peek(len(in)) // all buffered: the one-piece path
		gotHead, gotErr := readHead(whole, nil, true, &gotScan)
		gotRest, _ := io.ReadAll(whole)
		if string(gotHead) != string(wantHead) || (gotErr == nil) != (wantErr == nil) || string(gotRest) != string(wantRest) {
			t.Errorf("%q: whole read %q (%v), rest %q; line by line %q (%v), rest %q", in, gotHead, gotErr, gotRest, wantHead, wantErr, wantRest)
		}
		if gotScan != wantScan || gotScan.end != len(gotHead) || gotScan.valid != validHead(string(gotHead)) {
			t.Errorf("%q: whole scan %+v, line by line %+v; want the end %d and valid %v", in, gotScan, wantScan, len(gotHead), validHead(string(gotHead)))
		}
	}
}

// headEnd is what scanHead's end must be, the plain way: the length of the head at the start
// of b up to and with the empty line that ends it ("\n\r\n" or "\n\n"), -1 for none.
func headEnd(b []byte) int {
	for i := 0; ; {
		lf := bytes.IndexByte(b[i:], '\n')
		if lf < 0 {
			return -1
		}
		i += lf + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
}

// validHead is what scanHead's valid must be, a byte at a time: no control byte but tab, LF
// and a CR followed by LF, and no DEL.
func validHead(head string) bool {
	for i := 0; i < len(head); i++ {
		switch c := head[i]; {
		case c == '\r':
			if i+1 == len(head) || head[i+1] != '\n' {
				return false
			}
		case c < ' ' && c != '\t' && c != '\n' || c == 0x7f:
			return false
		}
	}
	return true
}

// FuzzScanHead: scanHead finds the end, validity and LFs the plain ways find, for heads of any
// bytes, at every alignment of its words.
func FuzzScanHead(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: web\r\n\r\n", "1234567\r\n\r\n", "1234567\r\r\n\n", "12345678\r\n\n",
		"abc\tdef\x80\xff\r\n\r\n", "abc\x7fdefgh\n\n", "abcdefg\x00\n\n", "a\rb\r\ncd\r\n\r\n", "12345678\n\r\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "abcdefgh\x01ijklmno\n\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for start := 0; start < len(in) && start < 9; start++ {
			checkScan(t, []byte(in[start:]))
		}
	})
}

// checkScan fails t when scanHead's findings on b differ from the plain ways'.
func checkScan(t *testing.T, b []byte) (ended, valid bool) {
	t.Helper()
	if len(b) == 0 || b[0] == '\r' || b[0] == '\n' {
		return false, false // a scan starts at a head's first line
	}
	var s headScan
	scanHead(b, &s)
	if want := headEnd(b); s.end != want {
		t.Fatalf("scanHead(%q) end %d; headEnd %d", b, s.end, want)
	}
	if s.end < 0 {
		return false, false
	}
	if want := validHead(string(b[:s.end])); s.valid != want {
		t.Fatalf("scanHead(%q) valid %v; validHead of the head %v", b, s.valid, want)
	}
	var lfs []uint32
	for i, c := range b[:s.end] {
		if c == '\n' && len(lfs) < maxScanLines {
			lfs = append(lfs, uint32(i))
		}
	}
	if !slices.Equal(s.lfs[:s.n], lfs) {
		t.Fatalf("scanHead(%q) LFs %v; want %v", b, s.lfs[:s.n], lfs)
	}
	return true, s.valid
}

// checkName reports whether k is a token and, if so, whether it is canonical, by nameLen.
func checkName(k string) (token, canonical bool) {
	n, canonical := nameLen(k)
	if k == "" || n < len(k) {
		return false, false
	}
	return true, canonical
}

// TestCheckNameAsTextproto: a name nameLen reads whole is a token as isToken says, and its
// canonical is whether net/textproto's canonical form of the name is the name, over names of
// random bytes that matter (letters of both cases, '-', digits, other token and non-token
// bytes).
func TestCheckNameAsTextproto(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		k := randomString(rng, "aZq-Q9_.~ :\x00\x80\"(", 12)
		token, canonical := checkName(k)
		if token != isToken(k) {
			t.Fatalf("checkName(%q) token = %v; isToken says %v", k, token, isToken(k))
		}
		if token && canonical != (textproto.CanonicalMIMEHeaderKey(k) == k) {
			t.Fatalf("checkName(%q) canonical = %v; textproto's form is %q", k, canonical, textproto.CanonicalMIMEHeaderKey(k))
		}
	}
	for k, want := range map[string]bool{"Content-Type": true, "content-type": false, "Content-type": false, "X-Swimlane": true, "X-SWIMLANE": false, "Te": true, "TE": false, "X--A": true, "1a": true, "1A": false} {
		if _, canonical := checkName(k); canonical != want {
			t.Errorf("checkName(%q) canonical = %v; want %v", k, canonical, want)
		}
	}
}

// TestValueChecksAsTheLibrary: trimValue trims as textproto.TrimString, and headerValue
// replaces line ends as the byte-by-byte rule would, over random values of the bytes that
// matter at every position of a word.
func TestValueChecksAsTheLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		v := randomString(rng, "aaaa \t\r\n:", 20)
		if got, want := trimValue(v), textproto.TrimString(v); got != want {
			t.Fatalf("trimValue(%q) = %q; textproto.TrimString: %q", v, got, want)
		}
		want := v
		if strings.ContainsAny(v, "\r\n") {
			want = headerNewlines.Replace(v)
		}
		if got := headerValue(v); got != want {
			t.Fatalf("headerValue(%q) = %q; want %q", v, got, want)
		}
	}
}

// randomString is up to max-1 bytes drawn from alphabet.
func randomString(rng *rand.Rand, alphabet string, max int) string {
	b := make([]byte, rng.IntN(max))
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

// TestH1AnswerPassesOnAsItCame: an answer with nothing to drop or change goes to the caller
// with its header lines as the upstream wrote them (names' case and spacing kept), a Date
// added only when it had none, and one Content-Length; one with a line ended by LF alone,
// or a Content-Length repeated, is written anew with CRLF line ends. Through the metrics'
// recorder, as a metered sidecar serves it.
func TestH1AnswerPassesOnAsItCame(t *testing.T) {
	for name, tc := range map[string]struct{ answer, want, notWant string }{
		"as it came": {"HTTP/1.1 200 OK\r\ncontent-type: text/x\r\nX-Spaced:   two  \r\nContent-Length: 2\r\n\r\nok",
			"\r\ncontent-type: text/x\r\nX-Spaced:   two  \r\nContent-Length: 2\r\n", ""},
		"own date": {"HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nok",
			"\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 2\r\n", ""},
		"bare LF": {"HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 2\n\nok", "\r\nX-A: 1\r\n", "\n\n"},
		"length repeated": {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
			"\r\nContent-Length: 2\r\n", "Content-Length: 2\r\nContent-Length"},
	} {
		upstream := rawUpstream(t, tc.answer)
		f := newForwarder(slog.New(slog.DiscardHandler))
		addr := serveTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.forward(&statusRecorder{ResponseWriter: w}, r, &target{addr: upstream, protocol: snapshot.HTTP})
		}))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: web\r\n\r\n")
		br := bufio.NewReader(c)
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: reading the answer: %v", name, err)
			}
			head.WriteString(line)
			if line == "\r\n" || line == "\n" {
				break
			}
		}
		body := make([]byte, 2)
		_, err = io.ReadFull(br, body)
		c.Close()
		got := head.String()
		switch {
		case err != nil || string(body) != "ok":
			t.Errorf("%s: body %q (%v); want \"ok\"", name, body, err)
		case !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.Contains(got, tc.want):
			t.Errorf("%s: head %q; want it to hold %q", name, got, tc.want)
		case tc.notWant != "" && strings.Contains(got, tc.notWant):
			t.Errorf("%s: head %q holds %q", name, got, tc.notWant)
		case strings.Count(got, "Date: ") != 1 || strings.Count(strings.ToLower(got), "content-length: ") != 1:
			t.Errorf("%s: head %q; want one Date and one Content-Length", name, got)
		case strings.Count(got, "\n") != strings.Count(got, "\r\n"):
			t.Errorf("%s: head %q has a line not ended by CRLF", name, got)
		}
	}
}

// TestH1UnparsedAnswerIsParsedWhenItCannotPassAsItCame: the own client leaves a plain
// answer's header unparsed (lazy), for its lines to go on as they came; where they cannot, the
// header is parsed and goes through the map, every field kept: a field already set on the
// answer, a route's response edits, writers the proxy does not know, and a try's timeout
// around the body.
func TestH1UnparsedAnswerIsParsedWhenItCannotPassAsItCame(t *testing.T) {
	const answer = "HTTP/1.1 200 OK\r\ncontent-type: text/x\r\nX-Two: a\r\nX-Two: b\r\nContent-Length: 2\r\n\r\nok"
	type unknownWriter struct{ http.ResponseWriter }
	for name, tc := range map[string]struct {
		serve func(f *forwarder, w http.ResponseWriter, r *http.Request, t *target)
		want  []string // besides the upstream's fields
	}{
		"field set before": {func(f *forwarder, w http.ResponseWriter, r *http.Request, t *target) {
			w.Header().Set("X-Before", "1")
			f.forward(w, r, t)
		}, []string{"X-Before: 1"}},
		"route edits": {func(f *forwarder, w http.ResponseWriter, r *http.Request, t *target) {
			f.forward(&headerEditor{ResponseWriter: w, ops: &snapshot.HeaderOps{Set: map[string]string{"X-Edit": "1"}}}, r, t)
		}, []string{"X-Edit: 1"}},
		"unknown writer": {func(f *forwarder, w http.ResponseWriter, r *http.Request, t *target) {
			f.forward(unknownWriter{w}, r, t)
		}, nil},
		"per-try timeout": {func(f *forwarder, w http.ResponseWriter, r *http.Request, t *target) {
			t.retry = &snapshot.RetryPolicy{Attempts: 1, PerTry: snapshot.Duration{Duration: time.Minute}}
			f.forward(w, r, t)
		}, nil},
		"asking writer": {func(f *forwarder, w http.ResponseWriter, r *http.Request, t *target) {
			f.forward(&askingWriter{ResponseWriter: w}, r, t)
		}, []string{"X-Asked: 1"}},
	} {
		upstream := rawUpstream(t, answer)
		f := newForwarder(slog.New(slog.DiscardHandler))
		addr := serveTest(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tc.serve(f, &statusRecorder{ResponseWriter: w}, r, &target{addr: upstream, protocol: snapshot.HTTP})
		}))
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var got []string
		for k, vs := range resp.Header {
			for _, v := range vs {
				got = append(got, k+": "+v)
			}
		}
		for _, w := range append([]string{"Content-Type: text/x", "X-Two: a", "X-Two: b", "Content-Length: 2"}, tc.want...) {
			if !slices.Contains(got, w) {
				t.Errorf("%s: answer header %q lacks %q", name, got, w)
			}
		}
		if string(body) != "ok" {
			t.Errorf("%s: body %q, want \"ok\"", name, body)
		}
	}
}

// TestH1ResponseParsesAnUnparsedAnswerWhenAsked: the proxy's own writer, holding an answer's
// unparsed header to pass its lines on, parses it when asked for its header, into what the
// eager parse makes, and counts its fields, so that a field added after stops the lines.
func TestH1ResponseParsesAnUnparsedAnswerWhenAsked(t *testing.T) {
	raw := "HTTP/1.1 200 OK\r\ncontent-type: text/x\r\nX-Two: a\r\nX-Two: b\r\nContent-Length: 2\r\n\r\nok"
	var answers [2]*http.Response
	for i, lazy := range []bool{false, true} {
		resp, err := readAnswer(t, []byte(raw), http.MethodGet, lazy)
		if err != nil {
			t.Fatal(err)
		}
		answers[i] = resp
	}
	eager, lazy := answers[0], answers[1]
	if lazy.Header != nil {
		t.Fatalf("lazy answer parsed at once: %v", lazy.Header)
	}
	b := lazy.Body.(*h1Body)
	w := &h1Response{asCame: b.lines, answerBody: b}
	h := w.Header()
	if !reflect.DeepEqual(h, eager.Header) {
		t.Errorf("parsed when asked: %v; the eager parse: %v", h, eager.Header)
	}
	if w.asCameFields != len(h) || len(h) != 3 {
		t.Errorf("asCameFields %d for %d fields, want 3", w.asCameFields, len(h))
	}
}

// askingWriter adds a field to the answer's header when its status is written: after
// forwardPlain took the upstream's header as the answer's, before the head goes.
type askingWriter struct{ http.ResponseWriter }

func (w *askingWriter) WriteHeader(code int) {
	w.ResponseWriter.Header().Set("X-Asked", "1")
	w.ResponseWriter.WriteHeader(code)
}

func (w *askingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestScanHeadAsItsParts: one scan finds the end, the validity and the LFs the plain ways
// find (checkScan), over random heads of text, line ends and refused bytes at every position
// of a word, and over heads with more lines than a scan records.
func TestScanHeadAsItsParts(t *testing.T) {
	pieces := []string{"a", "a", "a", "a", "a", "a", ": ", "\r\n", "\r\n", "\r\n", "\n", "\t", "\x80",
		"\r", "\x00", "\x7f", "\r\n\r\n", "\n\n"}
	rng := rand.New(rand.NewPCG(7, 8))
	ended, valid := 0, 0
	for n := range 200000 {
		var b []byte
		for range rng.IntN(40) {
			p := pieces[rng.IntN(len(pieces))]
			if len(p) == 1 && p[0] < 0x20 && p[0] != '\t' && p[0] != '\n' && rng.IntN(4) > 0 {
				p = "a"
			}
			b = append(b, p...)
		}
		if n%100 == 0 { // many lines: past what a scan records
			b = append(b, strings.Repeat("x: y\r\n", maxScanLines+rng.IntN(4))...)
			b = append(b, "\r\n"...)
		}
		e, v := checkScan(t, b)
		if e {
			ended++
		}
		if v {
			valid++
		}
	}
	if ended < 10000 || valid < 5000 {
		t.Fatalf("%d heads ended, %d of them valid: the test checks too few", ended, valid)
	}
}

// TestWordMasksAreExact: anyByteBelow tells exactly whether a word has a byte below n, and
// zeroBytes marks exactly its zero bytes, for words of bytes around the bounds.
func TestWordMasksAreExact(t *testing.T) {
	const around = "\x00\x01\x09\x0a\x0d\x1f\x20\x21\x7e\x7f\x80\x81\xfe\xffa"
	rng := rand.New(rand.NewPCG(9, 10))
	for range 200000 {
		var b [8]byte
		for i := range b {
			b[i] = around[rng.IntN(len(around))]
		}
		w := binary.LittleEndian.Uint64(b[:])
		var zeros uint64
		below1, below20 := false, false
		for i, c := range b {
			if c == 0 {
				zeros |= 0x80 << (8 * i)
			}
			below1, below20 = below1 || c < 1, below20 || c < 0x20
		}
		if anyByteBelow(w, 1) != below1 || anyByteBelow(w, 0x20) != below20 || anyZeroByte(w) != below1 || zeroBytes(w) != zeros {
			t.Fatalf("%q: anyByteBelow 1 %v, 0x20 %v, zeroBytes %#x; want %v, %v, %#x", b, anyByteBelow(w, 1), anyByteBelow(w, 0x20), zeroBytes(w), below1, below20, zeros)
		}
	}
}

// TestParseLengthAsStrconv: parseLength takes and reads every Content-Length value as
// strconv.ParseUint(v, 10, 63), net/http's reading, does: random strings of digits and the
// bytes a bad value may hold, of up to 20 bytes, and the values around 18 digits and 2^63.
func TestParseLengthAsStrconv(t *testing.T) {
	check := func(v string) {
		t.Helper()
		n, ok := parseLength(v)
		want, err := strconv.ParseUint(v, 10, 63)
		if ok != (err == nil) || ok && n != int64(want) {
			t.Fatalf("parseLength(%q) = %d, %v; strconv reads %d, %v", v, n, ok, want, err)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		check(randomString(rng, "0123456789 +-_x/:\x00", 21))
		check(randomString(rng, "0123456789", 21))
	}
	for _, v := range []string{"", "0", "1024", "999999999999999999", "1000000000000000000",
		"9223372036854775807", "9223372036854775808", "18446744073709551616", "000000000000000000001",
		"-1", "+1", "1_000", " 1", "1 ", "0x10"} {
		check(v)
	}
}

// TestCommonNamesAsNameLen: what commonName finds is what nameLen and headField would have
// given (the name canonical, the colon right after, the same bit), over lines made of common
// names with cases flipped, bytes changed or added, and random tails; and every common name
// is found.
func TestCommonNamesAsNameLen(t *testing.T) {
	var all []string
	for _, list := range commonNames {
		for _, cn := range list {
			all = append(all, cn.name)
			if n, bit := commonName(cn.name + ": v"); n != len(cn.name) || bit != headField(cn.name) {
				t.Errorf("commonName(%q) = %d, %v; want %d, %v", cn.name+": v", n, bit, len(cn.name), headField(cn.name))
			}
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 200000 {
		b := []byte(all[rng.IntN(len(all))])
		switch rng.IntN(4) {
		case 0: // a case flipped
			i := rng.IntN(len(b))
			b[i] ^= 0x20
		case 1: // a byte changed
			b[rng.IntN(len(b))] = "aZ-:_ \x00"[rng.IntN(7)]
		case 2: // bytes added
			b = append(b, randomString(rng, "aZ-:", 3)...)
		}
		line := string(b) + randomString(rng, ": \tv", 4)
		if line == "" {
			continue
		}
		n, bit := commonName(line)
		if n == 0 {
			continue
		}
		if ln, canonical := nameLen(line); ln != n || !canonical || line[n] != ':' || bit != headField(line[:n]) {
			t.Fatalf("commonName(%q) = %d, %v; nameLen says %d, canonical %v; headField %v", line, n, bit, ln, canonical, headField(line[:n]))
		}
	}
}

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// h1Client is the proxy's own HTTP/1.1 client for plain requests (no upgrade, no body or a
// small one of known length). It is hand-written because it is the hot path: net/http's
// Transport hands each request to two goroutines per connection (writeLoop, readLoop) and
// back over channels, and at a sidecar's usual rates those hand-offs cost more CPU than the
// bytes. Here the request's own goroutine writes the request and reads the answer on a pooled
// keep-alive connection. Everything else (upgrades, streamed or large bodies) goes through
// net/http (see forwarder).
type h1Client struct {
	dialer      *net.Dialer
	maxIdle     int           // idle connections kept per address
	idleTimeout time.Duration // an idle connection older than this is closed, not reused
	// lazyHeaders leaves the header of an answer that can pass on as it came unparsed
	// (readResponseHead): for a caller that reads answers' headers through h1Body.header,
	// as forwardPlain does.
	lazyHeaders bool

	mu sync.Mutex
	// idle holds the idle connections per address, most recently used last. Lists are
	// changed in place, so a request's get and put only look the address up; reap deletes
	// the empty ones.
	idle map[string]*idleConns
	// reaper closes the connections idle past idleTimeout, those of endpoints that went away
	// included; armed while any connection is idle (a timer, not a goroutine).
	reaper *time.Timer
}

func newH1Client(dialer *net.Dialer) *h1Client {
	return &h1Client{dialer: dialer, maxIdle: 256, idleTimeout: 90 * time.Second, idle: map[string]*idleConns{}}
}

// idleConns are an address's idle connections.
type idleConns struct{ conns []*h1Conn }

// h1Conn is one upstream connection with its buffers.
type h1Conn struct {
	net.Conn
	sock io.ReadWriter // what reads and writes Conn (socketIO)
	addr string
	br   *bufio.Reader
	bw   *bufio.Writer
	// idleFrom is when the connection went idle, as far as the idle timeout is concerned: when
	// the request it last carried was taken (takenAt), not when its answer ended. That is
	// earlier, so a connection is retired no later than the upstream's own idle timer would
	// close it, and it saves put a clock read on every request.
	idleFrom, takenAt time.Time
	reused            bool
	head              []byte   // the raw head of the answer being read
	scan              headScan // its scan (readHead)
}

var (
	h1Readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	h1Writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}
)

// plainH1 reports whether the h1Client can carry r: no upgrade, and no body or one of known
// length small enough to buffer (so it can be replayed on a fresh connection).
func plainH1(r *http.Request) bool {
	if r.Method == http.MethodConnect || r.Header["Upgrade"] != nil {
		return false
	}
	return r.Body == nil || r.Body == http.NoBody || r.ContentLength >= 0 && r.ContentLength <= maxReplay
}

func (c *h1Client) get(ctx context.Context, addr string) (*h1Conn, error) {
	now := time.Now()
	c.mu.Lock()
	idle := c.idle[addr]
	for idle != nil && len(idle.conns) > 0 {
		last := len(idle.conns) - 1
		pc := idle.conns[last]
		idle.conns[last] = nil
		idle.conns = idle.conns[:last] // kept when empty, for put to refill; reap deletes it
		c.mu.Unlock()
		// An idle connection with something to read (an answer nobody asked for, bytes past
		// the last answer, a close) would hand them to this request as its answer.
		if now.Sub(pc.idleFrom) < c.idleTimeout && idleQuietIO(pc.sock, pc.Conn) {
			pc.reused, pc.takenAt = true, now
			return pc, nil
		}
		pc.close()
		c.mu.Lock()
	}
	c.mu.Unlock()
	pc, err := c.dial(ctx, addr)
	if err == nil {
		pc.takenAt = now
	}
	return pc, err
}

func (c *h1Client) dial(ctx context.Context, addr string) (*h1Conn, error) {
	conn, err := c.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	sock := socketIO(conn)
	br := h1Readers.Get().(*bufio.Reader)
	br.Reset(sock)
	bw := h1Writers.Get().(*bufio.Writer)
	bw.Reset(sock)
	return &h1Conn{Conn: conn, sock: sock, addr: addr, br: br, bw: bw}, nil
}

// put returns a connection whose last answer was read to its end. One that holds bytes past
// that answer is closed instead: they would become the next request's answer.
func (c *h1Client) put(pc *h1Conn) {
	if pc.br.Buffered() > 0 {
		pc.close()
		return
	}
	pc.idleFrom = pc.takenAt
	c.mu.Lock()
	idle := c.idle[pc.addr]
	if idle == nil {
		idle = new(idleConns)
		c.idle[pc.addr] = idle
	}
	if len(idle.conns) < c.maxIdle {
		idle.conns = append(idle.conns, pc)
		if c.reaper == nil {
			c.reaper = time.AfterFunc(c.idleTimeout, c.reap)
		}
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	pc.close()
}

// reap closes the connections idle for idleTimeout or more, and arms itself again while any
// connection is idle.
func (c *h1Client) reap() {
	now := time.Now()
	var expired []*h1Conn
	c.mu.Lock()
	for addr, idle := range c.idle {
		kept := idle.conns[:0]
		for _, pc := range idle.conns {
			if now.Sub(pc.idleFrom) >= c.idleTimeout {
				expired = append(expired, pc)
			} else {
				kept = append(kept, pc)
			}
		}
		clear(idle.conns[len(kept):])
		idle.conns = kept
		if len(kept) == 0 {
			delete(c.idle, addr)
		}
	}
	c.reaper = nil
	if len(c.idle) > 0 {
		c.reaper = time.AfterFunc(c.idleTimeout/2, c.reap)
	}
	c.mu.Unlock()
	for _, pc := range expired {
		pc.close()
	}
}

func (pc *h1Conn) close() {
	_ = pc.Conn.Close()
	pc.br.Reset(nil)
	h1Readers.Put(pc.br)
	pc.bw.Reset(nil)
	h1Writers.Put(pc.bw)
}

// aLongTimeAgo is a deadline in the past: setting it wakes a blocked read or write.
var aLongTimeAgo = time.Unix(1, 0)

// RoundTrip sends req (whose URL.Host is the address to connect to) and reads the answer's
// head; the body streams from the connection, which goes back to the pool when the body is
// read to its end. A request that failed on a reused connection before any answer arrived
// (the upstream had closed it meanwhile) is sent again on a new one when it is safe to repeat
// (replayable), as net/http does: the upstream may have seen it.
func (c *h1Client) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		buf := bytes.NewBuffer(make([]byte, 0, max(req.ContentLength, 0)))
		if _, err := buf.ReadFrom(io.LimitReader(req.Body, maxReplay+1)); err != nil {
			return nil, fmt.Errorf("reading the request body: %w", err)
		}
		if int64(buf.Len()) != req.ContentLength {
			return nil, fmt.Errorf("request body is %d bytes, Content-Length says %d", buf.Len(), req.ContentLength)
		}
		body = buf.Bytes()
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pc, err := c.get(ctx, req.URL.Host)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err() // not the endpoint's fault: no ejection
			}
			return nil, err
		}
		resp, err := c.exchange(ctx, pc, req, body)
		if err == nil {
			return resp, nil
		}
		pc.close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !pc.reused || !errors.Is(err, errNothingRead) || !replayable(req) {
			return nil, err
		}
	}
}

// replayable reports whether req may be sent again after the upstream may have received it:
// an idempotent method, or an idempotency key (net/http's rule).
func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header["Idempotency-Key"] != nil || req.Header["X-Idempotency-Key"] != nil
}

// heldWriteError is the failure of a request write that the answer's read sent (see
// rawSocket.holdNextWrite), which that read reports: like a failed flush, nothing was read.
type heldWriteError struct{ err error }

func (e *heldWriteError) Error() string { return e.err.Error() }
func (e *heldWriteError) Unwrap() error { return e.err }

// errNothingRead marks a connection that failed before any byte of the answer arrived.
var errNothingRead = errors.New("connection closed before the answer began")

// exchange writes req on pc and reads the answer's head.
func (c *h1Client) exchange(ctx context.Context, pc *h1Conn, req *http.Request, body []byte) (*http.Response, error) {
	b := h1Bodies.Get().(*h1Body)
	*b = h1Body{client: c, pc: pc}
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		_ = pc.SetDeadline(deadline)
		b.clearDeadline = true
	}
	if h := hookFor(ctx); h != nil && h.hold(pc.Conn) {
		b.hook = h
	} else if ctx.Done() != nil {
		b.stop = context.AfterFunc(ctx, func() { _ = pc.SetDeadline(aLongTimeAgo) })
	}
	fail := func(err error) (*http.Response, error) {
		if !b.release() || ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if hasDeadline && errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, context.DeadlineExceeded // the deadline can fire a moment before ctx's timer
		}
		return nil, err
	}
	writeRequestHead(pc.bw, req, len(body))
	pc.bw.Write(body)
	if h, ok := pc.sock.(interface{ holdNextWrite() }); ok && pc.bw.Buffered() > 0 && pc.br.Buffered() == 0 {
		h.holdNextWrite() // the answer's read sends the request (see rawSocket)
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(fmt.Errorf("%w: %v", errNothingRead, err))
	}
	resp, fields, lines, err := readResponseHead(pc, req, &b.answer, b.values[:0], c.lazyHeaders)
	if err != nil {
		return fail(err)
	}
	b.resp, b.fields, b.lines = resp, fields, lines
	switch {
	case !bodyAllowed(req.Method, resp.StatusCode):
		resp.ContentLength = 0
		b.n = 0
	case resp.TransferEncoding != nil:
		b.chunked = httputil.NewChunkedReader(pc.br)
		b.n = -1
	case resp.ContentLength >= 0:
		b.n = resp.ContentLength
	default: // delimited by the upstream closing the connection
		b.n = -1
		resp.Close = true
	}
	resp.Body = b
	if b.n == 0 {
		b.done(nil)
		resp.Body = http.NoBody
	}
	return resp, nil
}

func bodyAllowed(method string, status int) bool {
	return method != http.MethodHead && status != http.StatusNoContent && status != http.StatusNotModified && status >= 200
}

// isHop reports whether k is a hop-by-hop field, removed when a message is passed on (RFC 9110
// section 7.6.1, and what net/http/httputil removes; Content-Length and Host are written by the
// client itself). A switch, not a map: it runs for every field of every request and answer,
// and a map lookup hashes the key each time.
func isHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// connectionListed reports whether the Connection header of h names key as hop-by-hop.
func connectionListed(h http.Header, key string) bool {
	for _, v := range h["Connection"] {
		for _, tok := range splitComma(v) {
			if http.CanonicalHeaderKey(tok) == key {
				return true
			}
		}
	}
	return false
}

// dropConnectionListed removes, as a request comes in, the fields its Connection header names
// (they were meant for this hop only, RFC 9110 section 7.6.1), and those names from the
// Connection header, which keeps only its options (close, keep-alive, upgrade). Done before the
// proxy writes its own fields: left for the forwarding to strip, a caller's "Connection:
// x-swimlane" would remove the lane the proxy writes for the next hop.
func dropConnectionListed(h http.Header) {
	conn := h["Connection"]
	if conn == nil {
		return
	}
	var kept []string
	for _, v := range conn {
		for _, tok := range splitComma(v) {
			switch {
			case asciiEqualFold(tok, "close"), asciiEqualFold(tok, "keep-alive"), asciiEqualFold(tok, "upgrade"):
				kept = append(kept, tok) // options, and the upgrade an Upgrade field asks for
			default:
				delete(h, http.CanonicalHeaderKey(tok))
			}
		}
	}
	if kept == nil {
		delete(h, "Connection")
		return
	}
	h["Connection"] = []string{strings.Join(kept, ", ")}
}

func splitComma(v string) []string {
	var out []string
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		if tok := textproto.TrimString(v[:i]); tok != "" {
			out = append(out, tok)
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
	return out
}

// writeRequestHead writes the request line and headers of req, minus hop-by-hop ones, for a
// body of bodyLen bytes. The head is appended into the writer's free buffer and written once:
// a usual head fits, and appends cost less than a WriteString per piece.
func writeRequestHead(w *bufio.Writer, req *http.Request, bodyLen int) {
	b := w.AvailableBuffer()
	b = append(b, req.Method...)
	b = append(b, ' ')
	if path := req.URL.EscapedPath(); path != "" {
		b = append(b, path...)
	} else {
		b = append(b, '/')
	}
	if req.URL.RawQuery != "" || req.URL.ForceQuery {
		b = append(b, '?')
		b = append(b, req.URL.RawQuery...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	b = append(b, host...)
	b = append(b, "\r\n"...)
	hasConnection := req.Header["Connection"] != nil
	for k, vs := range req.Header {
		if isHop(k) || k == "Host" || k == "Content-Length" || hasConnection && connectionListed(req.Header, k) {
			if k == "Te" && hasToken(vs, "trailers") {
				b = append(b, "Te: trailers\r\n"...) // gRPC-style trailer support is end to end
			}
			continue
		}
		for _, v := range vs {
			b = appendHeaderLine(b, k, v)
		}
	}
	if bodyLen > 0 || req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(bodyLen), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	w.Write(b)
}

// appendHeaderLine appends "k: v\r\n", v kept from splitting the header block (headerValue).
func appendHeaderLine(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, headerValue(v)...)
	return append(b, "\r\n"...)
}

// headerValue keeps a value from splitting the header block (net/http does the same).
func headerValue(v string) string {
	// Eight bytes at a time first, as heads are scanned: every value of every head goes through.
	i := 0
	for ; i+8 <= len(v); i += 8 {
		w := load64(v, i)
		if anyZeroByte(w^0x0d0d0d0d0d0d0d0d) || anyZeroByte(w^0x0a0a0a0a0a0a0a0a) {
			return headerNewlines.Replace(v)
		}
	}
	for ; i < len(v); i++ {
		// One comparison per byte on the usual value: CR and LF are below 0x0e, and so is
		// nothing else a value commonly holds but tab.
		if c := v[i]; c < 0x0e && (c == '\r' || c == '\n') {
			return headerNewlines.Replace(v)
		}
	}
	return v
}

var headerNewlines = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ")

// parseLength reads a Content-Length value: digits only, no sign, at most 2^63-1, as net/http
// takes it (strconv.ParseUint(s, 10, 63)). Why by hand: every answer and every request with a
// body has one, and the usual value of up to 18 digits, which cannot overflow, needs a loop of
// a few instructions per digit, not ParseUint's general path.
func parseLength(s string) (int64, bool) {
	if len(s) == 0 {
		return 0, false
	}
	if len(s) > 18 {
		n, err := strconv.ParseUint(s, 10, 63)
		return int64(n), err == nil
	}
	var n int64
	for i := 0; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 {
			return 0, false
		}
		n = n*10 + int64(d)
	}
	return n, true
}

func hasToken(vs []string, token string) bool {
	for _, v := range vs {
		for _, t := range splitComma(v) {
			if asciiEqualFold(t, token) {
				return true
			}
		}
	}
	return false
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// readResponseHead reads a status line and headers, skipping 1xx informational answers, into
// resp, whose header values go into values while it has room (see parseHeaderLines); fields
// are what its parse noted (headFields), lines its header lines as they came.
//
// With lazy set, an answer that can be passed on as it came (scanPlainAnswer) with a body of
// known length is checked but not parsed into a map: its resp.Header is nil, and
// h1Body.header parses it when someone asks. Why: most answers go on with their lines as they
// came, and the answer map's inserts, lookups and clearing were about 4% of a request's
// instructions (callgrind, bench/README.md).
// Reading a nil Header finds none of the fields such an answer lacks (Connection, the proxy's
// own mark, Grpc-Status), so the checks after the exchange need not parse it.
func readResponseHead(pc *h1Conn, req *http.Request, resp *http.Response, values []string, lazy bool) (_ *http.Response, _ headFields, lines string, _ error) {
	informational := 0 // bytes of 1xx heads skipped, bounded as one head is
	for {
		var err error
		pc.head, err = readHead(pc.br, pc.head[:0], false, &pc.scan)
		if err != nil {
			var held *heldWriteError
			if len(pc.head) == 0 && (err == io.EOF || isReset(err) || errors.As(err, &held)) {
				return nil, 0, "", fmt.Errorf("%w: %v", errNothingRead, err)
			}
			return nil, 0, "", fmt.Errorf("reading the upstream's answer: %w", err)
		}
		head := string(pc.head) // the one allocation behind every string of the head
		if !pc.scan.valid {
			return nil, 0, "", errors.New("control character in the upstream's answer head")
		}
		lines := lineCutter{s: head, lfs: pc.scan.lfs[:pc.scan.n]}
		line, _ := lines.cut()
		rest := lines.s
		proto, status, ok := parseStatusLine(line)
		if !ok {
			return nil, 0, "", fmt.Errorf("malformed HTTP status line from the upstream: %q", line)
		}
		// (A bodiless answer is parsed at once: it is not passed on as it came.)
		if lazy && proto == "HTTP/1.1" && status >= 200 && bodyAllowed(req.Method, status) {
			if length, fields, plain := scanPlainAnswer(lines); plain {
				if n, ok := parseLength(length); ok && n > 0 {
					*resp = http.Response{
						Status: line[len(proto)+1:], StatusCode: status, Proto: proto, ProtoMajor: 1, ProtoMinor: 1,
						ContentLength: n, Request: req, // Header: nil, until asked for (h1Body.header)
					}
					return resp, fields, rest, nil
				} // else parsed as any other head, which says what is wrong or how it ends
			}
		}
		header, fields, _, ok := parseHeaderLines(&lines, values, takeHeaderMap(), nil)
		if !ok {
			return nil, 0, "", errors.New("malformed header line from the upstream")
		}
		if status == http.StatusSwitchingProtocols {
			// Plain requests carry no Upgrade: nothing asked the upstream to switch.
			return nil, 0, "", errors.New("the upstream switched protocols, which the request did not ask for")
		}
		if status < 200 {
			if informational += len(pc.head); informational > maxHeadBytes {
				return nil, 0, "", errors.New("the upstream sent more informational (1xx) answers than a head may hold")
			}
			continue
		}
		*resp = http.Response{
			Status:     line[len(proto)+1:],
			StatusCode: status,
			Proto:      proto,
			ProtoMajor: 1,
			ProtoMinor: 1,
			Header:     header,
			Request:    req,
		}
		if proto == "HTTP/1.0" {
			resp.ProtoMinor = 0
		}
		fields, err = framing(resp, fields)
		if err != nil {
			return nil, 0, "", err
		}
		return resp, fields, rest, nil
	}
}

// parseStatusLine splits "HTTP/1.1 200 OK".
func parseStatusLine(line string) (proto string, status int, ok bool) {
	if len(line) < 12 || line[8] != ' ' || (line[:8] != "HTTP/1.1" && line[:8] != "HTTP/1.0") {
		return "", 0, false
	}
	code := line[9:12]
	if len(line) > 12 && line[12] != ' ' {
		return "", 0, false
	}
	n := 0
	for i := 0; i < 3; i++ {
		if code[i] < '0' || code[i] > '9' {
			return "", 0, false
		}
		n = n*10 + int(code[i]-'0')
	}
	if n < 100 { // no such status (RFC 9110 section 15)
		return "", 0, false
	}
	return line[:8], n, true
}

// framing sets how the response body is delimited, and whether the connection may be reused;
// fields is what the parse noted of the head (see parseHeaderLines), and comes back with
// hasLengthRepeated noted.
func framing(resp *http.Response, fields headFields) (headFields, error) {
	h := resp.Header
	resp.ContentLength = -1
	// Content-Length is checked even beside Transfer-Encoding, as net/http does.
	if cl := fields.get(h, hasContentLength, "Content-Length"); cl != nil {
		for _, v := range cl[1:] {
			if v != cl[0] {
				return 0, fmt.Errorf("conflicting Content-Length %q from the upstream", cl)
			}
		}
		n, ok := parseLength(textproto.TrimString(cl[0]))
		if !ok {
			return 0, fmt.Errorf("bad Content-Length %q from the upstream", cl[0])
		}
		resp.ContentLength = n
		if len(cl) > 1 {
			h["Content-Length"] = cl[:1] // repeated alike, it is passed on once, as net/http does
			fields |= hasLengthRepeated
		}
	}
	// HTTP/1.0 has no transfer codings: such an answer's Transfer-Encoding is ignored, as
	// net/http does (it is hop-by-hop, so it is not passed on either).
	if te := fields.get(h, hasTransferEncoding, "Transfer-Encoding"); te != nil && resp.ProtoMinor == 1 {
		if len(te) != 1 || !asciiEqualFold(textproto.TrimString(te[0]), "chunked") {
			return 0, fmt.Errorf("unsupported Transfer-Encoding %q from the upstream", te)
		}
		resp.TransferEncoding = []string{"chunked"}
		resp.ContentLength = -1
		if bodyAllowed(resp.Request.Method, resp.StatusCode) {
			delete(h, "Content-Length") // chunked wins (RFC 9112 section 6.3)
		} // else no body follows, and the length describes what a GET would get, as for HEAD
	}
	conn := fields.get(h, hasConnection, "Connection")
	resp.Close = hasToken(conn, "close") || resp.ProtoMinor == 0 && !hasToken(conn, "keep-alive")
	return fields, nil
}

// h1Body streams an answer's body from its connection and gives the connection back to the
// pool once the body was read to its end.
type h1Body struct {
	client *h1Client
	pc     *h1Conn
	resp   *http.Response
	// answer and values are resp and its header values, allocated with the body; fields,
	// what the parse noted of its head.
	answer http.Response
	values [headValues]string
	fields headFields
	lines  string // the head's header lines as they came (readResponseHead)
	// stop ends the request context's hold on the connection (context.AfterFunc); nil when
	// the context cannot be cancelled.
	stop func() bool
	// hook, when set instead of stop, holds the connection for the client's watch.
	hook     *clientGoneHook
	stopped  bool      // release ran
	released bool      // release's result: true when the context never interrupted the connection
	chunked  io.Reader // set for a chunked body
	n        int64     // bytes left of a fixed-length body; -1 until the connection closes
	// clearDeadline: the connection carries this request's deadline, cleared before reuse.
	clearDeadline bool
	finished      bool
	err           error
}

// h1Bodies holds the bodies of answers their callers are done with, for the next exchange:
// with the answer and its header values, the body is an exchange's largest allocation.
var h1Bodies = sync.Pool{New: func() any { return new(h1Body) }}

// recycle pools b, ended, once the request it answered is done with (the h1Server, after the
// handler returned and the answer was finished). Nothing else keeps b then: its end gave the
// connection back to the client's pool or closed it, and no one reads the answer's header
// values, which live in b.values.
func (b *h1Body) recycle() {
	if b.finished {
		h1Bodies.Put(b)
	}
}

// release ends the request context's hold on the connection, once, and reports whether the
// context left it alone (else its deadline was forced into the past: not reusable).
func (b *h1Body) release() bool {
	if !b.stopped {
		b.stopped = true
		switch {
		case b.hook != nil:
			b.released = b.hook.letGo()
		case b.stop != nil:
			b.released = b.stop()
		default:
			b.released = true
		}
	}
	return b.released
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.finished {
		if b.err != nil {
			return 0, b.err
		}
		return 0, io.EOF
	}
	var n int
	var err error
	switch {
	case b.chunked != nil:
		n, err = b.chunked.Read(p)
		if err == io.EOF {
			err = b.readTrailer()
			if err == nil {
				b.done(nil)
				return n, io.EOF
			}
		}
	case b.n >= 0:
		if int64(len(p)) > b.n {
			p = p[:b.n]
		}
		n, err = b.pc.br.Read(p)
		b.n -= int64(n)
		if b.n == 0 {
			b.done(nil)
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	default:
		n, err = b.pc.br.Read(p)
		if err == io.EOF {
			b.done(io.EOF)
			return n, io.EOF
		}
	}
	if err != nil {
		b.done(err)
		if err != io.EOF {
			return n, err
		}
	}
	return n, err
}

// passOn writes the rest of a fixed-length body (n > 0) to w from the connection's read
// buffer, as it arrives, and ends the body. werr is w's failure (the caller went away; the
// body is left for Close), rerr the body's (the upstream ended it short or failed).
func (b *h1Body) passOn(w io.Writer) (werr, rerr error) {
	br := b.pc.br
	for b.n > 0 {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				b.done(err)
				if b.err != nil {
					return nil, b.err // the context's error when it cut the read
				}
				return nil, err
			}
		}
		chunk, _ := br.Peek(int(min(int64(br.Buffered()), b.n)))
		if _, err := w.Write(chunk); err != nil {
			return err, nil
		}
		_, _ = br.Discard(len(chunk))
		b.n -= int64(len(chunk))
	}
	b.done(nil) // only now: the connection may serve another request once it is back
	return nil, nil
}

// readTrailer reads the trailer section after a chunked body's last chunk.
func (b *h1Body) readTrailer() error {
	trailer, err := readTrailerSection(b.pc.br)
	if err != nil {
		return fmt.Errorf("reading the upstream's trailers: %w", err)
	}
	if len(trailer) > 0 {
		b.resp.Trailer = http.Header(trailer)
	}
	return nil
}

// header is the answer's header, parsed from its lines now if readResponseHead left it for
// later (lazy): their check then already passed.
func (b *h1Body) header() http.Header {
	if b.resp.Header == nil {
		lines := lineCutter{s: b.lines}
		b.resp.Header, _, _, _ = parseHeaderLines(&lines, b.values[:0], takeHeaderMap(), nil)
	}
	return b.resp.Header
}

// answerHeader is resp's header, parsed now if the own client left it for later (lazy), under
// a try's cancelOnClose too.
func answerHeader(resp *http.Response) http.Header {
	if resp.Header == nil {
		body := resp.Body
		if c, ok := body.(*cancelOnClose); ok {
			body = c.ReadCloser
		}
		if b, ok := body.(*h1Body); ok {
			return b.header()
		}
	}
	return resp.Header
}

// done ends the body: the connection goes back to the pool after a clean end, else closes.
func (b *h1Body) done(err error) {
	if b.finished {
		return
	}
	b.finished = true
	released := b.release()
	if err != nil && err != io.EOF {
		b.err = err
		if ctxErr := b.resp.Request.Context().Err(); !released || ctxErr != nil {
			b.err = ctxErr
		}
	}
	if released && err == nil && !b.resp.Close {
		if b.clearDeadline {
			_ = b.pc.SetDeadline(time.Time{})
		}
		b.client.put(b.pc)
		return
	}
	b.pc.close()
}

// Close ends the body early: a small rest is drained so the connection can be reused.
func (b *h1Body) Close() error {
	if b.finished {
		return nil
	}
	if b.n > 0 && b.n <= 4096 || b.chunked != nil {
		if _, err := io.Copy(io.Discard, io.LimitReader(b, 4096)); err == nil && b.finished {
			return nil
		}
	}
	b.done(errors.New("body closed before its end"))
	return nil
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

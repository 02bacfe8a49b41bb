package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// serveHTTP serves handler on lis until ctx ends, then drains requests in flight for up to
// drainTimeout. Plain HTTP/1.1 requests are served by h1Server, the proxy's own server; every
// connection it does not serve itself (h2c, HTTP/1.0, CONNECT, Upgrade) is handed, bytes
// intact, to a net/http server behind it.
func serveHTTP(ctx context.Context, lis net.Listener, handler http.Handler) error {
	handoff := newConnQueue(lis.Addr())
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	std := &http.Server{
		Handler:           handler,
		Protocols:         &protocols,
		ReadHeaderTimeout: headReadTimeout,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if t, ok := c.(interface{ tunnelTarget() string }); ok {
				return context.WithValue(ctx, tunnelKey{}, t.tunnelTarget())
			}
			return ctx
		},
	}
	stdDone := make(chan struct{})
	go func() {
		defer close(stdDone)
		_ = std.Serve(handoff)
	}()
	s := &h1Server{handler: handler, handoff: handoff, conns: map[*h1ServerConn]struct{}{}}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		lis.Close()
		shutdown, cancel := context.WithTimeout(context.Background(), drainTimeout)
		defer cancel()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = std.Shutdown(shutdown) }()
		go func() { defer wg.Done(); s.shutdown(shutdown) }()
		wg.Wait()
		handoff.Close()
	}()
	err := s.serve(lis)
	if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		<-stopped
		<-stdDone
		return nil
	}
	return err
}

// h1Server is the proxy's own HTTP/1.1 server. It is hand-written because it is the hot path:
// net/http's server starts a goroutine per request to watch the connection, builds a
// cancellable context and parses each request into several allocations; this one reads a
// request head with one allocation for all its strings and runs the handler on the
// connection's goroutine. Handlers see ordinary http.Request and http.ResponseWriter values,
// so routing code is shared with the connections net/http serves.
//
// Not done here (the connection goes to net/http): HTTP/1.0, HTTP/2, CONNECT, Upgrade and
// header continuation lines. Unlike net/http, a request's context is not cancelled when the
// client goes away mid-request: the answer's write fails instead.
type h1Server struct {
	handler http.Handler
	handoff *connQueue

	// conns are the open connections, for shutdown; a connection's idle flag and draining
	// are atomics so that a request pays no lock and map write to say it began or ended.
	mu       sync.Mutex
	conns    map[*h1ServerConn]struct{}
	draining atomic.Bool
}

func (s *h1Server) serve(lis net.Listener) error {
	var backoff time.Duration
	for {
		c, err := lis.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() { // out of descriptors and the like: wait
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		go s.serveConn(c)
	}
}

// shutdown closes idle connections, lets active ones finish their request, and closes what is
// left when ctx ends.
func (s *h1Server) shutdown(ctx context.Context) {
	s.draining.Store(true)
	s.mu.Lock()
	for c := range s.conns {
		if c.idle.Load() {
			c.conn.Close()
		}
	}
	s.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		left := len(s.conns)
		if left == 0 || ctx.Err() != nil {
			for c := range s.conns {
				c.conn.Close()
			}
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// setIdle records whether c is between requests; it reports false when the server is
// draining and c should close instead.
func (s *h1Server) setIdle(c *h1ServerConn, idle bool) bool {
	c.idle.Store(idle) // before draining is read: shutdown stores draining, then reads idle
	return !s.draining.Load()
}

// track adds c to the open connections; false when the server is draining.
func (s *h1Server) track(c *h1ServerConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *h1Server) forget(c *h1ServerConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Limits on a request head: its size (net/http's default), and the time it may take to arrive
// once begun, or on a new connection from the accept (what serveHTTP gives net/http as
// ReadHeaderTimeout). headReadTimeout is a variable for tests.
const maxHeadBytes = 1 << 20

var headReadTimeout = 30 * time.Second

var (
	h1ServerReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	h1ServerWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}
	// h1Requests holds finished requests that had no body, for the next parse to reuse:
	// the h1Request is most of what a request allocates, and the GC's work follows the
	// bytes allocated. Only bodiless ones come back, because a body may still be read by
	// someone after its handler returned (net/http's transport writes a request's body from a
	// goroutine of its own); the rest of a request is copied by those that keep it (mirrors
	// and retries clone it; ReverseProxy sends a clone).
	h1Requests = sync.Pool{New: func() any { return new(h1Request) }}
	// headerMaps holds the emptied header maps of those requests and of their answers, for
	// the next heads to fill: a map's slots are its largest allocation.
	headerMaps sync.Pool
)

// takeHeaderMap is an empty pooled header map, or nil (parseHeaderLines then makes one).
func takeHeaderMap() http.Header {
	h, _ := headerMaps.Get().(http.Header)
	return h
}

// giveHeaderMap empties h and pools it, unless it grew past maxPooledHeader: a map keeps the
// room it grew to, and clearing it costs in proportion.
func giveHeaderMap(h http.Header) {
	if h != nil && len(h) <= maxPooledHeader {
		clear(h)
		headerMaps.Put(h)
	}
}

// maxPooledHeader is the most fields a header map may hold to be pooled.
const maxPooledHeader = 16

// h1ServerConn is one client connection.
type h1ServerConn struct {
	s          *h1Server
	conn       net.Conn
	sock       io.ReadWriter // what reads and writes conn (socketIO)
	br         *bufio.Reader
	bw         *bufio.Writer
	remoteAddr string
	ctx        context.Context // carries a CONNECT tunnel's target; Background otherwise
	head       []byte          // the raw head of the request being read
	scan       headScan        // the head's scan (readHead)
	pending    []byte          // a response body of unknown length, held until it grows
	// cancel ends ctx, the requests' context, when the client is found gone while a handler
	// runs (watch), so that a request waiting on a hung upstream lets go of it.
	cancel context.CancelFunc
	// watch checks the client while a handler runs (busySince, nanoseconds since watchEpoch,
	// 0 when none runs); armed while it is scheduled.
	watch     *time.Timer
	busySince atomic.Int64
	armed     atomic.Bool
	// hook cuts the upstream connection a request of this connection holds, when the watch
	// finds the client gone; in ctx for the h1Client.
	hook clientGoneHook
	idle atomic.Bool // between requests (see setIdle)
	// base is an empty request carrying ctx: each request starts as a copy of it, which
	// sets its context without the second Request that WithContext would allocate.
	base *http.Request
}

// clientGoneHook lets the h1Client hand the server connection's watch the upstream
// connection a request is using, so that a client that went away cuts it. Why not
// context.AfterFunc: that costs three allocations and a lock and map entry in the
// connection's context per request, for what is almost never used.
type clientGoneHook struct {
	done <-chan struct{} // the Done of the context that carries the hook
	mu   sync.Mutex
	gone bool     // the client went away
	held net.Conn // the upstream connection in use; nil when none
	cut  bool     // held's deadline was forced into the past
}

type clientGoneKey struct{}

// hookFor is the hook that covers every cancellation of ctx, or nil: ctx must end only when
// the client goes away (deadlines are the connection's own, set by the caller).
func hookFor(ctx context.Context) *clientGoneHook {
	h, _ := ctx.Value(clientGoneKey{}).(*clientGoneHook)
	if h == nil || ctx.Done() != h.done {
		return nil // a context of its own (a timeout, a mirror's) that the hook cannot see
	}
	return h
}

// hold registers c as the upstream connection in use, cut at once when the client is gone;
// false when another is held (one request at a time per client connection).
func (h *clientGoneHook) hold(c net.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held != nil {
		return false
	}
	h.held, h.cut = c, false
	if h.gone {
		_ = c.SetDeadline(aLongTimeAgo)
		h.cut = true
	}
	return true
}

// letGo ends the hold, and reports whether the connection was left alone (not cut).
func (h *clientGoneHook) letGo() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = nil
	return !h.cut
}

// clientGone cuts the held connection, and any held later.
func (h *clientGoneHook) clientGone() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gone = true
	if h.held != nil && !h.cut {
		_ = h.held.SetDeadline(aLongTimeAgo)
		h.cut = true
	}
}

// clientCheckInterval is how often a connection whose handler runs is checked for a close by
// the client: net/http's background read costs a goroutine per request, this a timer per
// connection, rearmed at most once an interval.
const clientCheckInterval = time.Second

var watchEpoch = time.Now()

// watchClient marks a handler running, and schedules the check unless it is scheduled.
func (sc *h1ServerConn) watchClient() {
	sc.busySince.Store(int64(time.Since(watchEpoch)) | 1) // never 0
	if sc.armed.CompareAndSwap(false, true) {
		sc.watch.Reset(clientCheckInterval)
	}
}

func (sc *h1ServerConn) unwatchClient() { sc.busySince.Store(0) }

// checkClient cancels the requests' context when a handler has run for an interval and the
// client closed the connection meanwhile; it stays scheduled while handlers run.
func (sc *h1ServerConn) checkClient() {
	since := sc.busySince.Load()
	if since != 0 && time.Since(watchEpoch)-time.Duration(since) >= clientCheckInterval && peerClosed(sc.conn) {
		sc.cancel()
		sc.hook.clientGone()
		return
	}
	if since == 0 {
		sc.armed.Store(false)
		if sc.busySince.Load() == 0 || !sc.armed.CompareAndSwap(false, true) {
			return // idle: the next request schedules it again
		}
	}
	sc.watch.Reset(clientCheckInterval)
}

func (s *h1Server) serveConn(c net.Conn) {
	sc := &h1ServerConn{s: s, conn: c, remoteAddr: c.RemoteAddr().String(), ctx: context.Background()}
	if t, ok := c.(interface{ tunnelTarget() string }); ok {
		sc.ctx = context.WithValue(sc.ctx, tunnelKey{}, t.tunnelTarget())
	}
	sc.ctx, sc.cancel = context.WithCancel(sc.ctx)
	sc.ctx = context.WithValue(sc.ctx, clientGoneKey{}, &sc.hook)
	sc.hook.done = sc.ctx.Done()
	sc.base = new(http.Request).WithContext(sc.ctx)
	sc.watch = time.AfterFunc(time.Hour, sc.checkClient) // scheduled by watchClient
	sc.watch.Stop()
	defer func() {
		sc.watch.Stop()
		sc.cancel()
	}()
	sc.sock = socketIO(c)
	sc.br = h1ServerReaders.Get().(*bufio.Reader)
	sc.br.Reset(sc.sock)
	sc.bw = h1ServerWriters.Get().(*bufio.Writer)
	sc.bw.Reset(sc.sock)
	handedOff := false
	// A new connection gets headReadTimeout to send its first head whole, so that a client
	// cannot hold one open by sending nothing.
	first := true
	_ = c.SetReadDeadline(time.Now().Add(headReadTimeout))
	defer func() {
		s.forget(sc)
		if !handedOff {
			c.Close()
			sc.br.Reset(nil)
			h1ServerReaders.Put(sc.br)
		}
		sc.bw.Reset(nil)
		h1ServerWriters.Put(sc.bw)
	}()
	if !s.track(sc) {
		return
	}
	for {
		if !s.setIdle(sc, true) {
			return
		}
		if _, err := sc.br.Peek(1); err != nil {
			return // closed by the client, or by shutdown while idle
		}
		if !s.setIdle(sc, false) {
			return
		}
		// A head that did not arrive whole gets headReadTimeout to complete, so a client
		// cannot hold a connection by sending it slowly. Most heads come in one piece, which
		// spares a timer per request.
		var err error
		var whole bool
		if sc.head, whole = takeHead(sc.br, sc.head[:0], &sc.scan); !whole {
			if !first {
				_ = c.SetReadDeadline(time.Now().Add(headReadTimeout))
			}
			sc.head, err = readHeadLines(sc.br, sc.head[:0], true, &sc.scan)
		}
		if !whole || first {
			_ = c.SetReadDeadline(time.Time{})
		}
		first = false
		if err != nil {
			if errors.Is(err, errHeadTooLarge) {
				sc.reject(http.StatusRequestHeaderFieldsTooLarge, "request head too large")
			}
			return
		}
		rq, status, why := sc.parse()
		switch {
		case status == statusHandOff:
			handedOff = true
			sc.handOff()
			return
		case status != 0:
			sc.reject(status, why)
			return
		}
		bodiless := rq.req.Body == http.NoBody
		if !sc.serveRequest(rq) {
			return
		}
		if bodiless && rq.req.Body == http.NoBody {
			// The answer's map is the proxy's own too: made by Header, or the upstream's
			// answer's, taken from the pool by the h1Client (forwardPlain), like the
			// answer's body, which holds its values.
			giveHeaderMap(rq.header)
			giveHeaderMap(rq.resp.header)
			if b := rq.resp.answerBody; b != nil {
				b.recycle()
			}
			h1Requests.Put(rq)
		}
		if cap(sc.head) > 64<<10 {
			sc.head = nil // a large head's buffer is not kept for the connection's life
		}
	}
}

var errHeadTooLarge = errors.New("request head too large")

// readHead appends one message head (start line, header lines, empty line) from br to buf,
// which is empty, and scans it into scan. An empty line before the start line is skipped when
// skipEmpty is set (RFC 9112 section 2.2).
func readHead(br *bufio.Reader, buf []byte, skipEmpty bool, scan *headScan) ([]byte, error) {
	if br.Buffered() == 0 {
		if _, err := br.Peek(1); err != nil {
			return buf, err // as ReadSlice would have
		}
	}
	if buf, whole := takeHead(br, buf, scan); whole {
		return buf, nil
	}
	return readHeadLines(br, buf, skipEmpty, scan)
}

// takeHead appends the head at the start of br's buffer to buf, scanned into scan, when it
// is all there behind no empty line: most heads arrive whole, and are taken in one piece.
func takeHead(br *bufio.Reader, buf []byte, scan *headScan) (_ []byte, whole bool) {
	buffered, _ := br.Peek(br.Buffered())
	if len(buffered) == 0 || buffered[0] == '\r' || buffered[0] == '\n' {
		return buf, false
	}
	scanHead(buffered, scan)
	if n := scan.end; n > 0 && n <= maxHeadBytes {
		_, _ = br.Discard(n)
		return append(buf, buffered[:n]...), true
	}
	return buf, false
}

// readHeadLines is readHead line by line, for a head that did not arrive whole or comes
// behind empty lines; the head is scanned once read.
func readHeadLines(br *bufio.Reader, buf []byte, skipEmpty bool, scan *headScan) ([]byte, error) {
	lineStart := 0
	skipped := 0 // empty lines skipped before the start line count toward the limit too
	for {
		line, err := br.ReadSlice('\n')
		if skipped+len(buf)+len(line) > maxHeadBytes {
			return buf, errHeadTooLarge
		}
		buf = append(buf, line...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return buf, err
		}
		if n := len(buf) - lineStart; n == 1 || n == 2 && buf[lineStart] == '\r' { // an empty line
			if lineStart == 0 {
				if !skipEmpty {
					return buf, errors.New("empty line where a status line was expected")
				}
				skipped += len(buf)
				buf = buf[:0]
				continue
			}
			scanHead(buf, scan)
			if scan.end != len(buf) {
				scan.valid = false // the scan and the lines disagree on the end: refuse it
			}
			return buf, nil
		}
		lineStart = len(buf)
	}
}

// statusHandOff is parse's answer for a request net/http should serve.
const statusHandOff = -1

// h1Request is everything one request allocates on the fast path, in one allocation.
type h1Request struct {
	req  http.Request
	url  url.URL
	body h1RequestBody
	resp h1Response
	// values backs the header values of a usual head (see parseHeaderLines).
	values [headValues]string
	// header is the map parse filled, pooled with the request (headerMaps).
	header http.Header
}

// headValues is how many header values a head holds without an allocation of its own: more
// than a usual request or answer carries.
const headValues = 10

// parse turns sc.head into a request. status is 0 on success, statusHandOff for a request to
// hand to net/http, or the HTTP status to refuse it with.
func (sc *h1ServerConn) parse() (*h1Request, int, string) {
	head := string(sc.head) // the one allocation behind every string of the request
	if !sc.scan.valid {
		return nil, http.StatusBadRequest, "control character in the request head"
	}
	lines := lineCutter{s: head, lfs: sc.scan.lfs[:sc.scan.n]}
	line, _ := lines.cut()
	method, line, ok1 := cutByte(line, ' ')
	target, proto, ok2 := cutByte(line, ' ')
	if !ok1 || !ok2 || !isToken(method) || target == "" {
		return nil, http.StatusBadRequest, "malformed request line"
	}
	if proto != "HTTP/1.1" || method == http.MethodConnect {
		return nil, statusHandOff, ""
	}
	rq := h1Requests.Get().(*h1Request)
	*rq = h1Request{req: *sc.base}
	r := &rq.req
	r.Method, r.RequestURI, r.Proto, r.ProtoMajor, r.ProtoMinor = method, target, proto, 1, 1
	r.RemoteAddr = sc.remoteAddr
	var host string
	h, fields, folded, ok := parseHeaderLines(&lines, rq.values[:0], takeHeaderMap(), &host)
	rq.header = h
	switch {
	case folded:
		return nil, statusHandOff, "" // obsolete line folding: leave it to net/http
	case !ok:
		return nil, http.StatusBadRequest, "malformed header line"
	}
	r.Header = h
	if fields&hasUpgrade != 0 {
		return nil, statusHandOff, ""
	}
	if fields&(hasHost|hasHostRepeated) != hasHost {
		return nil, http.StatusBadRequest, "missing or repeated Host header"
	}
	if !validHost(host) {
		return nil, http.StatusBadRequest, "malformed Host header"
	}
	r.Host = host
	if err := parseTarget(&rq.url, target); err != nil {
		return nil, http.StatusBadRequest, "malformed request target"
	}
	r.URL = &rq.url
	if rq.url.Host != "" { // absolute form (an app's HTTP_PROXY request): it names the host
		r.Host = rq.url.Host
	}
	r.Close = hasToken(fields.get(h, hasConnection, "Connection"), "close")
	if fields&(hasContentLength|hasTransferEncoding|hasExpect) == 0 {
		// No body: nothing for requestBody to look up.
		rq.body.sc, rq.body.eof, r.Body = sc, true, http.NoBody
		return rq, 0, ""
	}
	if status, why := sc.requestBody(rq); status != 0 {
		return nil, status, why
	}
	return rq, 0, ""
}

// headFields records what a head's parse noted of it: which of the fields that frame a
// message, steer its connection or are read after the parse it carries (most heads carry one
// or two of them, and the checks after the parse skip a map lookup for each of the others),
// and how its lines came (whether an answer can be passed on as it came).
type headFields uint16

const (
	hasHost headFields = 1 << iota
	hasConnection
	hasContentLength
	hasTransferEncoding
	hasExpect
	hasTrailer
	hasUpgrade
	// hasOtherHop: a hop-by-hop field not above (isHop), or the proxy's own
	// appRefusedHeader: a field that passing an answer on must drop (passedOn).
	hasOtherHop
	// hasHostRepeated: a second Host line, which parseHeaderLines does not keep when it
	// takes the Host out of the map.
	hasHostRepeated
	// hasGrpcStatus: an answer's gRPC status in its head, which retries and metrics read.
	hasGrpcStatus
	// hasDate: a Date field, which an answer passed on as it came keeps.
	hasDate
	// hasBareLF: a line ended by LF alone (which a recipient may accept), not CRLF: such
	// lines are not passed on as they came.
	hasBareLF
	// hasLengthRepeated: Content-Length on several lines (alike), passed on once.
	hasLengthRepeated
)

// headField is the headFields bit of a canonical field name, 0 for any other name.
func headField(k string) headFields {
	switch k {
	case "Host":
		return hasHost
	case "Connection":
		return hasConnection
	case "Content-Length":
		return hasContentLength
	case "Transfer-Encoding":
		return hasTransferEncoding
	case "Expect":
		return hasExpect
	case "Trailer":
		return hasTrailer
	case "Upgrade":
		return hasUpgrade
	case "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", appRefusedHeader:
		return hasOtherHop
	case "Grpc-Status":
		return hasGrpcStatus
	case "Date":
		return hasDate
	}
	return 0
}

// mustDrop reports whether passing on a message with these fields has any field to drop
// (passedOn): a hop-by-hop field or the proxy's own.
func (f headFields) mustDrop() bool {
	return f&(hasConnection|hasTransferEncoding|hasTrailer|hasUpgrade|hasOtherHop) != 0
}

// get is h[key] when the head had the field bit names, nil without a lookup when it had not.
func (f headFields) get(h http.Header, bit headFields, key string) []string {
	if f&bit == 0 {
		return nil
	}
	return h[key]
}

// parseHeaderLines parses the header lines of a head (after its start line) into a new
// Header (or into reuse, an empty map, when given) whose values share one backing array:
// values's, when it has room for them all. folded reports an obsolete continuation line,
// which it does not parse; fields, what it noted of the head. With host set,
// a request's Host goes there instead of into the map (its first line; a second one sets
// hasHostRepeated): the caller would only take it out again.
func parseHeaderLines(lines *lineCutter, values []string, reuse http.Header, host *string) (h http.Header, fields headFields, folded, ok bool) {
	h = reuse
	if h == nil {
		// Sized for the usual head; a head of many tiny lines grows them instead of
		// reserving a map entry per line up front. (A pooled map and values simply grow.)
		lines := min(max(strings.Count(lines.s, "\n")-1, 0), 64)
		if cap(values) < lines {
			values = make([]string, 0, lines)
		}
		h = make(http.Header, lines)
	}
	// The names so far, for the repeated-field check: comparing a few strings (most differ
	// in length) costs less than a map lookup per line. Past its room, the map is asked.
	var names [headValues]string
	named := 0
	for lines.s != "" {
		hl, crlf := lines.cut()
		if !crlf {
			fields |= hasBareLF
		}
		if hl == "" {
			break
		}
		k, v, bit, folded, ok := headerLine(hl)
		if !ok {
			return nil, 0, folded, false
		}
		if bit == hasHost && host != nil {
			if fields&hasHost != 0 {
				fields |= hasHostRepeated
			} else {
				*host = v
			}
			fields |= hasHost
			continue
		}
		fields |= bit
		if repeated(h, names[:named], named == len(names), k) {
			h[k] = append(h[k], v)
			continue
		}
		if named < len(names) {
			names[named] = k
			named++
		}
		values = append(values, v)
		h[k] = values[len(values)-1 : len(values) : len(values)]
	}
	return h, fields, false, true
}

// headerLine splits a header line (not empty) into its canonical name and trimmed value, with
// the name's headField bit; folded reports an obsolete continuation line, ok false a malformed
// line (or a folded one).
func headerLine(hl string) (k, v string, bit headFields, folded, ok bool) {
	if hl[0] == ' ' || hl[0] == '\t' {
		return "", "", 0, true, false
	}
	if n, b := commonName(hl); n > 0 {
		k, v, bit = hl[:n], hl[n+1:], b
	} else {
		n, canonical := nameLen(hl)
		if n == 0 || n == len(hl) || hl[n] != ':' { // a name of token bytes, then the colon
			return "", "", 0, false, false
		}
		k, v = hl[:n], hl[n+1:]
		if !canonical {
			k = textproto.CanonicalMIMEHeaderKey(k)
		}
		bit = headField(k)
	}
	return k, trimValue(v), bit, false, true
}

// scanPlainAnswer checks an answer's header lines as parseHeaderLines would, without a map,
// for an answer whose head can be passed on as it came with no field looked at but its length:
// every line ended by CRLF, one Content-Length line, and no field that framing, a retry, the
// metrics or passing it on reads (no hop-by-hop field, Transfer-Encoding, Trailer or
// Grpc-Status; a Date may be there). plain is false for any other head, which the caller
// parses into a map instead; length is the Content-Length value; fields what it noted.
func scanPlainAnswer(lines lineCutter) (length string, fields headFields, plain bool) {
	for lines.s != "" {
		hl, crlf := lines.cut()
		if !crlf {
			return "", 0, false
		}
		if hl == "" {
			break
		}
		_, v, bit, _, ok := headerLine(hl)
		if !ok || bit&^(hasContentLength|hasDate) != 0 || bit&fields&hasContentLength != 0 {
			return "", 0, false
		}
		if bit == hasContentLength {
			length = v
		}
		fields |= bit
	}
	return length, fields, fields&hasContentLength != 0
}

// commonName is the length of the common field name (commonNames) that line starts with,
// followed by its colon, and the name's headField bit; 0 if none. Why: most lines of most
// heads start with one of a few canonical names, and comparing a line with those of its first
// letter costs less than checking the name byte by byte (nameLen) and then looking its bit up
// (headField). What it finds, nameLen would have found as well, canonical.
func commonName(line string) (int, headFields) {
	if c := line[0] - 'A'; c < 26 {
		for _, cn := range commonNames[c] {
			if n := len(cn.name); n < len(line) && line[n] == ':' && line[:n] == cn.name {
				return n, cn.bit
			}
		}
	}
	return 0, 0
}

// commonField is a common field name and its headField bit.
type commonField struct {
	name string
	bit  headFields
}

// commonNames are the field names most requests and answers carry, canonical, by first letter.
var commonNames = func() (t [26][]commonField) {
	for _, name := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Baggage",
		"Cache-Control", "Connection", "Content-Length", "Content-Type", "Cookie", "Date",
		"Grpc-Status", "Host", "Server", "Te", "Traceparent", "Tracestate",
		"Transfer-Encoding", "User-Agent", "Vary", "X-Forwarded-For", "X-Forwarded-Proto",
		"X-Request-Id", "X-Swimlane",
	} {
		t[name[0]-'A'] = append(t[name[0]-'A'], commonField{name, headField(name)})
	}
	return t
}()

// repeated reports whether k is among the names parsed so far: those listed, or, once the
// list ran out of room (full), those in h.
func repeated(h http.Header, listed []string, full bool, k string) bool {
	if full {
		_, ok := h[k]
		return ok
	}
	for _, n := range listed {
		if n == k {
			return true
		}
	}
	return false
}

// headBytes classes each byte for the byte loop of scanHead (a head's last bytes): one table
// lookup per byte, where the comparisons cost three.
var headBytes = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c == '\r':
			t[c] = headByteCR
		case c < ' ' && c != '\t' && c != '\n' || c == 0x7f:
			t[c] = headByteControl
		}
	}
	return t
}()

const (
	headByteOK = iota
	headByteCR
	headByteControl
)

// cutLine splits s after its first line, dropping the line's CRLF or LF.
// trimValue is textproto.TrimString for a field value, with the usual "name: value" form's
// one space checked first.
func trimValue(v string) string {
	if len(v) > 1 && v[0] == ' ' && !isSpaceByte(v[1]) && !isSpaceByte(v[len(v)-1]) {
		return v[1:]
	}
	return textproto.TrimString(v)
}

func isSpaceByte(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// cutByte is strings.Cut for a one-byte separator, without Index's dispatch on its length.
func cutByte(s string, sep byte) (before, after string, found bool) {
	if i := strings.IndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// isToken reports whether k is an HTTP token (RFC 9110 section 5.6.2): what a method and a
// header name must be.
func isToken(k string) bool { return k != "" && tokenBytes.all(k) }

// nameLen is the length of the field name that starts line: its token bytes, up to the
// first byte no token has (the colon, in a well-formed line). canonical reports whether they
// are in canonical form already ("Content-Type": each word's first letter upper case, the
// rest lower), the common case, which then needs no copy. One pass over the name, for every
// field of every head, which also finds the colon.
func nameLen(line string) (n int, canonical bool) {
	// The wrong cases are or-ed, each byte saying which case is wrong for the next
	// (nameBytes), so the case check costs no branch.
	bad := uint8(0)
	wrongCase := uint8(nameLower) // a lower-case letter starts a word wrongly
	for ; n < len(line); n++ {
		f := nameBytes[line[n]]
		if f&nameToken == 0 {
			break
		}
		bad |= f & wrongCase
		wrongCase = f >> nextShift
	}
	return n, bad == 0
}

// nameBytes classes each byte of a field name for nameLen: a token byte or not, a lower or
// upper case letter, and (from bit nextShift) the case that is wrong for the byte after it:
// lower after a '-', which starts a word, else upper.
var nameBytes = func() (t [256]uint8) {
	for c := range 256 {
		if tokenBytes[c] {
			t[c] |= nameToken
		}
		switch {
		case 'a' <= c && c <= 'z':
			t[c] |= nameLower
		case 'A' <= c && c <= 'Z':
			t[c] |= nameUpper
		}
		if c == '-' {
			t[c] |= nameLower << nextShift
		} else {
			t[c] |= nameUpper << nextShift
		}
	}
	return t
}()

const (
	nameToken = 1 << iota
	nameLower
	nameUpper
	nextShift = 4
)

// tokenBytes are tchar: letters, digits and these (RFC 9110 section 5.6.2).
var tokenBytes = newByteSet("!#$%&'*+-.^_`|~")

// validHost reports whether a Host header holds only what a host, port or IP literal may
// (net/http's check).
func validHost(h string) bool { return hostBytes.all(h) }

var hostBytes = newByteSet("!$%&'()*+,-.:;=[]_~")

// parseTarget parses a request target in origin form ("/path?query"), absolute form
// ("http://host/path", sent to a proxy) or asterisk form ("*").
func parseTarget(u *url.URL, target string) error {
	path, query, hasQuery := strings.Cut(target, "?")
	if path != "" && path[0] == '/' && plainPath(path) && strings.IndexByte(query, '#') < 0 {
		u.Path, u.RawQuery, u.ForceQuery = path, query, hasQuery && query == ""
		return nil
	}
	if target == "*" {
		u.Path = "*"
		return nil
	}
	parsed, err := url.ParseRequestURI(target)
	if err != nil {
		return err
	}
	*u = *parsed
	return nil
}

// plainPath reports whether path is made only of bytes that url.URL.EscapedPath writes as
// they are, so that a URL holding it as Path alone forwards it unchanged. Any other path (with
// escapes, or "!", "(" or "'" that EscapedPath would escape) goes through url.ParseRequestURI,
// which keeps the original spelling in RawPath.
func plainPath(path string) bool { return plainPathBytes.all(path) }

var plainPathBytes = newByteSet("-._~$&+,/:;=@")

// byteSet is a set of bytes, looked up by index on the hot path.
type byteSet [256]bool

// newByteSet is the set of ASCII letters and digits, and the bytes of extra.
func newByteSet(extra string) (t byteSet) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(extra, byte(c)) >= 0
	}
	return t
}

// all reports whether every byte of s is in the set.
func (t *byteSet) all(s string) bool {
	for i := 0; i < len(s); i++ {
		if !t[s[i]] {
			return false
		}
	}
	return true
}

// requestBody sets the request's body from its framing headers.
func (sc *h1ServerConn) requestBody(rq *h1Request) (int, string) {
	r, h := &rq.req, rq.req.Header
	te, cl := h["Transfer-Encoding"], h["Content-Length"]
	b := &rq.body
	b.sc = sc
	switch {
	case te != nil && cl != nil:
		return http.StatusBadRequest, "both Transfer-Encoding and Content-Length"
	case te != nil:
		if len(te) != 1 || !asciiEqualFold(te[0], "chunked") {
			return http.StatusNotImplemented, "unsupported Transfer-Encoding"
		}
		r.TransferEncoding = []string{"chunked"}
		r.ContentLength = -1
		b.chunked = httputil.NewChunkedReader(sc.br)
		b.n = -1
		b.req = r
		delete(h, "Transfer-Encoding")
		if declared := h["Trailer"]; declared != nil {
			trailer, ok := declaredTrailer(declared)
			if !ok {
				return http.StatusBadRequest, "bad trailer key"
			}
			r.Trailer = trailer
			delete(h, "Trailer")
		}
	case cl != nil:
		for _, v := range cl[1:] {
			if v != cl[0] {
				return http.StatusBadRequest, "conflicting Content-Length"
			}
		}
		n, ok := parseLength(cl[0])
		if !ok {
			return http.StatusBadRequest, "bad Content-Length"
		}
		h["Content-Length"] = cl[:1] // repeated alike, it is forwarded once, as net/http does
		r.ContentLength = n
		b.n = n
	}
	if e := h["Expect"]; e != nil {
		if len(e) != 1 || !asciiEqualFold(e[0], "100-continue") {
			return http.StatusExpectationFailed, "unsupported Expect"
		}
		b.expectContinue = true
		delete(h, "Expect")
	}
	if b.n == 0 {
		r.Body = http.NoBody
		b.eof = true
		return 0, ""
	}
	r.Body = b
	return 0, ""
}

// handOff passes the connection, with every byte read so far put back in front, to net/http.
func (sc *h1ServerConn) handOff() {
	head := append([]byte(nil), sc.head...)
	c := &replayConn{Conn: sc.conn, head: strings.NewReader(string(head)), br: sc.br, w: sc.sock}
	c.r = io.MultiReader(c.head, c.br)
	if !sc.s.handoff.push(c) {
		sc.conn.Close()
	}
}

// replayConn reads from r (bytes already taken from the connection, then the connection) and
// writes through w, the connection's socketIO, as the fast path does: net/http's servers then
// write h2c frames and tunnel bytes with raw system calls too.
type replayConn struct {
	net.Conn
	head *strings.Reader // the head of the request net/http is handed
	br   *bufio.Reader   // what was read past it, then the connection
	r    io.Reader       // head, then br
	w    io.Writer
}

// drained reports whether every byte read ahead of the connection has been read.
func (c *replayConn) drained() bool { return c.head.Len() == 0 && c.br.Buffered() == 0 }

func (c *replayConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *replayConn) Write(p []byte) (int, error) { return c.w.Write(p) }

func (c *replayConn) tunnelTarget() string {
	if t, ok := c.Conn.(interface{ tunnelTarget() string }); ok {
		return t.tunnelTarget()
	}
	return ""
}

func (c *replayConn) CloseWrite() error { return closeWrite(c.Conn) }

// reject answers a request the server cannot take and ends the connection.
func (sc *h1ServerConn) reject(status int, why string) {
	fmt.Fprintf(sc.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), len(why)+1, why+"\n")
	_ = sc.bw.Flush()
}

// serveRequest runs the handler for one request; it reports whether the connection stays
// open for the next.
func (sc *h1ServerConn) serveRequest(rq *h1Request) (keepAlive bool) {
	r := &rq.req // its context is sc.ctx (base)
	w := &rq.resp
	w.sc, w.req, w.status, w.contentLength = sc, r, 0, -1
	w.keepAlive = !r.Close
	sc.pending = sc.pending[:0]
	w.body = &rq.body
	defer func() {
		if v := recover(); v != nil {
			sc.unwatchClient()
			rq.body.end(false)
			keepAlive = false
			if v != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				slog.Error("proxy: panic serving a request", "remote", sc.remoteAddr, "panic", v, "stack", string(buf))
			}
		}
	}()
	sc.watchClient()
	sc.s.handler.ServeHTTP(w, r)
	sc.unwatchClient()
	if sc.ctx.Err() != nil {
		w.keepAlive = false // the client is gone
	}
	return rq.body.end(w.finish() && w.keepAlive)
}

// h1RequestBody reads a request body from the connection.
type h1RequestBody struct {
	// mu serialises reads with end: a transport may go on reading the body from its own
	// goroutine after its round trip returned, and must not once the connection moved on.
	mu     sync.Mutex
	closed bool
	// continueMu orders "100 Continue" before the answer's head: once the head is on its way
	// (headSent), no 100 follows it.
	continueMu     sync.Mutex
	headSent       bool
	sc             *h1ServerConn
	chunked        io.Reader // set for a chunked body
	n              int64     // bytes left of a fixed-length body; -1 for chunked
	eof            bool
	err            error
	expectContinue bool // the client waits for "100 Continue" before sending
	started        bool
	req            *http.Request // whose Trailer a chunked body's trailer fields go into
}

func (b *h1RequestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.read(p)
}

func (b *h1RequestBody) read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if !b.started {
		b.started = true
		if b.expectContinue {
			if err := b.sendContinue(); err != nil {
				b.err = err
				return 0, err
			}
		}
	}
	var n int
	var err error
	if b.chunked != nil {
		n, err = b.chunked.Read(p)
		if err == io.EOF {
			// The trailer section (usually empty) ends the body.
			if trailer, terr := readTrailerSection(b.sc.br); terr != nil {
				err = terr
			} else if trailer != nil && b.req != nil {
				// Into the map the request declared (shared with the handler's copy and the
				// upstream request, whose transport sends it after the body), as net/http does.
				if b.req.Trailer == nil {
					b.req.Trailer = trailer
				} else {
					maps.Copy(b.req.Trailer, trailer)
				}
			}
		}
	} else {
		if int64(len(p)) > b.n {
			p = p[:b.n]
		}
		n, err = b.sc.br.Read(p)
		b.n -= int64(n)
		if b.n == 0 {
			err = io.EOF
		} else if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	}
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		b.err = err
	}
	return n, err
}

// declaredTrailer is the Trailer map a request's Trailer header declares, keys only (net/http's
// rule: no Transfer-Encoding, Trailer or Content-Length among them); nil when it names none.
func declaredTrailer(declared []string) (http.Header, bool) {
	var trailer http.Header
	for _, v := range declared {
		for _, key := range splitComma(v) {
			key = http.CanonicalHeaderKey(key)
			switch key {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return nil, false
			}
			if trailer == nil {
				trailer = http.Header{}
			}
			trailer[key] = nil
		}
	}
	return trailer, true
}

// readTrailerSection reads what follows a chunked body's last chunk, as net/http does: an
// empty line (the usual case), else trailer fields. Cut short, the body is not whole. Trailer
// fields must end with CRLF CRLF within what br buffers, which bounds them.
func readTrailerSection(br *bufio.Reader) (http.Header, error) {
	if end, err := br.Peek(2); err != nil {
		return nil, io.ErrUnexpectedEOF
	} else if string(end) == "\r\n" {
		_, _ = br.Discard(2)
		return nil, nil
	}
	for n := 4; ; n++ {
		next, err := br.Peek(n)
		if bytes.HasSuffix(next, []byte("\r\n\r\n")) {
			break
		}
		if err != nil {
			return nil, errors.New("trailer section too long or cut short")
		}
	}
	trailer, err := textproto.NewReader(br).ReadMIMEHeader()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return http.Header(trailer), err
}

// Close does nothing: what the handler left unread is discarded after the answer, as
// net/http does, so the connection can serve the next request.
func (b *h1RequestBody) Close() error { return nil }

// sendContinue answers "100 Continue", unless the answer's head went first (the client then
// sends its body after a wait of its own, as with net/http).
func (b *h1RequestBody) sendContinue() error {
	b.continueMu.Lock()
	defer b.continueMu.Unlock()
	if b.headSent {
		return nil
	}
	_, err := b.sc.conn.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
	return err
}

// willSendHead is called before the answer's head is written: no 100 Continue may follow.
func (b *h1RequestBody) willSendHead() {
	b.continueMu.Lock()
	b.headSent = true
	b.continueMu.Unlock()
}

// end closes the body once the handler is done: reads after it fail. With keepAlive it then
// reads what the handler left of the body and reports whether the connection can serve
// another request (a large rest, a broken body, or a body the client never sent because it
// still waits for 100 Continue, end it).
func (b *h1RequestBody) end(keepAlive bool) bool {
	if !keepAlive && b.sc != nil {
		// A read still under way elsewhere would hold mu until the client sends more: wake it,
		// since the connection closes anyway.
		_ = b.sc.conn.SetReadDeadline(aLongTimeAgo)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	wasClosed := b.closed
	b.closed = true
	if !keepAlive || wasClosed {
		return false
	}
	if b.eof || b.sc == nil {
		return true
	}
	if b.err != nil || b.expectContinue && !b.started {
		return false
	}
	const maxDiscard = 256 << 10
	n, _ := io.CopyN(io.Discard, readFunc(b.read), maxDiscard+1)
	return b.eof && n <= maxDiscard
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// h1Response is the ResponseWriter of the fast path. A body of unknown length is held until
// the handler ends (then sent with a Content-Length) or grows past 4 KiB or is flushed (then
// chunked).
type h1Response struct {
	sc            *h1ServerConn
	body          *h1RequestBody
	req           *http.Request
	header        http.Header
	status        int
	headWritten   bool
	chunked       bool
	contentLength int64 // declared by the handler; -1 when unknown
	// lengthKnown: contentLength is the Content-Length of the header, which came whole from
	// an upstream's answer (forwardPlain) and has no Connection field: WriteHeader need not
	// read either.
	lengthKnown bool
	// noGrpcStatus: the header, an upstream's answer's whole, was passed on with a body of
	// known length (no trailers) and had no Grpc-Status: the metrics need not look for one.
	noGrpcStatus bool
	// asCame, when set, are the header lines of the upstream's answer as they came (each
	// ended by CRLF, through the empty line), which the header holds as asCameFields
	// distinct names: writeHead copies them instead of writing the header anew, while the
	// header still has that many fields. asCameDate: they hold a Date.
	asCame       string
	asCameFields int
	asCameDate   bool
	written      int64
	keepAlive    bool
	// answerBody is the upstream answer's body behind the header values this answer may
	// share (forwardPlain), pooled with the request.
	answerBody *h1Body
	// recorder is the metrics' wrapper of this answer (newStatusRecorder), pooled with it:
	// the request's handler is done with it before the request is pooled.
	recorder statusRecorder
}

const maxPending = 4 << 10

func (w *h1Response) Header() http.Header {
	if w.header == nil {
		if w.asCame != "" {
			// The upstream's header, left unparsed to go on as it came (forwardPlain):
			// parsed now, it still goes on so unless fields are added or taken.
			w.header = w.answerBody.header()
			w.asCameFields = len(w.header)
		} else {
			w.header = make(http.Header)
		}
	}
	return w.header
}

func (w *h1Response) WriteHeader(code int) {
	if w.status != 0 || code < 200 { // informational answers are not passed on here
		return
	}
	w.status = code
	if w.header != nil && !w.lengthKnown {
		if cl := w.header["Content-Length"]; len(cl) == 1 {
			if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
				w.contentLength = n
			}
		}
		if hasToken(w.header["Connection"], "close") {
			w.keepAlive = false
		}
	}
}

// bodyAllowed reports whether the answer may have a body.
func (w *h1Response) bodyAllowed() bool {
	return w.req.Method != http.MethodHead && w.status != http.StatusNoContent && w.status != http.StatusNotModified
}

func (w *h1Response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.bodyAllowed() {
		return len(p), nil
	}
	sc := w.sc
	switch {
	case w.contentLength >= 0:
		if w.written+int64(len(p)) > w.contentLength {
			return 0, http.ErrContentLength
		}
		if !w.headWritten {
			w.writeHead()
		}
	case !w.headWritten && len(sc.pending)+len(p) <= maxPending:
		sc.pending = append(sc.pending, p...)
		w.written += int64(len(p))
		return len(p), nil
	case !w.headWritten:
		w.startChunked()
	}
	w.written += int64(len(p))
	if w.chunked {
		if len(p) == 0 {
			return 0, nil
		}
		sc.bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		sc.bw.WriteString("\r\n")
		sc.bw.Write(p)
		_, err := sc.bw.WriteString("\r\n")
		return len(p), err
	}
	return sc.bw.Write(p)
}

// startChunked sends the head for a chunked body and the held bytes as its first chunk.
func (w *h1Response) startChunked() {
	w.chunked = true
	w.writeHead()
	if p := w.sc.pending; len(p) > 0 {
		w.written -= int64(len(p))
		w.sc.pending = w.sc.pending[:0]
		_, _ = w.Write(p)
	}
}

func (w *h1Response) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headWritten {
		if w.contentLength < 0 && w.bodyAllowed() {
			w.startChunked()
		} else {
			w.writeHead()
		}
	}
	_ = w.sc.bw.Flush()
}

// finish ends the answer after the handler returns; it reports whether the answer is whole.
func (w *h1Response) finish() bool {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	sc := w.sc
	if !w.headWritten && w.contentLength < 0 && w.bodyAllowed() && w.hasTrailers() {
		w.startChunked() // trailers need a chunked body, even an empty one
	}
	if !w.headWritten {
		if w.contentLength < 0 && w.bodyAllowed() {
			w.contentLength = int64(len(sc.pending))
			w.Header()["Content-Length"] = []string{strconv.Itoa(len(sc.pending))}
		}
		w.writeHead()
		sc.bw.Write(sc.pending)
	}
	whole := true
	switch {
	case w.chunked:
		sc.bw.WriteString("0\r\n")
		for k, vs := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				for _, v := range vs {
					sc.bw.WriteString(name + ": " + headerValue(v) + "\r\n")
				}
			}
		}
		sc.bw.WriteString("\r\n")
	case w.bodyAllowed() && w.written != w.contentLength:
		whole = false // the handler wrote less than it declared: the client must not wait
	}
	if err := sc.bw.Flush(); err != nil {
		return false
	}
	return whole
}

// hasTrailers reports whether the handler set or declared trailer fields.
func (w *h1Response) hasTrailers() bool {
	if w.header["Trailer"] != nil {
		return true
	}
	for k := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// writeHead writes the status line and headers.
func (w *h1Response) writeHead() {
	w.headWritten = true
	if w.body != nil {
		w.body.willSendHead()
	}
	// Appended into the writer's free buffer and written once, as writeRequestHead does.
	bw := w.sc.bw
	b := bw.AvailableBuffer()
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(w.status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(w.status)...)
	b = append(b, "\r\n"...)
	if w.asCame != "" && !w.chunked && len(w.header) == w.asCameFields {
		// The upstream's lines, less the empty one that ends them: nothing was added to or
		// taken from its header (forwardPlain), and they were checked as they came.
		b = append(b, w.asCame[:len(w.asCame)-2]...)
		if !w.asCameDate {
			b = appendHeaderLine(b, "Date", httpDate())
		}
		b = w.appendConnection(b)
		bw.Write(b)
		return
	}
	hasDate := false
	for k, vs := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) || k == "Transfer-Encoding" || k == "Connection" {
			continue
		}
		if k == "Content-Length" && (w.chunked || !w.bodyAllowed() && w.req.Method != http.MethodHead) {
			continue
		}
		hasDate = hasDate || k == "Date"
		for _, v := range vs {
			b = appendHeaderLine(b, k, v)
		}
	}
	if !hasDate {
		b = appendHeaderLine(b, "Date", httpDate())
	}
	if w.chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	b = w.appendConnection(b)
	bw.Write(b)
}

// appendConnection ends a head: Connection: close when the connection ends after this answer,
// then the empty line.
func (w *h1Response) appendConnection(b []byte) []byte {
	if !w.keepAlive || w.sc.s.isDraining() {
		w.keepAlive = false
		b = append(b, "Connection: close\r\n"...)
	}
	return append(b, "\r\n"...)
}

func (s *h1Server) isDraining() bool { return s.draining.Load() }

// httpDate is the Date header value, formatted once a second rather than per answer.
func httpDate() string {
	now := time.Now()
	if d := cachedDate.Load(); d != nil && d.sec == now.Unix() {
		return d.text
	}
	d := &dateText{sec: now.Unix(), text: now.UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.text
}

type dateText struct {
	sec  int64
	text string
}

var cachedDate atomic.Pointer[dateText]

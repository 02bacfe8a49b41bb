package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"swimlane.dev/swimlane/internal/snapshot"
)

// target is where one request goes, carried to the ReverseProxy through the context.
type target struct {
	addr     string
	protocol snapshot.Protocol
	// service and workload name the upstream in errors (see what); built only when an error
	// needs them, not on every request.
	service, workload string
	// again picks another target for the same request (reroute, repick); unset (canRepick)
	// for targets that cannot be picked again.
	again repicker
	// retry is the route's retry policy; nil for none.
	retry *snapshot.RetryPolicy
	// observe, if set, is told each try's outcome at addr (outlier detection).
	observe func(addr string, status int, failed bool)
	// inbound is set for an inbound sidecar's app: a refused connection there is answered
	// with a marked 502 (appRefusedHeader), so the calling sidecar treats it as its own.
	inbound bool
}

// appRefusedHeader marks an inbound sidecar's 502 for an app that refused the connection:
// the app never saw the request, so the caller may send it elsewhere, as after its own failed
// dial. Proxies strip it from every other response, so an app cannot forge it.
const appRefusedHeader = "X-Swimlane-App-Refused"

// what names the upstream in errors: "goods-service/goods-main (127.0.0.1:4711)",
// "app (127.0.0.1:4711)".
func (t *target) what() string {
	switch {
	case t.workload != "":
		return t.service + "/" + t.workload + " (" + t.addr + ")"
	case t.service != "":
		return t.service + " (" + t.addr + ")"
	}
	return t.addr
}

// maxReroutes bounds how many endpoints one request tries after connection failures.
const maxReroutes = 2

// maxReplay is the largest request body kept for a retry; larger bodies are not retried
// (except after a failed dial, when nothing was sent).
const maxReplay = 64 << 10

// rerouting sends a request again when that is safe and asked for:
//   - on another endpoint when the connection to the chosen one fails: always, for any
//     method, because the app never saw the request;
//   - under the route's retry policy, when the answer or failure matches retryOn, after a
//     jittered exponential backoff, each try bounded by perTryTimeout.
//
// Bodies are recorded as they are sent so a retry can replay them; a body larger than
// maxReplay, or one still streaming when the answer came, is not retried.
type rerouting struct{ base http.RoundTripper }

var _ http.RoundTripper = rerouting{}

func (rt rerouting) RoundTrip(req *http.Request) (*http.Response, error) {
	t, _ := req.Context().Value(targetKey{}).(*target)
	return rt.roundTrip(req, t)
}

// roundTrip is RoundTrip for t, given directly by the proxy's own forwarding (forwardPlain)
// rather than through req's context, which would cost a copy of req and a context.
func (rt rerouting) roundTrip(req *http.Request, t *target) (*http.Response, error) {
	if t == nil || !t.canRepick() && t.retry == nil {
		return rt.base.RoundTrip(req)
	}
	policy := t.retry
	var body *replayBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &replayBody{src: req.Body, record: policy != nil && policy.Attempts > 0}
		req.Body = body
	}
	dials, retries := 0, 0
	for {
		try := req
		var cancel context.CancelFunc = func() {}
		perTry := hasPerTry(policy) && req.Header.Get("Upgrade") == ""
		if perTry {
			var ctx context.Context
			ctx, cancel = context.WithTimeout(req.Context(), policy.PerTry.Duration)
			try = req.WithContext(ctx)
		}
		resp, err := rt.base.RoundTrip(try)
		if t.observe != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.observe(t.addr, status, err != nil)
		}
		if resp != nil && resp.StatusCode == http.StatusBadGateway && resp.Header.Get(appRefusedHeader) != "" {
			// The endpoint's sidecar answered, but its app refused: the same as a failed dial.
			resp.Body.Close()
			resp, err = nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("the app behind " + t.addr + " refused the connection")}
		}
		var next *target
		switch {
		case err != nil && isDialError(err) && t.canRepick() && dials < maxReroutes && body.replayable():
			dials++
			next = t.reroute(t.addr)
		case policy != nil && retries < policy.Attempts && retriable(policy, resp, err, try) && req.Context().Err() == nil && body.replayable():
			retries++
			if resp != nil {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
			}
			if !sleepBackoff(req.Context(), policy.Backoff.Duration, retries) {
				cancel()
				return nil, req.Context().Err()
			}
			next = t
			if t.canRepick() {
				next = t.repick()
			}
			if next == nil {
				next = t
			}
			resp, err = nil, nil
		default:
			// A try's timeout must live as long as its body is read. Upgrades have none: the
			// upgraded connection outlives any per-try timeout, and ReverseProxy needs its
			// 101 body, writable, as the transport gave it.
			if resp != nil && perTry {
				resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
			} else {
				cancel()
			}
			return resp, err
		}
		cancel()
		if next == nil { // no endpoint left after a failed dial
			return resp, err
		}
		t = next
		req = req.Clone(req.Context())
		req.URL.Host = t.addr
		if body != nil {
			body.rewind()
			req.Body = body
		}
	}
}

func hasPerTry(p *snapshot.RetryPolicy) bool { return p != nil && p.PerTry.Duration > 0 }

// retriable reports whether the outcome of one try matches the policy.
func retriable(p *snapshot.RetryPolicy, resp *http.Response, err error, try *http.Request) bool {
	if err != nil {
		perTryTimeout := errors.Is(try.Context().Err(), context.DeadlineExceeded)
		return p.RetryReset(perTryTimeout)
	}
	grpcStatus := -1
	// Indexed, not through Get, which canonicalises the name anew on every answer: both the
	// proxy's own client and net/http's store canonical names. The proxy's own client noted
	// whether the head had one at all.
	if b, ok := resp.Body.(*h1Body); ok && b.fields&hasGrpcStatus == 0 {
		// none
	} else if g := firstValue(resp.Header, "Grpc-Status"); g != "" {
		if n, err := strconv.Atoi(g); err == nil {
			grpcStatus = n
		}
	}
	return p.RetryStatus(resp.StatusCode, grpcStatus)
}

// sleepBackoff waits base * 2^(n-1), with full jitter, capped at 10 * base (Envoy's rule).
func sleepBackoff(ctx context.Context, base time.Duration, n int) bool {
	limit := min(base<<(n-1), 10*base)
	select {
	case <-time.After(time.Duration(rand.Int64N(int64(limit) + 1))):
		return true
	case <-ctx.Done():
		return false
	}
}

// cancelOnClose releases a try's timeout when the response body is done with.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// replayBody is a request body that can be sent again: untouched after a failed dial, or
// when recording is on, once it was read to the end within maxReplay. Close is ignored until
// the body was read from (the transport closes it after a failed dial, and the server closes
// the inbound body when the handler ends), and passed through afterwards, which the transport
// needs to end an HTTP/2 request-body copy (see Rewrite).
//
// Read runs on the transport's body-copy goroutine and may block for as long as a client
// stream stays open, so it holds no lock: the flags are atomic, and recorded and pos belong to
// the reader; rewind runs only when no read is in flight (never started, or ended at EOF).
type replayBody struct {
	src      io.ReadCloser
	record   bool
	recorded []byte
	pos      int
	touched  atomic.Bool // read from at least once
	eof      atomic.Bool // src reached its end
	overflow atomic.Bool // the body exceeded maxReplay
}

func (b *replayBody) Read(p []byte) (int, error) {
	b.touched.Store(true)
	if b.pos < len(b.recorded) {
		n := copy(p, b.recorded[b.pos:])
		b.pos += n
		return n, nil
	}
	if b.eof.Load() {
		return 0, io.EOF
	}
	n, err := b.src.Read(p)
	if b.record && !b.overflow.Load() {
		if len(b.recorded)+n > maxReplay {
			b.overflow.Store(true)
			b.recorded = nil
		} else {
			b.recorded = append(b.recorded, p[:n]...)
			b.pos = len(b.recorded)
		}
	}
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

func (b *replayBody) Close() error {
	if b.touched.Load() {
		return b.src.Close()
	}
	return nil
}

// replayable reports whether the body can be sent again; a nil body always can.
func (b *replayBody) replayable() bool {
	if b == nil {
		return true
	}
	return !b.touched.Load() || b.record && b.eof.Load() && !b.overflow.Load()
}

// rewind makes the next Read start over.
func (b *replayBody) rewind() { b.pos = 0 }

// isDialError reports whether err happened while connecting, before anything was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

type targetKey struct{}

// forwarder sends requests to their chosen endpoint. It builds on httputil.ReverseProxy for
// hop-by-hop header handling, trailers and streaming, with one transport per wire protocol.
type forwarder struct {
	http1 *httputil.ReverseProxy
	h2c   *httputil.ReverseProxy
	// transports are the round trippers under the reverse proxies, for mirrored copies.
	transport1, transport2 http.RoundTripper
	// plain1 carries plain HTTP/1.1 requests (plainH1) on the proxy's own client.
	plain1 rerouting
	log    *slog.Logger
}

func newForwarder(log *slog.Logger) *forwarder {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return withSocketIO(c), nil
	}
	h1 := &http.Transport{
		DialContext:         dial,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		// Compression is the app's business: a proxy that asks for gzip changes the response.
		DisableCompression: true,
	}
	var h2Protocols http.Protocols
	h2Protocols.SetUnencryptedHTTP2(true)
	h2 := &http.Transport{
		DialContext:        dial,
		Protocols:          &h2Protocols,
		IdleConnTimeout:    90 * time.Second,
		DisableCompression: true,
	}
	mk := func(rt http.RoundTripper) *httputil.ReverseProxy {
		return &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				t := pr.In.Context().Value(targetKey{}).(*target)
				pr.Out.URL.Scheme = "http"
				pr.Out.URL.Host = t.addr
				pr.Out.Host = pr.In.Host // keep the authority: the app may route on it
				// The clone's Trailer is a copy made before the body was read: share the
				// request's own, which its body fills at its end, so the trailers are sent.
				if pr.In.Trailer != nil {
					pr.Out.Trailer = pr.In.Trailer
				}
				// ReverseProxy hands the transport a body whose Close does nothing. Over HTTP/2 a
				// server may answer (a gRPC status) before the client stops sending; closing the
				// response then waits for the request-body copy, which only a real Close of the
				// inbound body unblocks (golang/go#48908). Give the transport the real body.
				if pr.In.ProtoMajor == 2 && pr.Out.Body != nil {
					pr.Out.Body = pr.In.Body
				}
			},
			Transport: rt,
			// FlushInterval stays 0: ReverseProxy already flushes at once every response of
			// unknown length (gRPC, streams) and server-sent events; -1 would also flush
			// fixed-length answers from a timer goroutine, about 28% of the proxy's CPU in the
			// bench profile, for nothing.
			ModifyResponse: grpcStatusToTrailers,
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				upstreamFailed(log, w, r, r.Context().Value(targetKey{}).(*target), err)
			},
			ErrorLog:   slog.NewLogLogger(log.Handler(), slog.LevelDebug),
			BufferPool: copyBuffers,
		}
	}
	plainClient := newH1Client(dialer)
	plainClient.lazyHeaders = true // forwardPlain reads answers' headers through h1Body.header
	return &forwarder{http1: mk(rerouting{h1}), h2c: mk(rerouting{h2}), transport1: h1, transport2: h2,
		plain1: rerouting{plainClient}, log: log}
}

// upstreamFailed answers a request whose upstream could not be reached or failed mid-answer.
func upstreamFailed(log *slog.Logger, w http.ResponseWriter, r *http.Request, t *target, err error) {
	if t.canRepick() && isDialError(err) {
		t.reroute(t.addr) // eject it even when no other endpoint was left
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the caller went away; nobody reads an answer
	}
	if t.inbound && isDialError(err) {
		w.Header().Set(appRefusedHeader, "1")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		writeError(w, r, http.StatusGatewayTimeout, "upstream request timeout: "+t.what())
		return
	}
	log.Warn("upstream error", "upstream", t.what(), "err", err)
	writeError(w, r, http.StatusBadGateway, fmt.Sprintf("upstream %s: %v", t.what(), err))
}

// grpcStatusToTrailers turns a gRPC "trailers-only" response (grpc-status in the one HEADERS
// frame that also ends the stream) into headers plus trailers. ReverseProxy's immediate-flush
// timer may send the headers before the handler ends, splitting a trailers-only response into
// HEADERS and an empty DATA frame; gRPC clients then ignore the status and fail with "server
// closed the stream without sending trailers". As real trailers the status survives any split.
func grpcStatusToTrailers(res *http.Response) error {
	res.Header.Del(appRefusedHeader) // only a proxy's own error may carry it
	status := res.Header.Get("Grpc-Status")
	if status == "" || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/grpc") {
		return nil
	}
	if res.Trailer == nil {
		res.Trailer = http.Header{}
	}
	for _, k := range []string{"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin"} {
		if vs := res.Header.Values(k); len(vs) > 0 {
			res.Trailer[k] = vs
			res.Header.Del(k)
		}
	}
	return nil
}

// copyBuffers recycles ReverseProxy's 32 KiB body-copy buffers: without a pool it
// allocates one per request, most of the proxy's garbage.
var copyBuffers = &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) Get() []byte  { return *p.pool.Get().(*[]byte) }
func (p *bufferPool) Put(b []byte) { p.pool.Put(&b) }

// get and put are Get and Put for the proxy's own copies: keeping the pointer spares Put's
// allocation of one (ReverseProxy's BufferPool interface passes the slice).
func (p *bufferPool) get() *[]byte  { return p.pool.Get().(*[]byte) }
func (p *bufferPool) put(b *[]byte) { p.pool.Put(b) }

// forward sends r to ep.
func (f *forwarder) forward(w http.ResponseWriter, r *http.Request, t *target) {
	if !t.protocol.IsHTTP2() && plainH1(r) {
		f.forwardPlain(w, r, t)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), targetKey{}, t))
	if t.protocol.IsHTTP2() {
		f.h2c.ServeHTTP(w, r)
		return
	}
	f.http1.ServeHTTP(w, r)
}

// forwardPlain sends a plain HTTP/1.1 request (see plainH1) through the proxy's own client and
// copies the answer back: what ReverseProxy does, without its per-request clones.
func (f *forwarder) forwardPlain(w http.ResponseWriter, r *http.Request, t *target) {
	// The request is sent with the upstream in its URL, which is the caller's again after:
	// cheaper than a copy of the request and its URL, and nothing else reads it meanwhile
	// (a mirror took its own copy; a retry sends a clone).
	u := r.URL
	scheme, host := u.Scheme, u.Host
	u.Scheme, u.Host = "http", t.addr
	resp, err := f.plain1.roundTrip(r, t)
	u.Scheme, u.Host = scheme, host
	if err != nil {
		upstreamFailed(f.log, w, r, t, err)
		return
	}
	defer resp.Body.Close()
	fields := ^headFields(0)    // unknown: any field may have to go
	b, _ := resp.Body.(*h1Body) // the own client's answer (not a bodiless one)
	own := h1ResponseOf(w)
	if b != nil {
		// The answer's header values live in b, and the caller's wrappers read them after
		// this returns (the metrics' status): b is pooled once the whole request is done.
		if own != nil {
			own.answerBody = b
		}
		fields = b.fields
	}
	hw, edited := headerSharer(w)
	if resp.Header == nil && (b == nil || hw == nil || len(hw.header) != 0 || edited) {
		// Left unparsed to go on as it came (readResponseHead), which it cannot here: it
		// goes through the map.
		resp.Header = answerHeader(resp)
	}
	var h http.Header
	if hw != nil && len(hw.header) == 0 { // not through Header(), which makes one
		// Nothing is set on the answer yet, and resp.Header is this request's own: it becomes
		// the answer's, less the hop-by-hop fields, instead of being copied field by field
		// into a new map.
		if fields.mustDrop() {
			hasConnection := resp.Header["Connection"] != nil
			for k := range resp.Header {
				if k != "Connection" && !passedOn(resp.Header, k, hasConnection) {
					delete(resp.Header, k) // Connection goes last: passedOn reads it
				}
			}
			delete(resp.Header, "Connection")
		}
		hw.header, h = resp.Header, resp.Header
		if !edited && fields&(hasContentLength|hasTransferEncoding) == hasContentLength {
			// The length is the answer's own field, which framing read resp.ContentLength
			// from and left single: it stays as it is, and the writer need not read it again
			// (unless a route's edits may change it before the head goes). Such a body has no
			// trailers, so the head says whether a gRPC status comes.
			hw.lengthKnown, hw.contentLength = true, resp.ContentLength
			hw.noGrpcStatus = fields&hasGrpcStatus == 0
			if !fields.mustDrop() && fields&(hasBareLF|hasLengthRepeated) == 0 { // known, so b is set
				// Nothing to drop, change or add but the Date: the lines go on as they came.
				// A header left unparsed (nil) is parsed by hw.Header, when anyone asks.
				hw.asCame, hw.asCameFields, hw.asCameDate = b.lines, len(resp.Header), fields&hasDate != 0
			}
		}
	} else {
		hasConnection := resp.Header["Connection"] != nil
		h = w.Header()
		for k, vs := range resp.Header {
			if passedOn(resp.Header, k, hasConnection) {
				h[k] = vs
			}
		}
	}
	if own != nil && own.lengthKnown {
		// Content-Length is the upstream's, as is.
	} else if resp.ContentLength >= 0 && resp.Body != http.NoBody && !headerIsInt(h, "Content-Length", resp.ContentLength) {
		h["Content-Length"] = []string{strconv.FormatInt(resp.ContentLength, 10)}
	}
	w.WriteHeader(resp.StatusCode)
	if resp.Body == http.NoBody {
		return
	}
	// A body of unknown length may be a stream: pass each piece on at once.
	flusher, _ := w.(http.Flusher)
	if resp.ContentLength >= 0 {
		flusher = nil
	}
	if b != nil && b.chunked == nil && b.n > 0 {
		// A body of known length goes on from the connection's read buffer: no copy
		// buffer to take, and one copy of the bytes less.
		werr, rerr := b.passOn(w)
		switch {
		case werr != nil:
			return // the caller went away
		case rerr != nil:
			f.log.Warn("upstream answer cut short", "upstream", t.what(), "err", rerr)
			panic(http.ErrAbortHandler)
		}
		return
	}
	bufp := copyBuffers.get()
	defer copyBuffers.put(bufp)
	buf := *bufp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the caller went away
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			// Cut the caller's connection: a clean end would pass a truncated body as whole.
			f.log.Warn("upstream answer cut short", "upstream", t.what(), "err", rerr)
			panic(http.ErrAbortHandler)
		}
	}
	for k, vs := range resp.Trailer {
		h[http.TrailerPrefix+k] = vs
	}
}

// passedOn reports whether an upstream's answer field k reaches the caller: not hop-by-hop,
// not listed in the answer's Connection header, not Swimlane's own app-refused mark.
func passedOn(h http.Header, k string, hasConnection bool) bool {
	return !isHop(k) && !(hasConnection && connectionListed(h, k)) && k != appRefusedHeader
}

// headerIsInt reports whether h holds key once, as n in decimal: the form the proxy would
// write, so it can stay (formatting n anew costs two allocations per answer).
func headerIsInt(h http.Header, key string, n int64) bool {
	vs := h[key]
	var b [20]byte
	return len(vs) == 1 && string(strconv.AppendInt(b[:0], n, 10)) == vs[0]
}

// headerSharer is the proxy's own ResponseWriter when w is it or wrappers of it whose Header
// is its Header (the metrics' and the response header edits'), else nil; edited reports a
// route's header edits among them, which change the header when the status is written.
func headerSharer(w http.ResponseWriter) (hw *h1Response, edited bool) {
	for {
		switch x := w.(type) {
		case *h1Response:
			return x, edited
		case *statusRecorder:
			w = x.ResponseWriter
		case *headerEditor:
			w, edited = x.ResponseWriter, true
		default:
			return nil, false
		}
	}
}

// h1ResponseOf is the proxy's own ResponseWriter under w's wrappers, nil when w is another.
func h1ResponseOf(w http.ResponseWriter) *h1Response {
	for {
		switch x := w.(type) {
		case *h1Response:
			return x
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return nil
		}
	}
}

// firstValue is h.Get(key) for a canonical key, without Get's canonicalising of it.
func firstValue(h http.Header, key string) string {
	if vs := h[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// isGRPC reports whether r is a gRPC call, which must get its errors as gRPC status.
func isGRPC(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

// writeError answers with status and msg. gRPC callers get a trailers-only response with
// grpc-status (UNAVAILABLE for 502/503) and grpc-message, because gRPC clients drop the body of
// a non-200 answer and the user would lose the reason.
func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if isGRPC(r) {
		code := "14" // UNAVAILABLE
		if status == http.StatusNotFound {
			code = "12" // UNIMPLEMENTED, as Envoy maps 404
		}
		h := w.Header()
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", code)
		h.Set("Grpc-Message", grpcMessageEncode(msg))
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

// grpcMessageEncode percent-encodes as the gRPC HTTP/2 spec asks of grpc-message.
func grpcMessageEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

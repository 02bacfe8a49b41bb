package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"time"

	"swimlane.dev/swimlane/internal/snapshot"
)

// target is where one request goes, carried to the ReverseProxy through the context.
type target struct {
	addr     string
	protocol snapshot.Protocol
	// what names the upstream in errors: "goods-service/goods-main (127.0.0.1:4711)".
	what string
	// reroute, if set, is called when addr refused the connection: it ejects addr and
	// returns another target for the same request, or nil when there is none.
	reroute func(failed string) *target
}

// maxReroutes bounds how many endpoints one request tries after connection failures.
const maxReroutes = 2

// rerouting retries a request on another endpoint when the connection to the chosen one
// fails. That is safe for any method: a failed dial means the app never saw the request.
// The body is guarded so the transport's close on failure does not consume it.
type rerouting struct{ base http.RoundTripper }

var _ http.RoundTripper = rerouting{}

func (rt rerouting) RoundTrip(req *http.Request) (*http.Response, error) {
	t, _ := req.Context().Value(targetKey{}).(*target)
	if t == nil || t.reroute == nil {
		return rt.base.RoundTrip(req)
	}
	var guard *replayGuard
	if req.Body != nil && req.Body != http.NoBody {
		guard = &replayGuard{ReadCloser: req.Body}
		req.Body = guard
	}
	for attempt := 0; ; attempt++ {
		resp, err := rt.base.RoundTrip(req)
		if err == nil || attempt >= maxReroutes || !isDialError(err) || guard != nil && guard.touched.Load() {
			return resp, err
		}
		next := t.reroute(t.addr)
		if next == nil {
			return resp, err
		}
		t = next
		req = req.Clone(req.Context())
		req.URL.Host = t.addr
		if guard != nil {
			req.Body = guard
		}
	}
}

// replayGuard lets a request body be sent again after a failed dial: it records whether any
// byte was read, and ignores Close until then (the server closes the inbound body when the
// handler ends).
type replayGuard struct {
	io.ReadCloser
	touched atomic.Bool
}

func (g *replayGuard) Read(p []byte) (int, error) {
	g.touched.Store(true)
	return g.ReadCloser.Read(p)
}

// Close passes through once the body was read from: it can no longer be replayed, and the
// transport must be able to end the copy (see Rewrite).
func (g *replayGuard) Close() error {
	if g.touched.Load() {
		return g.ReadCloser.Close()
	}
	return nil
}

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
}

func newForwarder(log *slog.Logger) *forwarder {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	h1 := &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		// Compression is the app's business: a proxy that asks for gzip changes the response.
		DisableCompression: true,
	}
	var h2Protocols http.Protocols
	h2Protocols.SetUnencryptedHTTP2(true)
	h2 := &http.Transport{
		DialContext:        dialer.DialContext,
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
				// ReverseProxy hands the transport a body whose Close does nothing. Over HTTP/2 a
				// server may answer (a gRPC status) before the client stops sending; closing the
				// response then waits for the request-body copy, which only a real Close of the
				// inbound body unblocks (golang/go#48908). Give the transport the real body.
				if pr.In.ProtoMajor == 2 && pr.Out.Body != nil {
					pr.Out.Body = pr.In.Body
				}
			},
			Transport: rt,
			// -1 flushes every write at once: gRPC streams and server-sent events must not wait.
			FlushInterval:  -1,
			ModifyResponse: grpcStatusToTrailers,
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				t := r.Context().Value(targetKey{}).(*target)
				if t.reroute != nil && isDialError(err) {
					t.reroute(t.addr) // eject it even when no other endpoint was left
				}
				if errors.Is(err, context.Canceled) {
					return // the caller went away; nobody reads an answer
				}
				log.Warn("upstream error", "upstream", t.what, "err", err)
				writeError(w, r, http.StatusBadGateway, fmt.Sprintf("upstream %s: %v", t.what, err))
			},
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		}
	}
	return &forwarder{http1: mk(rerouting{h1}), h2c: mk(rerouting{h2})}
}

// grpcStatusToTrailers turns a gRPC "trailers-only" response (grpc-status in the one HEADERS
// frame that also ends the stream) into headers plus trailers. ReverseProxy's immediate-flush
// timer may send the headers before the handler ends, splitting a trailers-only response into
// HEADERS and an empty DATA frame; gRPC clients then ignore the status and fail with "server
// closed the stream without sending trailers". As real trailers the status survives any split.
func grpcStatusToTrailers(res *http.Response) error {
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

// forward sends r to ep.
func (f *forwarder) forward(w http.ResponseWriter, r *http.Request, t *target) {
	r = r.WithContext(context.WithValue(r.Context(), targetKey{}, t))
	if t.protocol.IsHTTP2() {
		f.h2c.ServeHTTP(w, r)
		return
	}
	f.http1.ServeHTTP(w, r)
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

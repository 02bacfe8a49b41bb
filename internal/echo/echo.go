// Package echo is `swimlane echo`, a test workload like Istio's echo and httpbin: it answers
// every request with who it is (service, version, lane) and what it received, makes faults on
// demand, and can call the next service of a chain, nesting that answer in its own.
//
// It speaks one of three protocols (Config.Protocol):
//
//   - "http" (default): HTTP/1.1 and HTTP/2 cleartext with prior knowledge (h2c) on the same
//     port, answering JSON (see Answer).
//   - "grpc": the swimlane.echo.v1.Echo service (api/echo/v1/echo.proto, package echopb) and
//     the standard grpc.health.v1 health service (SERVING).
//   - "tcp": a line echo like Istio's tcp-echo sample: every line received is answered with
//     "<version> <line>" until the client closes.
//
// Request headers (HTTP) or metadata keys (gRPC) it obeys:
//
//	fail: 0.3     fail with that probability (0..1): HTTP 500, gRPC INTERNAL "injected failure"
//	delay: 250ms  wait that long before answering
//
// With an upstream (HTTP: a URL; gRPC: a target such as echo-b:9000), it calls it (through the
// sidecar set in HTTP_PROXY / HTTPS_PROXY) forwarding only the headers named in Forward (plus
// fail and delay), so tests can model apps that forward some context and not other.
// In HTTP mode GET /healthz answers 200 or 503; POST /healthz?healthy=false|true flips it.
package echo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultForward are the headers forwarded upstream by default: the lane and trace context.
var DefaultForward = []string{"x-swimlane", "baggage", "traceparent", "tracestate", "x-request-id",
	"b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "uberctx-swimlane", "ot-baggage-swimlane"}

// faultHeaders travel with every upstream call, so a chain can inject faults downstream.
var faultHeaders = []string{"fail", "delay"}

// Config is one echo server.
type Config struct {
	Service, Version, Lane string
	// Upstream, if set, is called on every request (e.g. http://backend:8080/).
	Upstream string
	// Forward lists the request headers copied to the upstream call.
	Forward []string
	// Listener to serve on.
	Listener net.Listener
	// Protocol is "http" (the default when empty: HTTP/1.1 and h2c), "grpc" or "tcp".
	Protocol string
	// PropagateErrors makes an HTTP echo answer 502 when its upstream failed or answered
	// non-200, as apps that cascade failures do (seed 002), instead of reporting the failure
	// in its own 200 answer.
	PropagateErrors bool
}

// Protocols lists the values of Config.Protocol.
var Protocols = []string{"http", "grpc", "tcp"}

// Answer is what echo replies, as JSON.
type Answer struct {
	Service  string            `json:"service"`
	Version  string            `json:"version,omitempty"`
	Lane     string            `json:"lane,omitempty"`
	Method   string            `json:"method"`
	Host     string            `json:"host"`
	Path     string            `json:"path"`
	Proto    string            `json:"proto"`
	Headers  map[string]string `json:"headers"`
	Upstream *Answer           `json:"upstream,omitempty"`
	// UpstreamError is set when the upstream call failed or answered non-200.
	UpstreamError string `json:"upstreamError,omitempty"`
}

// Serve runs the server until ctx ends.
func Serve(ctx context.Context, cfg Config) error {
	if cfg.Listener == nil {
		return errors.New("echo: no listener")
	}
	switch cfg.Protocol {
	case "", "http":
		return serveHTTP(ctx, cfg)
	case "grpc":
		return serveGRPC(ctx, cfg)
	case "tcp":
		return serveTCP(ctx, cfg)
	default:
		cfg.Listener.Close()
		return fmt.Errorf("echo: unknown protocol %q (want one of %s)", cfg.Protocol, strings.Join(Protocols, ", "))
	}
}

// serveHTTP serves HTTP/1.1 and HTTP/2 cleartext (prior knowledge) on the listener.
func serveHTTP(ctx context.Context, cfg Config) error {
	var healthy atomic.Bool
	healthy.Store(true)
	client := &http.Client{Timeout: 30 * time.Second} // honours HTTP_PROXY: the sidecar
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("POST /healthz", func(w http.ResponseWriter, r *http.Request) {
		healthy.Store(r.URL.Query().Get("healthy") != "false")
		fmt.Fprintln(w, "healthy:", healthy.Load())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.Header.Get("delay")); err == nil && d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		if p, err := strconv.ParseFloat(r.Header.Get("fail"), 64); err == nil && rand.Float64() < p {
			http.Error(w, fmt.Sprintf("%s %s: injected failure (fail: %v)", cfg.Service, cfg.Version, p), http.StatusInternalServerError)
			return
		}
		a := Answer{Service: cfg.Service, Version: cfg.Version, Lane: cfg.Lane, Method: r.Method, Host: r.Host, Path: r.URL.Path, Proto: r.Proto, Headers: map[string]string{}}
		for k := range r.Header {
			a.Headers[strings.ToLower(k)] = strings.Join(r.Header.Values(k), ",")
		}
		if cfg.Upstream != "" {
			a.Upstream, a.UpstreamError = callUpstream(r, client, cfg)
			if cfg.PropagateErrors && a.UpstreamError != "" {
				http.Error(w, fmt.Sprintf("%s %s: upstream failed: %s", cfg.Service, cfg.Version, a.UpstreamError), http.StatusBadGateway)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(a)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true) // h2c with prior knowledge; the answer's proto is HTTP/2.0
	drained := make(chan struct{})
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
		close(drained)
	}()
	if err := srv.Serve(cfg.Listener); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-drained // Serve returns as Shutdown begins: the requests in flight finish first
	return nil
}

func callUpstream(in *http.Request, client *http.Client, cfg Config) (*Answer, string) {
	req, err := http.NewRequestWithContext(in.Context(), http.MethodGet, cfg.Upstream, nil)
	if err != nil {
		return nil, err.Error()
	}
	for _, h := range cfg.Forward {
		for _, v := range in.Header.Values(h) {
			req.Header.Add(h, v)
		}
	}
	// Faults travel with the request so a chain can inject them downstream.
	for _, h := range faultHeaders {
		if v := in.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Sprintf("%d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var a Answer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, "upstream answer: " + err.Error()
	}
	return &a, ""
}

// Lanes lists the lanes of a chain of answers, outermost first ("goods:dev-feature1").
func (a *Answer) Lanes() []string {
	var out []string
	for x := a; x != nil; x = x.Upstream {
		out = append(out, x.Service+":"+x.Lane)
	}
	return out
}

// SortedHeaderNames lists the received header names, for display.
func (a *Answer) SortedHeaderNames() []string {
	names := make([]string, 0, len(a.Headers))
	for k := range a.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

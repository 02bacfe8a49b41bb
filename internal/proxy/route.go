package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"swimlane.dev/swimlane/internal/snapshot"
	"swimlane.dev/swimlane/internal/tracelane"
)

// Debug response headers, sent only when the request asks with x-swimlane-debug: 1.
const (
	debugHeader    = "X-Swimlane-Debug"
	servedHeader   = "X-Swimlane-Served"
	fallbackHeader = "X-Swimlane-Fallback"
)

// routeOutbound handles one request an app sent to host (steps 1 to 5 of the package doc).
// A request without a lane gets the lane its trace had when it came into this workload, for
// apps that forward trace context but not the lane.
func (p *Proxy) routeOutbound(w http.ResponseWriter, r *http.Request, host string) {
	snap := p.Snapshot()
	o := &outcome{direction: dirOutbound}
	o.asked, _ = snap.Mesh.LaneNames().FromHeaders(r.Header)
	if o.asked == "" {
		if id := tracelane.TraceID(r.Header); id != "" {
			o.asked, o.restored = p.traces.Recall(id)
		}
	}
	p.handle(w, r, snap, host, o)
}

// handle routes and forwards a request whose lane (o.asked) is known, observing it when
// metrics or access logs are on.
func (p *Proxy) handle(w http.ResponseWriter, r *http.Request, snap *snapshot.Snapshot, host string, o *outcome) {
	if p.metrics != nil || p.AccessLog {
		rec := newStatusRecorder(w)
		defer p.record(r, rec, snap, o, time.Now())
		w = rec
	}
	dropConnectionListed(r.Header)
	snap.Mesh.LaneNames().Write(r.Header, o.asked)
	svc := snap.Service(host)
	if svc == nil {
		o.service = host
		if o.direction == dirOutbound && snap.Version > 0 && outsideMesh(host) {
			p.passthrough(w, r, snap, host)
			return
		}
		writeError(w, r, http.StatusServiceUnavailable, "swimlane: no service "+quote(host)+" in the mesh")
		return
	}
	d := snap.RouteHTTP(svc, r, o.asked, p.picker(r))
	o.service, o.served, o.fallback = d.Host, d.Served, d.Fallback()
	if d.Endpoint != nil {
		o.endpoint = d.Endpoint.Workload
	}
	p.serveDecision(w, r, snap, &d)
}

func (p *Proxy) serveDecision(w http.ResponseWriter, r *http.Request, snap *snapshot.Snapshot, d *snapshot.Decision) {
	if firstValue(r.Header, debugHeader) == "1" {
		if d.Served != "" {
			w.Header().Set(servedHeader, string(d.Served))
		}
		if d.Fallback() {
			w.Header().Set(fallbackHeader, snapshot.JoinChain(d.Tried))
		}
	}
	// Faults come before endpoints, as Envoy's fault filter comes before its router: an
	// injected abort answers even when nothing could serve.
	if d.Route != nil && d.Route.Fault != nil && p.injectFault(w, r, d.Route.Fault) {
		return
	}
	if d.Route != nil && d.Route.Redirect != nil {
		redirect(w, r, d.Route.Redirect)
		return
	}
	if d.Endpoint == nil {
		status := http.StatusServiceUnavailable
		msg := "swimlane: " + d.NoEndpointReason()
		if d.NoRoute {
			status, msg = http.StatusNotFound, "swimlane: no route of "+d.Host+" matches the request"
		}
		p.log.Debug("no endpoint", "host", d.Host, "lane", d.Asked, "reason", msg)
		writeError(w, r, status, msg)
		return
	}
	// The route's edits, in Envoy's order: request headers, then path and authority; the
	// mirrors see the edited request; response headers are edited on the way back.
	if rt := d.Route; rt != nil {
		if rt.RequestHeaders != nil {
			rt.RequestHeaders.Apply(r.Header)
		}
		if rt.Rewrite != nil {
			rewrite(r, rt.Rewrite, d.Matched)
		}
		if len(rt.Mirrors) > 0 {
			p.mirror(r, snap, d)
		}
		if rt.ResponseHeaders != nil {
			w = &headerEditor{ResponseWriter: w, ops: rt.ResponseHeaders}
		}
	}
	if d.Route != nil && d.Route.Timeout.Duration > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), d.Route.Timeout.Duration)
		defer cancel()
		r = r.WithContext(ctx)
	}
	ep := d.Endpoint
	if p.log.Enabled(r.Context(), slog.LevelDebug) { // the arguments alone cost allocations
		p.log.Debug("route", "method", r.Method, "host", r.Host, "path", r.URL.Path, "service", d.Service.Name,
			"lane_asked", d.Asked, "lane_served", d.Served, "fallback", d.Fallback(), "endpoint", ep.Workload)
	}
	t := p.targetFor(d.Service, ep)
	t.again = repicker{p: p, r: r, snap: snap, d: *d}
	t.retry = defaultRetry
	if d.Route != nil && d.Route.Retries != nil {
		t.retry = d.Route.Retries
	}
	if policy := d.Policy(); policy != nil {
		if policy.MaxRequests > 0 {
			// connectionPool: a fast 503 past the limit, as Envoy's circuit breaker answers.
			c := p.inflight.counter("service:" + d.Service.Name)
			if c.Add(1) > int64(policy.MaxRequests) {
				c.Add(-1)
				w.Header().Set("X-Envoy-Overloaded", "true")
				writeError(w, r, http.StatusServiceUnavailable, fmt.Sprintf("swimlane: %s is at its connectionPool limit (%d requests in flight): overflow", d.Service.Name, policy.MaxRequests))
				return
			}
			defer c.Add(-1)
		}
		if policy.LB == "LEAST_REQUEST" {
			c := p.inflight.counter(ep.Address)
			c.Add(1)
			defer c.Add(-1)
		}
		if o := policy.Outlier; o != nil {
			set := d.Service.LaneSet(d.Served)
			if d.Subset != "" {
				set = d.Service.SubsetSet(d.Subset)
			}
			t.observe = func(addr string, status int, failed bool) { p.outliers.observe(p, o, set, addr, status, failed) }
		}
	}
	p.fwd.forward(w, r, t)
}

// repicker picks a request's target again, after a refused connection (reroute) or for a
// retry (repick). Held by value in target: as closures, the two cost two allocations per
// request for what only failures use.
type repicker struct {
	p    *Proxy
	r    *http.Request
	snap *snapshot.Snapshot
	d    snapshot.Decision // a copy: a pointer would move the caller's Decision to the heap
}

// canRepick reports whether t can be rerouted or repicked.
func (t *target) canRepick() bool { return t.again.p != nil }

// reroute ejects failed, which refused the connection, and resolves the request again, which
// may move it to the next lane of its chain when the lane has no endpoint left; nil when
// nothing is left.
func (t *target) reroute(failed string) *target {
	p, d, r := t.again.p, &t.again.d, t.again.r
	p.ejector.eject(failed)
	p.log.Warn("endpoint refused the connection; ejected", "service", d.Service.Name, "address", failed, "for", ejectFor)
	again := *d
	again.Endpoint, again.Served, again.Tried = nil, "", nil
	if again.Subset != "" {
		if set := again.Service.SubsetSet(again.Subset); set != nil {
			again.Endpoint = set.Pick(p.picker(r))
		}
	} else {
		t.again.snap.Resolve(&again, p.picker(r))
	}
	if again.Endpoint == nil {
		return nil
	}
	return t.follow(p.targetFor(again.Service, again.Endpoint))
}

// repick picks the next endpoint of the same lane or subset for a retry, as Envoy's load
// balancer picks again (no ejection); nil when there is none.
func (t *target) repick() *target {
	p, d, r := t.again.p, &t.again.d, t.again.r
	var ep *snapshot.Endpoint
	if d.Subset != "" {
		ep = d.Service.SubsetSet(d.Subset).Pick(p.picker(r))
	} else if set := d.Service.LaneSet(d.Served); set != nil {
		ep = set.Pick(p.picker(r))
	}
	if ep == nil {
		return nil
	}
	return t.follow(p.targetFor(d.Service, ep))
}

// follow gives next, a target picked again, t's policies.
func (t *target) follow(next *target) *target {
	next.again, next.retry, next.observe = t.again, t.retry, t.observe
	return next
}

// defaultRetry is Istio's retry policy for routes that set none.
var defaultRetry = snapshot.IstioDefaultRetry()

func (p *Proxy) targetFor(svc *snapshot.Service, ep *snapshot.Endpoint) *target {
	return &target{addr: ep.Address, protocol: ep.Protocol, service: svc.Name, workload: ep.Workload}
}

func quote(s string) string { return "\"" + s + "\"" }

// injectFault applies f to one request: maybe a delay, then maybe an abort. It reports whether
// the request was answered (aborted, or the caller left during the delay).
func (p *Proxy) injectFault(w http.ResponseWriter, r *http.Request, f *snapshot.Fault) bool {
	if d := f.Delay; d != nil && rand.Float64()*100 < d.Percent {
		select {
		case <-time.After(d.Fixed.Duration):
		case <-r.Context().Done():
			return true
		}
	}
	a := f.Abort
	if a == nil || rand.Float64()*100 >= a.Percent {
		return false
	}
	if a.GRPCStatus != nil && isGRPC(r) {
		h := w.Header()
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", strconv.Itoa(*a.GRPCStatus))
		h.Set("Grpc-Message", "fault filter abort")
		w.WriteHeader(http.StatusOK)
		return true
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(a.HTTPStatus)
	fmt.Fprintln(w, "fault filter abort")
	return true
}

// passthrough handles an app's request for a host the mesh does not know: refused under
// REGISTRY_ONLY, else sent to the host as addressed (ALLOW_ANY, Istio's default), so apps
// whose every call goes through the sidecar (HTTP_PROXY) can still reach the outside world.
func (p *Proxy) passthrough(w http.ResponseWriter, r *http.Request, snap *snapshot.Snapshot, host string) {
	if snap.Mesh.RegistryOnly {
		writeError(w, r, http.StatusBadGateway, blockedMessage(host))
		return
	}
	addr := host
	if _, _, err := net.SplitHostPort(host); err != nil {
		addr = net.JoinHostPort(host, "80")
	}
	protocol := snapshot.HTTP
	if r.ProtoMajor == 2 {
		protocol = snapshot.HTTP2
	}
	p.fwd.forward(w, r, &target{addr: addr, protocol: protocol, service: host + ", outside the mesh, passed through"})
}

// outsideMesh reports whether an unknown host names something outside the mesh (an IP
// address, localhost, or a dotted name not under the cluster domain), which ALLOW_ANY passes
// through. A bare name ("pricing-sevice") or a cluster name is a mesh service that does not
// exist: better a clear 503 than a DNS lookup on the app's behalf.
func outsideMesh(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	switch {
	case net.ParseIP(strings.Trim(host, "[]")) != nil, host == "localhost":
		return true
	case !strings.Contains(host, "."), strings.HasSuffix(host, ".svc"), strings.HasSuffix(host, ".cluster.local"):
		return false
	}
	return true
}

func blockedMessage(host string) string {
	return "swimlane: " + quote(host) + " is not in the mesh and outboundTrafficPolicy is REGISTRY_ONLY: add a ServiceEntry to allow it"
}

// rewrite applies Istio's HTTPRewrite: the URI replaces the prefix the route matched on, or
// the whole path when it did not match on a prefix; the authority replaces the Host.
func rewrite(r *http.Request, rw *snapshot.Rewrite, matched *snapshot.HTTPMatch) {
	if rw.URI != "" {
		path := rw.URI
		switch {
		case rw.FullPath:
		case rw.Prefix != "":
			path = joinPrefix(rw.URI, strings.TrimPrefix(r.URL.Path, rw.Prefix))
		case matched != nil && matched.URI != nil && matched.URI.Prefix != "":
			path = rw.URI + strings.TrimPrefix(r.URL.Path, matched.URI.Prefix)
		}
		r.URL.Path, r.URL.RawPath = path, ""
	}
	if rw.Authority != "" {
		r.Host = rw.Authority
	}
}

// joinPrefix joins a replacement prefix and the rest of a path without doubling or losing
// the slash between them (Gateway API: /foo -> /bar turns /foo/x into /bar/x, / -> /x/y).
func joinPrefix(prefix, rest string) string {
	switch {
	case rest == "":
		return prefix
	case strings.HasSuffix(prefix, "/") && strings.HasPrefix(rest, "/"):
		return prefix + rest[1:]
	case !strings.HasSuffix(prefix, "/") && !strings.HasPrefix(rest, "/"):
		return prefix + "/" + rest
	}
	return prefix + rest
}

// redirect answers with Istio's HTTPRedirect: each part not set keeps the request's own; the
// query string is kept, as Envoy does.
func redirect(w http.ResponseWriter, r *http.Request, rd *snapshot.Redirect) {
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	if r.TLS != nil {
		u.Scheme = "https"
	}
	if rd.Scheme != "" {
		u.Scheme = rd.Scheme
	}
	if rd.Authority != "" {
		u.Host = rd.Authority
	}
	if rd.Port != 0 {
		host := u.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		u.Host = net.JoinHostPort(host, strconv.Itoa(rd.Port))
	}
	if rd.URI != "" {
		u.Path, u.RawPath = rd.URI, ""
	}
	w.Header().Set("Location", u.String())
	w.WriteHeader(rd.Code)
}

// headerEditor applies a route's response header edits just before the status is sent.
type headerEditor struct {
	http.ResponseWriter
	ops   *snapshot.HeaderOps
	wrote bool
}

func (h *headerEditor) WriteHeader(code int) {
	if !h.wrote {
		h.wrote = true
		h.ops.Apply(h.Header())
	}
	h.ResponseWriter.WriteHeader(code)
}

func (h *headerEditor) Write(b []byte) (int, error) {
	if !h.wrote {
		h.WriteHeader(http.StatusOK)
	}
	return h.ResponseWriter.Write(b)
}

func (h *headerEditor) Flush() {
	if f, ok := h.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (h *headerEditor) Unwrap() http.ResponseWriter { return h.ResponseWriter }

package snapshot

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"swimlane.dev/swimlane/internal/lane"
)

// HTTPRoute is one rule of a VirtualService or HTTPRoute: if any Match matches (or there is
// no Match), the request goes to one of Destinations, chosen by weight.
type HTTPRoute struct {
	// Name says where the rule came from, for logs and explain ("VirtualService/goods#0").
	Name         string        `json:"name"`
	Match        []HTTPMatch   `json:"match,omitempty"`
	Destinations []Destination `json:"destinations"`
	// Fault, if set, delays and/or aborts a share of the matched requests before they are
	// forwarded, whichever lane they are in (see README, lanes and routing rules).
	Fault *Fault `json:"fault,omitempty"`
	// Timeout bounds the whole request, retries included; zero for none.
	Timeout Duration `json:"timeout,omitzero"`
	// Retries is the route's retry policy; nil means Istio's default (IstioDefaultRetry),
	// and zero Attempts means none.
	Retries *RetryPolicy `json:"retries,omitempty"`
	// Mirrors get a copy of a share of the matched requests; their answers are dropped.
	Mirrors []Mirror `json:"mirrors,omitempty"`
	// Redirect, if set, answers the request with a redirect instead of forwarding it.
	Redirect *Redirect `json:"redirect,omitempty"`
	// Rewrite changes the request's path and authority before it is forwarded.
	Rewrite *Rewrite `json:"rewrite,omitempty"`
	// RequestHeaders and ResponseHeaders edit headers on the way to the app and back.
	RequestHeaders  *HeaderOps `json:"requestHeaders,omitempty"`
	ResponseHeaders *HeaderOps `json:"responseHeaders,omitempty"`

	totalWeight int
}

// HeaderOps sets, adds and removes headers (in that order: remove wins over set).
type HeaderOps struct {
	Set    map[string]string `json:"set,omitempty"`
	Add    map[string]string `json:"add,omitempty"`
	Remove []string          `json:"remove,omitempty"`
}

// Apply edits h.
func (o *HeaderOps) Apply(h http.Header) {
	for k, v := range o.Set {
		h.Set(k, v)
	}
	for k, v := range o.Add {
		h.Add(k, v)
	}
	for _, k := range o.Remove {
		h.Del(k)
	}
}

// Rewrite is Istio's HTTPRewrite: URI replaces the matched prefix (or the whole path when
// the route did not match on a URI prefix); Authority replaces the Host.
type Rewrite struct {
	URI       string `json:"uri,omitempty"`
	Authority string `json:"authority,omitempty"`
	// Prefix, when set, is the prefix URI replaces (Gateway API ReplacePrefixMatch, whose
	// match the compiler knows); FullPath forces a whole-path replacement (ReplaceFullPath).
	Prefix   string `json:"prefix,omitempty"`
	FullPath bool   `json:"fullPath,omitempty"`
}

// Redirect is Istio's HTTPRedirect: any field left empty keeps the request's own value.
type Redirect struct {
	URI       string `json:"uri,omitempty"`
	Authority string `json:"authority,omitempty"`
	Scheme    string `json:"scheme,omitempty"`
	Port      int    `json:"port,omitempty"`
	Code      int    `json:"code"`
}

// Mirror sends a copy of Percent (0..100) of a route's requests to Destination, which
// resolves like any destination (subset, or the request's lane).
type Mirror struct {
	Destination Destination `json:"destination"`
	Percent     float64     `json:"percent"`
}

// Fault is Istio's HTTPFaultInjection: a delay, an abort, or both (delay first).
type Fault struct {
	Delay *FaultDelay `json:"delay,omitempty"`
	Abort *FaultAbort `json:"abort,omitempty"`
}

// FaultDelay holds Percent (0..100) of requests for Fixed before they go on.
type FaultDelay struct {
	Fixed   Duration `json:"fixed"`
	Percent float64  `json:"percent"`
}

// FaultAbort answers Percent (0..100) of requests at once with HTTPStatus, or, for gRPC
// callers when GRPCStatus is set (a code number, 0..16), with that gRPC status.
type FaultAbort struct {
	HTTPStatus int     `json:"httpStatus,omitempty"`
	GRPCStatus *int    `json:"grpcStatus,omitempty"`
	Percent    float64 `json:"percent"`
}

// Duration is a time.Duration that encodes as "250ms" in JSON.
type Duration struct{ time.Duration }

func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

func (d *Duration) UnmarshalJSON(b []byte) error {
	v, err := time.ParseDuration(strings.Trim(string(b), `"`))
	d.Duration = v
	return err
}

// IsZero reports a zero duration, so `omitzero` leaves it out of the JSON.
func (d Duration) IsZero() bool { return d.Duration == 0 }

// HTTPMatch holds conditions that must all hold (AND).
type HTTPMatch struct {
	URI       *StringMatch  `json:"uri,omitempty"`
	Method    *StringMatch  `json:"method,omitempty"`
	Authority *StringMatch  `json:"authority,omitempty"`
	Headers   []HeaderMatch `json:"headers,omitempty"`
	// WithoutHeaders must all NOT match (an empty value: the header must be absent).
	WithoutHeaders []HeaderMatch `json:"withoutHeaders,omitempty"`
	// QueryParams match query parameters by name (case-sensitive).
	QueryParams []HeaderMatch `json:"queryParams,omitempty"`
	// IgnoreURICase makes URI exact and prefix matches case-insensitive.
	IgnoreURICase bool `json:"ignoreUriCase,omitempty"`
	// SourceLabels must all be labels of the calling workload (the proxy's own).
	SourceLabels map[string]string `json:"sourceLabels,omitempty"`
}

// HeaderMatch matches one header by name (case-insensitive).
type HeaderMatch struct {
	Name  string      `json:"name"`
	Value StringMatch `json:"value"`
}

// StringMatch is at most one of Exact, Prefix or Regex. Regex must match the whole value, as
// in Istio and Envoy (RE2 syntax). An empty StringMatch matches any value: on a header, it
// asks only that the header be present.
type StringMatch struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Regex  string `json:"regex,omitempty"`

	re *regexp.Regexp
}

// Destination is one weighted backend of a route.
type Destination struct {
	Host string `json:"host"`
	// Subset pins the destination to a DestinationRule subset; lanes do not override it.
	Subset string `json:"subset,omitempty"`
	Port   int    `json:"port,omitempty"`
	Weight int    `json:"weight,omitempty"`
}

func (r *HTTPRoute) prepare() error {
	for i := range r.Match {
		m := &r.Match[i]
		for _, sm := range []*StringMatch{m.URI, m.Method, m.Authority} {
			if err := sm.compile(); err != nil {
				return err
			}
		}
		for j := range m.Headers {
			m.Headers[j].Name = http.CanonicalHeaderKey(m.Headers[j].Name)
			if err := m.Headers[j].Value.compile(); err != nil {
				return err
			}
		}
		for j := range m.WithoutHeaders {
			m.WithoutHeaders[j].Name = http.CanonicalHeaderKey(m.WithoutHeaders[j].Name)
			if err := m.WithoutHeaders[j].Value.compile(); err != nil {
				return err
			}
		}
		for j := range m.QueryParams {
			if err := m.QueryParams[j].Value.compile(); err != nil {
				return err
			}
		}
	}
	if len(r.Destinations) == 0 && r.Redirect == nil {
		return fmt.Errorf("no destination")
	}
	if r.Retries != nil {
		if err := r.Retries.prepare(); err != nil {
			return err
		}
	}
	r.totalWeight = 0
	for _, d := range r.Destinations {
		r.totalWeight += d.Weight
	}
	return nil
}

// CompileRegex compiles an Istio/Envoy regex, which must match the whole input.
func CompileRegex(expr string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + expr + `)$`)
}

func (m *StringMatch) compile() error {
	if m == nil || m.Regex == "" {
		return nil
	}
	re, err := CompileRegex(m.Regex)
	if err != nil {
		return fmt.Errorf("regex %q: %w", m.Regex, err)
	}
	m.re = re
	return nil
}

// Matches reports whether v satisfies the match.
func (m *StringMatch) Matches(v string) bool {
	switch {
	case m.Exact != "":
		return v == m.Exact
	case m.Prefix != "":
		return strings.HasPrefix(v, m.Prefix)
	case m.re != nil:
		return m.re.MatchString(v)
	}
	return true
}

// Matches reports whether the request, sent by a workload labelled source, satisfies every
// condition of m.
func (m *HTTPMatch) Matches(r *http.Request, source map[string]string) bool {
	if len(m.SourceLabels) > 0 && !labelsMatch(source, m.SourceLabels) {
		return false
	}
	if m.URI != nil {
		if m.IgnoreURICase {
			lower := *m.URI
			lower.Exact, lower.Prefix = strings.ToLower(lower.Exact), strings.ToLower(lower.Prefix)
			if !lower.Matches(strings.ToLower(r.URL.Path)) {
				return false
			}
		} else if !m.URI.Matches(r.URL.Path) {
			return false
		}
	}
	if m.Method != nil && !m.Method.Matches(r.Method) {
		return false
	}
	if m.Authority != nil && !m.Authority.Matches(r.Host) {
		return false
	}
	for i := range m.Headers {
		if v, ok := headerValue(r, m.Headers[i].Name); !ok || !m.Headers[i].Value.Matches(v) {
			return false
		}
	}
	for i := range m.WithoutHeaders {
		if v, ok := headerValue(r, m.WithoutHeaders[i].Name); ok && m.WithoutHeaders[i].Value.Matches(v) {
			return false
		}
	}
	if len(m.QueryParams) > 0 {
		q := r.URL.Query()
		for i := range m.QueryParams {
			vs, ok := q[m.QueryParams[i].Name]
			if !ok || !m.QueryParams[i].Value.Matches(vs[0]) {
				return false
			}
		}
	}
	return true
}

// headerValue returns a header's value, repeated values joined by "," as Envoy sees them.
func headerValue(r *http.Request, canonicalName string) (string, bool) {
	vs := r.Header[canonicalName]
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}

// Matching reports whether the route applies to req from a workload labelled source: no
// match conditions, or any one of them. It returns the match block that held (nil when the
// route has none).
func (r *HTTPRoute) Matching(req *http.Request, source map[string]string) (*HTTPMatch, bool) {
	if len(r.Match) == 0 {
		return nil, true
	}
	for i := range r.Match {
		if r.Match[i].Matches(req, source) {
			return &r.Match[i], true
		}
	}
	return nil, false
}

// pick chooses a destination by weight.
func (r *HTTPRoute) pick() *Destination { return pickWeighted(r.Destinations, r.totalWeight) }

// pickWeighted chooses one of ds by weight (total is their sum). With no weights set, the
// first takes all, as in Istio where a single destination's weight defaults to 100.
func pickWeighted(ds []Destination, total int) *Destination {
	if len(ds) == 1 || total == 0 {
		return &ds[0]
	}
	n := rand.IntN(total)
	for i := range ds {
		n -= ds[i].Weight
		if n < 0 {
			return &ds[i]
		}
	}
	return &ds[len(ds)-1]
}

// EndpointSet is the healthy endpoints of one lane or one subset of a service, with a
// round-robin cursor. The cursor is the only mutable part of a snapshot, and it is atomic.
type EndpointSet struct {
	Lane      lane.Lane
	Subset    string
	Endpoints []Endpoint
	// Policy is the DestinationRule traffic policy for these endpoints; nil for defaults.
	Policy *TrafficPolicy
	next   atomic.Uint32
}

// Usable reports whether a proxy may send to an endpoint now; a proxy uses it for what only
// it knows (endpoints it ejected after failures).
type Usable func(*Endpoint) bool

// Decision is the outcome of routing one request: which service, which endpoint, and how the
// lane was resolved. Endpoint is nil when nothing can serve the request.
type Decision struct {
	Service *Service
	Host    string // destination host, set even when Service is nil (unknown host)
	Route   *HTTPRoute
	// Matched is the match block of Route that held (nil when Route has none).
	Matched *HTTPMatch
	Subset  string
	Asked   lane.Lane // the request's lane ("" for none)
	// Expired is set when Asked is a declared lane past its expiry (served as the baseline).
	Expired bool
	Served  lane.Lane   // the lane whose endpoint serves it ("" when pinned to a subset)
	Tried   []lane.Lane // the lanes tried, in order, up to and including Served
	// Strict is set when Asked is a strict lane: no fallback was allowed.
	Strict   bool
	Endpoint *Endpoint
	// NoRoute is set when the service has routes and none matched (a 404, as in Envoy).
	NoRoute bool
}

// Policy is the traffic policy of the endpoints d resolved to: its subset's, else its
// service's; nil for defaults.
func (d *Decision) Policy() *TrafficPolicy {
	if d.Service == nil {
		return nil
	}
	if d.Subset != "" {
		for _, s := range d.Service.Subsets {
			if s.Name == d.Subset && s.Policy != nil {
				return s.Policy
			}
		}
	}
	return d.Service.Policy
}

// Fallback reports whether the request was served by another lane than it asked for.
func (d *Decision) Fallback() bool {
	return d.Asked != "" && d.Served != "" && d.Served != d.Asked
}

// NoEndpointReason says, for a Decision without an endpoint, what was missing.
func (d *Decision) NoEndpointReason() string {
	switch {
	case d.Service == nil:
		return fmt.Sprintf("no service %q in the mesh", d.Host)
	case d.Subset != "":
		return fmt.Sprintf("no healthy endpoint for %s subset %q", d.Service.Name, d.Subset)
	case d.Service.Lane != "":
		return fmt.Sprintf("no healthy endpoint for %s (pinned to lane %s by its selector)", d.Service.Name, d.Service.Lane)
	}
	asked := string(d.Asked)
	if asked == "" {
		asked = "(none)"
	}
	if d.Strict {
		return fmt.Sprintf("no healthy endpoint for %s in lane %s (strict lane: no fallback)", d.Service.Name, asked)
	}
	return fmt.Sprintf("no healthy endpoint for %s in lane %s (tried %s)", d.Service.Name, asked, JoinChain(d.Tried))
}

// JoinChain renders lanes as "a -> b -> c".
func JoinChain(ls []lane.Lane) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = string(l)
	}
	return strings.Join(parts, " -> ")
}

// RouteHTTP routes a request addressed to svc. Routes are tried in order, the first match
// wins; then the chosen destination resolves to an endpoint: pinned to its subset if it names
// one, otherwise by lane along the lane's chain (see ARCHITECTURE.md, precedence).
func (s *Snapshot) RouteHTTP(svc *Service, req *http.Request, asked lane.Lane, pk *Picker) Decision {
	d := Decision{Service: svc, Host: svc.Name, Asked: asked}
	var dest *Destination
	for _, r := range svc.HTTP {
		if m, ok := r.Matching(req, pk.source()); ok {
			d.Route, d.Matched = r, m
			if r.Redirect != nil {
				return d // answered by the proxy: no destination
			}
			dest = r.pick()
			break
		}
	}
	switch {
	case d.Route != nil:
		s.resolveDestination(&d, dest, pk)
	case len(svc.HTTP) > 0:
		d.NoRoute = true
	default:
		s.Resolve(&d, pk)
	}
	return d
}

// resolveDestination fills d for one chosen destination: its service, then its pinned subset
// or, without one, the request's lane along its chain.
func (s *Snapshot) resolveDestination(d *Decision, dest *Destination, pk *Picker) {
	d.Host = dest.Host
	if d.Service = s.Service(dest.Host); d.Service == nil {
		return
	}
	if dest.Subset != "" {
		d.Subset = dest.Subset
		if set := d.Service.subsetSets[dest.Subset]; set != nil {
			d.Endpoint = set.Pick(pk)
		}
		return
	}
	s.Resolve(d, pk)
}

// RouteVirtualHost routes a request that arrived on a gateway server to one of vh's routes
// (first match wins; none is a 404), then resolves its destination like RouteHTTP does.
func (s *Snapshot) RouteVirtualHost(vh *VirtualHost, req *http.Request, asked lane.Lane, pk *Picker) Decision {
	d := Decision{Asked: asked, NoRoute: true, Host: req.Host}
	for _, r := range vh.HTTP {
		m, ok := r.Matching(req, pk.source())
		if !ok {
			continue
		}
		d.NoRoute, d.Route, d.Matched = false, r, m
		if r.Redirect == nil {
			s.resolveDestination(&d, r.pick(), pk)
		}
		return d
	}
	return d
}

// ResolveTCP picks the endpoint of a TCP route's destination for a connection in lane l
// (opaque bytes carry no lane, so usually the baseline).
func (s *Snapshot) ResolveTCP(r *TCPRoute, l lane.Lane, pk *Picker) Decision {
	d := Decision{Asked: l}
	s.resolveDestination(&d, r.Pick(), pk)
	return d
}

// Resolve fills d's Endpoint, Served and Tried for d.Service and d.Asked: the first lane of
// the chain with a usable healthy endpoint serves. A service pinned to a lane (Service.Lane)
// always resolves to its own endpoints.
func (s *Snapshot) Resolve(d *Decision, pk *Picker) {
	svc := d.Service
	if svc.Lane != "" {
		d.Served = svc.Lane
		if set := svc.laneSets[svc.Lane]; set != nil {
			d.Endpoint = set.Pick(pk)
		}
		return
	}
	chain, info, expired := s.chain(d.Asked)
	d.Expired = expired
	if info != nil {
		d.Strict = info.Mode == ModeStrict
	}
	for i, l := range chain {
		if set := svc.laneSets[l]; set != nil {
			if ep := set.Pick(pk); ep != nil {
				d.Served, d.Endpoint, d.Tried = l, ep, chain[:i+1]
				return
			}
		}
	}
	d.Tried = chain
}

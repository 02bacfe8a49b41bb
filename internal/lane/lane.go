// Package lane defines what a lane is on the wire and how a request's lane is read from and
// written to its headers.
//
// A lane travels in two primary forms, and the proxy writes both on every hop so that apps
// which forward only one of them (W3C baggage via OpenTelemetry, or the plain x-swimlane
// header) keep the lane:
//
//	x-swimlane: dev-feature1
//	baggage: swimlane=dev-feature1[,other=members]
//
// Three more forms are read, and written by the inbound sidecar (Names.WriteAll) before the
// request reaches the app, so that apps whose tracing library forwards only its own context
// keep the lane too:
//
//	tracestate: swimlane=dev-feature1[,vendor=state]   (W3C trace context; only added to an existing header)
//	uberctx-swimlane: dev-feature1                      (Jaeger baggage)
//	ot-baggage-swimlane: dev-feature1                   (OpenTracing baggage)
//
// The member and header names all derive from Names.BaggageKey. FromHeaders reads the forms in
// the order above and the first valid one wins; Strip removes all five.
//
// Values that do not match [A-Za-z0-9._-]{1,63} are ignored and never copied into other
// headers, so an untrusted value cannot smuggle text from one header into another.
package lane

import (
	"net/http"
	"net/textproto"
	"strings"
	"sync/atomic"
)

// Lane names one lane, such as "main" or "dev-feature1". The zero value means "no lane".
type Lane string

// MaxLen is the longest lane value accepted, the length of a Kubernetes label value.
const MaxLen = 63

// Valid reports whether s is a well-formed lane value: 1 to 63 characters of [A-Za-z0-9._-].
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// Names are the header and baggage-member names that carry the lane. Both are configurable
// per mesh; Default gives the conventional ones.
type Names struct {
	// Header is the plain lane header, canonical or not ("x-swimlane").
	Header string
	// BaggageKey is the W3C baggage member that carries the lane ("swimlane").
	BaggageKey string
	// headerKey is Header in canonical form, set by Compiled: the key the lane header is
	// looked up by, instead of canonicalising Header on every request.
	headerKey string
	// lastMember, set by Compiled, keeps the baggage member Write made last, as the one-value
	// list a header holds: most requests carry the lane of the one before, and the member is
	// then neither put together nor allocated again. The list is shared by every request that
	// carries it, so it is never written in place: its capacity is one, and an append copies.
	lastMember *atomic.Pointer[[]string]
	// jaegerKey and otKey, set by Compiled, are the uberctx-<BaggageKey> and
	// ot-baggage-<BaggageKey> headers' keys in canonical form: WriteAll sets both on every
	// request an inbound sidecar hands its app, and h.Set joined and canonicalised each name
	// anew (two allocations a name).
	jaegerKey, otKey string
}

// Compiled returns n ready for a proxy to use on every request: its lane header's lookup key
// computed once. n itself works the same, canonicalising the name at each lookup.
func (n Names) Compiled() Names {
	n.headerKey, n.jaegerKey, n.otKey = "", "", ""
	if isHeaderName(n.Header) {
		n.headerKey = textproto.CanonicalMIMEHeaderKey(n.Header)
	}
	if isHeaderName(n.BaggageKey) {
		n.jaegerKey = textproto.CanonicalMIMEHeaderKey(jaegerPrefix + n.BaggageKey)
		n.otKey = textproto.CanonicalMIMEHeaderKey(otPrefix + n.BaggageKey)
	}
	n.lastMember = new(atomic.Pointer[[]string])
	return n
}

// isHeaderName reports whether s is a header name textproto canonicalises: one or more
// token bytes.
func isHeaderName(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool { return r >= 0x80 || !validHeaderNameByte(byte(r)) }) < 0
}

// setPrefixed sets the header prefix+BaggageKey, whose canonical key is key when n is
// compiled ("" otherwise), to the value vs holds (one, capacity one: an append elsewhere copies).
func (n Names) setPrefixed(h http.Header, key, prefix string, vs []string) {
	if key == "" {
		h.Set(prefix+n.BaggageKey, vs[0])
		return
	}
	h[key] = vs
}

// delPrefixed deletes the header prefix+BaggageKey (key as for setPrefixed).
func (n Names) delPrefixed(h http.Header, key, prefix string) {
	if key == "" {
		h.Del(prefix + n.BaggageKey)
		return
	}
	delete(h, key)
}

// member is the baggage member "BaggageKey=l".
func (n Names) member(l Lane) string { return n.memberValues(l)[0] }

// memberValues is member(l) as a header's one-value list (capacity one), shared between the
// requests of one lane when n is compiled (see lastMember).
func (n Names) memberValues(l Lane) []string {
	if n.lastMember == nil {
		return []string{n.BaggageKey + "=" + string(l)}
	}
	if vs := n.lastMember.Load(); vs != nil {
		if m := (*vs)[0]; len(m) == len(n.BaggageKey)+1+len(l) && m[len(n.BaggageKey)+1:] == string(l) {
			return *vs
		}
	}
	vs := []string{n.BaggageKey + "=" + string(l)}
	n.lastMember.Store(&vs)
	return vs
}

// laneHeader is h's values of the lane header.
func (n Names) laneHeader(h http.Header) []string {
	if n.headerKey != "" {
		return h[n.headerKey]
	}
	return headerValues(h, "", n.Header)
}

// Default returns the conventional names: header x-swimlane, baggage member swimlane.
func Default() Names { return Names{Header: "x-swimlane", BaggageKey: "swimlane"} }

// Source says where a request's lane was found.
type Source string

const (
	SourceNone       Source = ""
	SourceHeader     Source = "header"
	SourceBaggage    Source = "baggage"
	SourceTraceState Source = "tracestate"
	SourceJaeger     Source = "jaeger"
	SourceOT         Source = "ot-baggage"
)

// FromHeaders returns the request's lane from the first of these that holds a valid value:
// the lane header; the baggage member (if the baggage header is well-formed); the tracestate
// member (if the tracestate header is well-formed); the uberctx-<BaggageKey> header; the
// ot-baggage-<BaggageKey> header. Else it returns "". The lane header wins because it is the
// explicit, user-facing form; baggage next because the proxy itself writes it on every hop.
//
// It allocates nothing unless a value is percent-encoded or a header is split over several
// lines.
func (n Names) FromHeaders(h http.Header) (Lane, Source) {
	if vs := n.laneHeader(h); len(vs) > 0 && vs[0] != "" {
		if v := strings.TrimSpace(vs[0]); Valid(v) {
			return Lane(v), SourceHeader
		}
	}
	for _, b := range h[baggageHeader] {
		if v, ok := BaggageMember(b, n.BaggageKey); ok && Valid(v) {
			return Lane(v), SourceBaggage
		}
	}
	if n.BaggageKey == "" {
		return "", SourceNone
	}
	if ts := h[traceStateHeader]; len(ts) > 0 {
		if v, ok := TraceStateMember(joinValues(ts), n.BaggageKey); ok && Valid(v) {
			return Lane(v), SourceTraceState
		}
	}
	if v, ok := prefixedValue(h, jaegerPrefix, n.BaggageKey); ok {
		return Lane(v), SourceJaeger
	}
	if v, ok := prefixedValue(h, otPrefix, n.BaggageKey); ok {
		return Lane(v), SourceOT
	}
	return "", SourceNone
}

// prefixedValue reads a Jaeger or OpenTracing baggage header. Their clients URL-escape
// values, so a percent-encoded value is decoded before it is checked.
func prefixedValue(h http.Header, prefix, key string) (string, bool) {
	v := strings.TrimSpace(headerValue(h, prefix, key))
	if v == "" {
		return "", false
	}
	if strings.IndexByte(v, '%') >= 0 {
		decoded, err := percentDecode(v)
		if err != nil {
			return "", false
		}
		v = decoded
	}
	return v, Valid(v)
}

// Write sets both primary lane forms on h: the lane header, and the baggage member (added to
// or replaced in an existing baggage header). A malformed baggage header is left untouched, as
// the W3C spec asks of intermediaries that cannot parse it. An empty lane writes nothing.
// Outbound hops use Write; the inbound hop into an app uses WriteAll.
func (n Names) Write(h http.Header, l Lane) {
	if l == "" {
		return
	}
	if vs := n.laneHeader(h); len(vs) != 1 || vs[0] != string(l) {
		h.Set(n.Header, string(l))
	} // else already so, as on most requests: no allocations for the key and the value
	// Indexed by the canonical name rather than through Values and Set, which canonicalise
	// it anew on every request.
	values := h[baggageHeader]
	if len(values) == 0 {
		h[baggageHeader] = n.memberValues(l)
		return
	}
	if len(values) == 1 && values[0] == n.member(l) {
		return // the member alone, as the hop before wrote it: nothing to change or allocate
	}
	updated, ok := SetBaggageMember(joinValues(values), n.BaggageKey, string(l))
	if !ok {
		return
	}
	h[baggageHeader] = []string{updated}
}

// WriteAll sets every lane form on h, for the inbound sidecar to do before it hands a request
// to the app, so that whatever context the app forwards carries the lane: both primary forms
// (Write), the tracestate member, and the uberctx-<BaggageKey> and ot-baggage-<BaggageKey>
// headers.
//
// The tracestate member goes to the front of the list, replacing an earlier one, as the spec
// asks of an updated member. A tracestate header is never created (without a traceparent it
// means nothing), and a malformed one is left untouched; nor is the member written when
// BaggageKey is not a valid tracestate key. An empty or invalid lane writes nothing.
func (n Names) WriteAll(h http.Header, l Lane) {
	if !Valid(string(l)) {
		return
	}
	n.Write(h, l)
	if n.BaggageKey == "" {
		return
	}
	if ts := h[traceStateHeader]; len(ts) > 0 {
		if updated, ok := SetTraceStateMember(joinValues(ts), n.BaggageKey, string(l)); ok {
			h[traceStateHeader] = []string{updated}
		}
	}
	// Both values in one allocation.
	vs := []string{string(l), string(l)}
	n.setPrefixed(h, n.jaegerKey, jaegerPrefix, vs[0:1:1])
	n.setPrefixed(h, n.otKey, otPrefix, vs[1:2:2])
}

// Strip removes every form of the lane from h: the lane header, the baggage and tracestate
// members (other members stay), and the Jaeger and OpenTracing baggage headers. Gateways use
// it on requests from outside the mesh when incoming lanes are not trusted, so no form can
// smuggle a lane in. A malformed baggage or tracestate header is dropped whole, since it cannot
// be edited member by member.
func (n Names) Strip(h http.Header) {
	if n.headerKey != "" {
		delete(h, n.headerKey)
	} else {
		h.Del(n.Header)
	}
	n.stripBaggage(h)
	if ts := h[traceStateHeader]; len(ts) > 0 {
		kept, removed, ok := removeTraceStateMember(joinValues(ts), n.BaggageKey)
		switch {
		case !ok || removed && kept == "":
			delete(h, traceStateHeader)
		case removed:
			h[traceStateHeader] = []string{kept}
		}
	}
	if n.BaggageKey != "" {
		n.delPrefixed(h, n.jaegerKey, jaegerPrefix)
		n.delPrefixed(h, n.otKey, otPrefix)
	}
}

func (n Names) stripBaggage(h http.Header) {
	values := h.Values("Baggage")
	if len(values) == 0 {
		return
	}
	kept, ok := RemoveBaggageMember(strings.Join(values, ","), n.BaggageKey)
	if !ok {
		// Malformed baggage cannot be edited member by member; drop it whole rather than let
		// a lane through.
		h.Del("Baggage")
		return
	}
	if kept == "" {
		h.Del("Baggage")
		return
	}
	h.Set("Baggage", kept)
}

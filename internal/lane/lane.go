// Package lane defines what a lane is on the wire and how a request's lane is read from and
// written to its headers.
//
// A lane travels in two forms, and the proxy writes both so that apps which forward only one
// of them (W3C baggage via OpenTelemetry, or the plain x-swimlane header) keep the lane:
//
//	x-swimlane: dev-feature1
//	baggage: swimlane=dev-feature1[,other=members]
//
// Values that do not match [A-Za-z0-9._-]{1,63} are ignored and never copied into other
// headers, so an untrusted value cannot smuggle text from one header into another.
package lane

import (
	"net/http"
	"strings"
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
}

// Default returns the conventional names: header x-swimlane, baggage member swimlane.
func Default() Names { return Names{Header: "x-swimlane", BaggageKey: "swimlane"} }

// Source says where a request's lane was found.
type Source string

const (
	SourceNone    Source = ""
	SourceHeader  Source = "header"
	SourceBaggage Source = "baggage"
)

// FromHeaders returns the request's lane: the lane header if it holds a valid value, else the
// baggage member if the baggage header is well-formed and the member valid, else "".
// The header wins over baggage because it is the explicit, user-facing form.
func (n Names) FromHeaders(h http.Header) (Lane, Source) {
	if v := h.Get(n.Header); v != "" {
		if v = strings.TrimSpace(v); Valid(v) {
			return Lane(v), SourceHeader
		}
	}
	for _, b := range h.Values("Baggage") {
		if v, ok := BaggageMember(b, n.BaggageKey); ok && Valid(v) {
			return Lane(v), SourceBaggage
		}
	}
	return "", SourceNone
}

// Write sets both lane forms on h: the lane header, and the baggage member (added to or
// replaced in an existing baggage header). A malformed baggage header is left untouched, as
// the W3C spec asks of intermediaries that cannot parse it. An empty lane writes nothing.
func (n Names) Write(h http.Header, l Lane) {
	if l == "" {
		return
	}
	h.Set(n.Header, string(l))
	values := h.Values("Baggage")
	if len(values) == 0 {
		h.Set("Baggage", n.BaggageKey+"="+string(l))
		return
	}
	joined := strings.Join(values, ",")
	updated, ok := SetBaggageMember(joined, n.BaggageKey, string(l))
	if !ok {
		return
	}
	h.Set("Baggage", updated)
}

// Strip removes every form of the lane from h: the lane header and the baggage member (other
// baggage members stay). Gateways use it on requests from outside the mesh when incoming
// lanes are not trusted, so no form can smuggle a lane in.
func (n Names) Strip(h http.Header) {
	h.Del(n.Header)
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

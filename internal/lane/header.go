package lane

import (
	"net/http"
	"strings"
)

// Header names the lane is carried in besides Names.Header, canonical so they index an
// http.Header directly.
const (
	baggageHeader    = "Baggage"
	traceStateHeader = "Tracestate"
	// jaegerPrefix and otPrefix are followed by Names.BaggageKey: uberctx-swimlane,
	// ot-baggage-swimlane.
	jaegerPrefix = "uberctx-"
	otPrefix     = "ot-baggage-"
)

// maxHeaderName bounds the names headerValues canonicalises on the stack; longer ones take the
// allocating path.
const maxHeaderName = 128

// headerValues returns h's values for the header named prefix+name, as h.Values would, but
// without allocating. http.Header.Get canonicalises a non-canonical name ("x-swimlane") into a
// new string on every call, and prefix+name would be another; here the canonical name is built
// in a stack buffer and looked up with m[string(bytes)], which the compiler does not copy.
func headerValues(h http.Header, prefix, name string) []string {
	var buf [maxHeaderName]byte
	if len(prefix)+len(name) > len(buf) {
		return h.Values(prefix + name)
	}
	b := append(append(buf[:0], prefix...), name...)
	for _, c := range b {
		if !validHeaderNameByte(c) {
			return h.Values(string(b)) // textproto leaves such a name as it is
		}
	}
	upper := true
	for i, c := range b {
		if upper && 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		} else if !upper && 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
	return h[string(b)]
}

// headerValue is h.Get(prefix+name) without allocating.
func headerValue(h http.Header, prefix, name string) string {
	if v := headerValues(h, prefix, name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// validHeaderNameByte reports whether c is an RFC 7230 tchar, as textproto checks before
// canonicalising.
func validHeaderNameByte(c byte) bool { return tokenByte[c] }

// joinValues joins a header's lines into one list value; one line, the common case, is
// returned as it is.
func joinValues(values []string) string {
	if len(values) == 1 {
		return values[0]
	}
	return strings.Join(values, ",")
}

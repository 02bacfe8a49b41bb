package tracelane

import "net/http"

// Canonical header names, so that lookups index the http.Header map directly: Header.Get
// would canonicalise (and, for a lower-case name, allocate) on every call.
const (
	hdrTraceparent = "Traceparent"
	hdrB3          = "B3"
	hdrB3TraceID   = "X-B3-Traceid"
	hdrRequestID   = "X-Request-Id"
)

// RequestIDPrefix marks a key taken from x-request-id, so that it cannot collide with a trace
// id (which is 32 hex digits).
const RequestIDPrefix = "rid:"

// MaxRequestID is the longest x-request-id used as a key; longer ones are ignored.
const MaxRequestID = 128

// zeroPad turns a 64-bit (16 hex) B3 trace id into the 128-bit form that OpenTelemetry and
// the W3C traceparent use for the same trace.
const zeroPad = "0000000000000000"

// TraceID returns the key that identifies h's trace, from the first of these that is present
// and valid:
//
//   - W3C traceparent, version-traceid-parentid-flags: the 32-hex trace id.
//   - B3 single header, b3: traceid-spanid[-sampled[-parentspanid]].
//   - B3 multi header, x-b3-traceid.
//   - x-request-id, any value of 1 to 128 bytes, returned as "rid:" + value.
//
// Trace ids are returned in lower case, and 64-bit B3 ids are left-padded with zeros to 32
// hex digits, so the same trace gives the same key whichever format carried it. All-zero ids
// are invalid. It returns "" when none is found.
//
// It allocates only to pad a 64-bit B3 id, to lower-case an upper-case id, or to prefix a
// request id; a well-formed traceparent costs nothing.
func TraceID(h http.Header) string {
	if v := h[hdrTraceparent]; len(v) == 1 { // the spec treats a repeated traceparent as invalid
		if id, ok := fromTraceparent(v[0]); ok {
			return id
		}
	}
	if v := h[hdrB3]; len(v) > 0 {
		if id, ok := fromB3(v[0]); ok {
			return id
		}
	}
	if v := h[hdrB3TraceID]; len(v) > 0 {
		if id, ok := normalise(v[0]); ok {
			return id
		}
	}
	if v := h[hdrRequestID]; len(v) > 0 && v[0] != "" && len(v[0]) <= MaxRequestID {
		return RequestIDPrefix + v[0]
	}
	return ""
}

// fromTraceparent parses a W3C traceparent,
// https://www.w3.org/TR/trace-context/#traceparent-header:
//
//	version "-" trace-id "-" parent-id "-" trace-flags
//	2HEX      32HEX        16HEX         2HEX
//
// Version ff is invalid. Version 00 is exactly 55 bytes; a later version may be longer, its
// extra fields following a "-", and is parsed as far as version 00 goes.
func fromTraceparent(s string) (string, bool) {
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return "", false
	}
	version := s[:2]
	if !isHex(version) || version == "ff" || version == "FF" {
		return "", false
	}
	if version == "00" && len(s) != 55 || len(s) > 55 && s[55] != '-' {
		return "", false
	}
	if !isHex(s[53:55]) || !isHex(s[36:52]) || isZero(s[36:52]) {
		return "", false
	}
	return normalise(s[3:35])
}

// fromB3 parses the B3 single header, https://github.com/openzipkin/b3-propagation:
//
//	traceid-spanid[-sampled[-parentspanid]]
//
// A header of just the sampling state ("0", "1", "d") carries no trace id.
func fromB3(s string) (string, bool) {
	var traceID string
	switch {
	case len(s) > 32 && s[32] == '-':
		traceID, s = s[:32], s[33:]
	case len(s) > 16 && s[16] == '-':
		traceID, s = s[:16], s[17:]
	default:
		return "", false
	}
	if len(s) < 16 || !isHex(s[:16]) || isZero(s[:16]) {
		return "", false
	}
	switch s = s[16:]; {
	case s == "":
	case len(s) == 2 && s[0] == '-' && isSampled(s[1]):
	case len(s) == 19 && s[0] == '-' && isSampled(s[1]) && s[2] == '-' && isHex(s[3:]):
	default:
		return "", false
	}
	return normalise(traceID)
}

func isSampled(c byte) bool { return c == '0' || c == '1' || c == 'd' }

// normalise checks a 16- or 32-hex trace id and returns it as 32 lower-case hex digits.
func normalise(id string) (string, bool) {
	if len(id) != 16 && len(id) != 32 || !isHex(id) || isZero(id) {
		return "", false
	}
	if hasUpper(id) {
		b := make([]byte, 0, 32)
		if len(id) == 16 {
			b = append(b, zeroPad...)
		}
		for i := 0; i < len(id); i++ {
			c := id[i]
			if 'A' <= c && c <= 'F' {
				c += 'a' - 'A'
			}
			b = append(b, c)
		}
		return string(b), true
	}
	if len(id) == 16 {
		return zeroPad + id, true
	}
	return id, true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func isZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'F' {
			return true
		}
	}
	return false
}

package tracelane

import (
	"net/http"
	"strings"
	"testing"
)

const (
	w3cID = "0af7651916cd43dd8448eb211c80319c"
	tp    = "00-" + w3cID + "-b7ad6b7169203331-01"
	b3ID  = "463ac35c9f6413ad"
)

func TestTraceID(t *testing.T) {
	tests := []struct {
		name string
		give http.Header
		want string
	}{
		{name: "none", give: http.Header{}, want: ""},

		// W3C traceparent.
		{name: "traceparent", give: http.Header{"Traceparent": {tp}}, want: w3cID},
		{name: "traceparent not sampled", give: http.Header{"Traceparent": {"00-" + w3cID + "-b7ad6b7169203331-00"}}, want: w3cID},
		{name: "traceparent upper case lowered", give: http.Header{"Traceparent": {"00-" + strings.ToUpper(w3cID) + "-B7AD6B7169203331-01"}}, want: w3cID},
		{name: "traceparent future version, longer", give: http.Header{"Traceparent": {"cc-" + w3cID + "-b7ad6b7169203331-01-what-the-future-holds"}}, want: w3cID},
		{name: "traceparent future version, 55", give: http.Header{"Traceparent": {"01-" + w3cID + "-b7ad6b7169203331-01"}}, want: w3cID},
		{name: "traceparent future version, no dash after flags", give: http.Header{"Traceparent": {"01-" + w3cID + "-b7ad6b7169203331-01x"}}, want: ""},
		{name: "traceparent version 00 too long", give: http.Header{"Traceparent": {tp + "-00"}}, want: ""},
		{name: "traceparent too short", give: http.Header{"Traceparent": {tp[:54]}}, want: ""},
		{name: "traceparent version ff", give: http.Header{"Traceparent": {"ff" + tp[2:]}}, want: ""},
		{name: "traceparent bad version", give: http.Header{"Traceparent": {"0x" + tp[2:]}}, want: ""},
		{name: "traceparent zero trace id", give: http.Header{"Traceparent": {"00-" + strings.Repeat("0", 32) + "-b7ad6b7169203331-01"}}, want: ""},
		{name: "traceparent zero parent id", give: http.Header{"Traceparent": {"00-" + w3cID + "-0000000000000000-01"}}, want: ""},
		{name: "traceparent non-hex trace id", give: http.Header{"Traceparent": {"00-" + w3cID[:31] + "g-b7ad6b7169203331-01"}}, want: ""},
		{name: "traceparent non-hex parent id", give: http.Header{"Traceparent": {"00-" + w3cID + "-b7ad6b716920333z-01"}}, want: ""},
		{name: "traceparent non-hex flags", give: http.Header{"Traceparent": {"00-" + w3cID + "-b7ad6b7169203331-0g"}}, want: ""},
		{name: "traceparent bad separator", give: http.Header{"Traceparent": {"00_" + w3cID + "-b7ad6b7169203331-01"}}, want: ""},
		{name: "traceparent repeated is invalid", give: http.Header{"Traceparent": {tp, tp}}, want: ""},

		// B3 single header.
		{name: "b3 128-bit", give: http.Header{"B3": {w3cID + "-e457b5a2e4d86bd1-1"}}, want: w3cID},
		{name: "b3 64-bit padded", give: http.Header{"B3": {b3ID + "-e457b5a2e4d86bd1"}}, want: "0000000000000000" + b3ID},
		{name: "b3 with parent", give: http.Header{"B3": {b3ID + "-e457b5a2e4d86bd1-d-05e3ac9a4f6e3b90"}}, want: "0000000000000000" + b3ID},
		{name: "b3 not sampled", give: http.Header{"B3": {b3ID + "-e457b5a2e4d86bd1-0"}}, want: "0000000000000000" + b3ID},
		{name: "b3 upper case", give: http.Header{"B3": {strings.ToUpper(b3ID) + "-e457b5a2e4d86bd1"}}, want: "0000000000000000" + b3ID},
		{name: "b3 sampling only", give: http.Header{"B3": {"1"}}, want: ""},
		{name: "b3 deny only", give: http.Header{"B3": {"0"}}, want: ""},
		{name: "b3 no span id", give: http.Header{"B3": {b3ID}}, want: ""},
		{name: "b3 short span id", give: http.Header{"B3": {b3ID + "-e457b5a2e4d86bd"}}, want: ""},
		{name: "b3 zero span id", give: http.Header{"B3": {b3ID + "-0000000000000000"}}, want: ""},
		{name: "b3 zero trace id", give: http.Header{"B3": {"0000000000000000-e457b5a2e4d86bd1"}}, want: ""},
		{name: "b3 bad sampling", give: http.Header{"B3": {b3ID + "-e457b5a2e4d86bd1-2"}}, want: ""},
		{name: "b3 short parent", give: http.Header{"B3": {b3ID + "-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b9"}}, want: ""},
		{name: "b3 parent without sampling", give: http.Header{"B3": {b3ID + "-e457b5a2e4d86bd1-05e3ac9a4f6e3b90"}}, want: ""},
		{name: "b3 24-hex trace id", give: http.Header{"B3": {strings.Repeat("a", 24) + "-e457b5a2e4d86bd1"}}, want: ""},

		// B3 multi headers.
		{name: "x-b3-traceid 128-bit", give: http.Header{"X-B3-Traceid": {w3cID}, "X-B3-Spanid": {"e457b5a2e4d86bd1"}}, want: w3cID},
		{name: "x-b3-traceid 64-bit padded", give: http.Header{"X-B3-Traceid": {b3ID}}, want: "0000000000000000" + b3ID},
		{name: "x-b3-traceid bad length", give: http.Header{"X-B3-Traceid": {b3ID + "0"}}, want: ""},
		{name: "x-b3-traceid non-hex", give: http.Header{"X-B3-Traceid": {"463ac35c9f6413az"}}, want: ""},
		{name: "x-b3-traceid zero", give: http.Header{"X-B3-Traceid": {"0000000000000000"}}, want: ""},

		// x-request-id.
		{name: "request id", give: http.Header{"X-Request-Id": {"f9b1-4a2c"}}, want: "rid:f9b1-4a2c"},
		{name: "request id that looks like a trace id stays apart", give: http.Header{"X-Request-Id": {w3cID}}, want: "rid:" + w3cID},
		{name: "request id 128", give: http.Header{"X-Request-Id": {strings.Repeat("r", 128)}}, want: "rid:" + strings.Repeat("r", 128)},
		{name: "request id 129", give: http.Header{"X-Request-Id": {strings.Repeat("r", 129)}}, want: ""},
		{name: "request id empty", give: http.Header{"X-Request-Id": {""}}, want: ""},

		// Precedence, and invalid values falling through.
		{name: "traceparent wins", give: http.Header{"Traceparent": {tp}, "B3": {b3ID + "-e457b5a2e4d86bd1"}, "X-B3-Traceid": {b3ID}, "X-Request-Id": {"r"}}, want: w3cID},
		{name: "b3 wins over multi", give: http.Header{"B3": {b3ID + "-e457b5a2e4d86bd1"}, "X-B3-Traceid": {w3cID}, "X-Request-Id": {"r"}}, want: "0000000000000000" + b3ID},
		{name: "multi wins over request id", give: http.Header{"X-B3-Traceid": {w3cID}, "X-Request-Id": {"r"}}, want: w3cID},
		{name: "invalid traceparent falls to b3", give: http.Header{"Traceparent": {"garbage"}, "B3": {w3cID + "-e457b5a2e4d86bd1"}}, want: w3cID},
		{name: "invalid everything falls to request id", give: http.Header{"Traceparent": {"garbage"}, "B3": {"1"}, "X-B3-Traceid": {"xyz"}, "X-Request-Id": {"r"}}, want: "rid:r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TraceID(tt.give); got != tt.want {
				t.Errorf("TraceID = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTraceIDSameTraceSameKey checks that a trace started by a 64-bit B3 tracer and continued
// by a W3C one (which pads the id, as OpenTelemetry's B3 propagator does) gives one key.
func TestTraceIDSameTraceSameKey(t *testing.T) {
	fromB3 := TraceID(http.Header{"B3": {b3ID + "-e457b5a2e4d86bd1-1"}})
	fromMulti := TraceID(http.Header{"X-B3-Traceid": {strings.ToUpper(b3ID)}})
	fromW3C := TraceID(http.Header{"Traceparent": {"00-0000000000000000" + b3ID + "-e457b5a2e4d86bd1-01"}})
	if fromB3 == "" || fromB3 != fromW3C || fromMulti != fromW3C {
		t.Fatalf("b3 %q, x-b3-traceid %q, traceparent %q: want one key", fromB3, fromMulti, fromW3C)
	}
}

func TestTraceIDAllocs(t *testing.T) {
	for name, h := range map[string]http.Header{
		"traceparent":    {"Traceparent": {tp}},
		"b3 128-bit":     {"B3": {w3cID + "-e457b5a2e4d86bd1-1"}},
		"x-b3 128-bit":   {"X-B3-Traceid": {w3cID}},
		"nothing usable": {"Traceparent": {"junk"}, "Accept": {"*/*"}},
	} {
		if a := testing.AllocsPerRun(100, func() { TraceID(h) }); a != 0 {
			t.Errorf("%s: %v allocs per TraceID, want 0", name, a)
		}
	}
}

func BenchmarkTraceID(b *testing.B) {
	cases := []struct {
		name string
		h    http.Header
	}{
		{name: "traceparent", h: http.Header{"Traceparent": {tp}, "Tracestate": {"congo=t61rcWkgMzE"}}},
		{name: "b3-single-64bit", h: http.Header{"B3": {b3ID + "-e457b5a2e4d86bd1-1"}}},
		{name: "b3-multi-128bit", h: http.Header{"X-B3-Traceid": {w3cID}, "X-B3-Spanid": {"e457b5a2e4d86bd1"}}},
		{name: "x-request-id", h: http.Header{"X-Request-Id": {"3f1c9a0e-7b2d-4c55-9e8a-1d2f3a4b5c6d"}}},
		{name: "none", h: http.Header{"Accept": {"*/*"}}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				TraceID(c.h)
			}
		})
	}
}

// FuzzTraceID checks TraceID never panics and returns only "", 32 lower-case non-zero hex
// digits, or a prefixed request id.
func FuzzTraceID(f *testing.F) {
	f.Add(tp, b3ID+"-e457b5a2e4d86bd1-1", w3cID, "r")
	f.Add("ff-x", "1", "", "")
	f.Add("cc-"+w3cID+"-b7ad6b7169203331-01-x", b3ID+"-e457b5a2e4d86bd1-d-05e3ac9a4f6e3b90", b3ID, "")
	f.Fuzz(func(t *testing.T, traceparent, b3, b3TraceID, requestID string) {
		id := TraceID(http.Header{"Traceparent": {traceparent}, "B3": {b3}, "X-B3-Traceid": {b3TraceID}, "X-Request-Id": {requestID}})
		switch {
		case id == "":
		case strings.HasPrefix(id, RequestIDPrefix):
			if id[len(RequestIDPrefix):] != requestID || len(requestID) > MaxRequestID {
				t.Fatalf("request id key %q from %q", id, requestID)
			}
		default:
			if len(id) != 32 || isZero(id) || strings.ToLower(id) != id || !isHex(id) {
				t.Fatalf("trace id %q", id)
			}
		}
	})
}

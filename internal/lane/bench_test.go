package lane

import (
	"net/http"
	"testing"
)

func BenchmarkFromHeaders(b *testing.B) {
	traceparent := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	cases := []struct {
		name string
		h    http.Header
		want Lane
	}{
		{name: "x-swimlane", h: http.Header{"X-Swimlane": {"dev-feature1"}, "Traceparent": {traceparent}}, want: "dev-feature1"},
		{name: "baggage-5-members", h: http.Header{"Baggage": {"user=1234;p=1, tenant=acme, region=eu-west-1, swimlane=dev-feature1, session=abcdef"}, "Traceparent": {traceparent}}, want: "dev-feature1"},
		{name: "tracestate-3-members", h: http.Header{"Tracestate": {"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,swimlane=dev-feature1"}, "Traceparent": {traceparent}}, want: "dev-feature1"},
		{name: "ot-baggage", h: http.Header{"Ot-Baggage-Swimlane": {"dev-feature1"}, "Traceparent": {traceparent}}, want: "dev-feature1"},
		{name: "none-only-traceparent", h: http.Header{"Traceparent": {traceparent}}, want: ""},
	}
	n := Default()
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if l, _ := n.FromHeaders(c.h); l != c.want {
					b.Fatalf("lane %q, want %q", l, c.want)
				}
			}
		})
	}
}

func BenchmarkWriteAll(b *testing.B) {
	n := Default()
	b.ReportAllocs()
	for b.Loop() {
		h := http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, "Tracestate": {"congo=t61rcWkgMzE"}}
		n.WriteAll(h, "dev-feature1")
	}
}

// TestFromHeadersAllocs pins the zero-allocation paths.
func TestFromHeadersAllocs(t *testing.T) {
	n := Default()
	for name, h := range map[string]http.Header{
		"header":     {"X-Swimlane": {"f1"}},
		"baggage":    {"Baggage": {"a=1,swimlane=f1"}},
		"tracestate": {"Tracestate": {"a=1,swimlane=f1"}},
		"jaeger":     {"Uberctx-Swimlane": {"f1"}},
		"ot":         {"Ot-Baggage-Swimlane": {"f1"}},
		"none":       {"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}},
	} {
		if a := testing.AllocsPerRun(100, func() { n.FromHeaders(h) }); a != 0 {
			t.Errorf("%s: %v allocs per FromHeaders, want 0", name, a)
		}
	}
}

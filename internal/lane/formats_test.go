package lane

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func TestFromHeadersFormats(t *testing.T) {
	long := strings.Repeat("x", 64)
	var many []string
	for i := 0; i < 32; i++ {
		many = append(many, "k"+string(rune('a'+i%26))+strings.Repeat("z", i/26)+"=v")
	}
	tests := []struct {
		name       string
		give       http.Header
		want       Lane
		wantSource Source
	}{
		// Each format alone.
		{name: "tracestate only", give: http.Header{"Tracestate": {"swimlane=dev-ts"}}, want: "dev-ts", wantSource: SourceTraceState},
		{name: "tracestate among vendors", give: http.Header{"Tracestate": {"congo=t61rcWkgMzE, swimlane=f1 ,rojo=00f067aa0ba902b7"}}, want: "f1", wantSource: SourceTraceState},
		{name: "tracestate multi-tenant keys around", give: http.Header{"Tracestate": {"1tenant@vendor=x,swimlane=f1"}}, want: "f1", wantSource: SourceTraceState},
		{name: "tracestate empty members and tabs", give: http.Header{"Tracestate": {" ,\tswimlane=f1\t, ,"}}, want: "f1", wantSource: SourceTraceState},
		{name: "tracestate over two header lines", give: http.Header{"Tracestate": {"a=1", "swimlane=f2"}}, want: "f2", wantSource: SourceTraceState},
		{name: "tracestate 32 members", give: http.Header{"Tracestate": {strings.Join(append(many[:31:31], "swimlane=f1"), ",")}}, want: "f1", wantSource: SourceTraceState},
		{name: "jaeger only", give: http.Header{"Uberctx-Swimlane": {"dev-j"}}, want: "dev-j", wantSource: SourceJaeger},
		{name: "jaeger url-escaped", give: http.Header{"Uberctx-Swimlane": {"dev%2Dj"}}, want: "dev-j", wantSource: SourceJaeger},
		{name: "ot only", give: http.Header{"Ot-Baggage-Swimlane": {" dev-ot "}}, want: "dev-ot", wantSource: SourceOT},

		// Precedence: header > baggage > tracestate > jaeger > ot.
		{name: "header wins over all", give: http.Header{"X-Swimlane": {"h"}, "Baggage": {"swimlane=b"}, "Tracestate": {"swimlane=t"}, "Uberctx-Swimlane": {"j"}, "Ot-Baggage-Swimlane": {"o"}}, want: "h", wantSource: SourceHeader},
		{name: "baggage wins over tracestate", give: http.Header{"Baggage": {"swimlane=b"}, "Tracestate": {"swimlane=t"}, "Uberctx-Swimlane": {"j"}, "Ot-Baggage-Swimlane": {"o"}}, want: "b", wantSource: SourceBaggage},
		{name: "tracestate wins over jaeger", give: http.Header{"Tracestate": {"swimlane=t"}, "Uberctx-Swimlane": {"j"}, "Ot-Baggage-Swimlane": {"o"}}, want: "t", wantSource: SourceTraceState},
		{name: "jaeger wins over ot", give: http.Header{"Uberctx-Swimlane": {"j"}, "Ot-Baggage-Swimlane": {"o"}}, want: "j", wantSource: SourceJaeger},

		// Invalid values fall through to the next form.
		{name: "invalid everywhere but ot", give: http.Header{"X-Swimlane": {"bad lane"}, "Baggage": {"swimlane=a%2Cb"}, "Tracestate": {"swimlane=a b"}, "Uberctx-Swimlane": {long}, "Ot-Baggage-Swimlane": {"o"}}, want: "o", wantSource: SourceOT},
		{name: "invalid tracestate lane falls to jaeger", give: http.Header{"Tracestate": {"swimlane=a/b"}, "Uberctx-Swimlane": {"j"}}, want: "j", wantSource: SourceJaeger},
		{name: "invalid jaeger ignored", give: http.Header{"Uberctx-Swimlane": {"a,b"}}, want: "", wantSource: SourceNone},
		{name: "jaeger bad escape ignored", give: http.Header{"Uberctx-Swimlane": {"a%zz"}}, want: "", wantSource: SourceNone},
		{name: "jaeger escape of a bad character ignored", give: http.Header{"Uberctx-Swimlane": {"a%0D%0Ab"}}, want: "", wantSource: SourceNone},
		{name: "invalid ot ignored", give: http.Header{"Ot-Baggage-Swimlane": {long}}, want: "", wantSource: SourceNone},
		{name: "empty jaeger ignored", give: http.Header{"Uberctx-Swimlane": {""}, "Ot-Baggage-Swimlane": {"o"}}, want: "o", wantSource: SourceOT},

		// Malformed tracestate is ignored whole.
		{name: "tracestate member without =", give: http.Header{"Tracestate": {"swimlane=f1,junk"}}, want: "", wantSource: SourceNone},
		{name: "tracestate uppercase key elsewhere", give: http.Header{"Tracestate": {"Vendor=1,swimlane=f1"}}, want: "", wantSource: SourceNone},
		{name: "tracestate key starting with digit", give: http.Header{"Tracestate": {"1vendor=1,swimlane=f1"}}, want: "", wantSource: SourceNone},
		{name: "tracestate empty value", give: http.Header{"Tracestate": {"a=,swimlane=f1"}}, want: "", wantSource: SourceNone},
		{name: "tracestate value with =", give: http.Header{"Tracestate": {"a=b=c,swimlane=f1"}}, want: "", wantSource: SourceNone},
		{name: "tracestate duplicate key", give: http.Header{"Tracestate": {"swimlane=f1,swimlane=f2"}}, want: "", wantSource: SourceNone},
		{name: "tracestate 33 members", give: http.Header{"Tracestate": {strings.Join(append(many[:32:32], "swimlane=f1"), ",")}}, want: "", wantSource: SourceNone},
		{name: "tracestate system id too long", give: http.Header{"Tracestate": {"t@abcdefghijklmno=1,swimlane=f1"}}, want: "", wantSource: SourceNone},
		{name: "tracestate control character", give: http.Header{"Tracestate": {"a=\x01,swimlane=f1"}}, want: "", wantSource: SourceNone},
		{name: "malformed tracestate falls to jaeger", give: http.Header{"Tracestate": {"swimlane=t,,=x"}, "Uberctx-Swimlane": {"j"}}, want: "j", wantSource: SourceJaeger},

		// Header names are case-insensitive on the wire; net/http canonicalises them.
		{name: "names are matched canonically", give: canonical(map[string]string{"UBERCTX-SWIMLANE": "j"}), want: "j", wantSource: SourceJaeger},
		{name: "other baggage keys are not ours", give: http.Header{"Uberctx-Other": {"j"}, "Ot-Baggage-X-Swimlane": {"o"}, "Tracestate": {"x-swimlane=t"}}, want: "", wantSource: SourceNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, src := Default().FromHeaders(tt.give)
			if got != tt.want || src != tt.wantSource {
				t.Errorf("FromHeaders = %q (%s), want %q (%s)", got, src, tt.want, tt.wantSource)
			}
		})
	}
}

func canonical(m map[string]string) http.Header {
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}

func TestFromHeadersConfiguredKey(t *testing.T) {
	n := Names{Header: "X-Env", BaggageKey: "env"}
	for _, h := range []http.Header{
		{"Tracestate": {"env=blue"}},
		{"Uberctx-Env": {"blue"}},
		{"Ot-Baggage-Env": {"blue"}},
	} {
		if l, _ := n.FromHeaders(h); l != "blue" {
			t.Errorf("FromHeaders(%v) = %q, want blue", h, l)
		}
	}
	// A key that is not a tracestate key (uppercase) is never looked for there.
	n = Names{Header: "X-Env", BaggageKey: "Env"}
	if l, src := n.FromHeaders(http.Header{"Tracestate": {"Env=blue"}}); l != "" {
		t.Errorf("lane %q (%s) from an invalid tracestate key", l, src)
	}
	if l, _ := n.FromHeaders(http.Header{"Uberctx-Env": {"blue"}}); l != "blue" {
		t.Errorf("jaeger lane = %q, want blue", l)
	}
}

func TestWriteAll(t *testing.T) {
	var many []string
	for i := 0; i < 32; i++ {
		many = append(many, "k"+string(rune('a'+i%26))+strings.Repeat("z", i/26)+"=v")
	}
	tests := []struct {
		name           string
		give           http.Header
		lane           Lane
		wantTraceState []string // nil: no header
		wantBaggage    string
	}{
		{name: "no tracestate: none created", give: http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}, lane: "f1", wantBaggage: "swimlane=f1"},
		{name: "added at the front", give: http.Header{"Tracestate": {"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}}, lane: "f1", wantTraceState: []string{"swimlane=f1,congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}, wantBaggage: "swimlane=f1"},
		{name: "updated member moves to the front", give: http.Header{"Tracestate": {"congo=t61, swimlane=old ,rojo=00f"}}, lane: "new", wantTraceState: []string{"swimlane=new,congo=t61,rojo=00f"}, wantBaggage: "swimlane=new"},
		{name: "empty tracestate gets the member", give: http.Header{"Tracestate": {""}}, lane: "f1", wantTraceState: []string{"swimlane=f1"}, wantBaggage: "swimlane=f1"},
		{name: "header lines joined", give: http.Header{"Tracestate": {"a=1", "b=2"}}, lane: "f1", wantTraceState: []string{"swimlane=f1,a=1,b=2"}, wantBaggage: "swimlane=f1"},
		{name: "malformed tracestate untouched", give: http.Header{"Tracestate": {"a=1,junk"}}, lane: "f1", wantTraceState: []string{"a=1,junk"}, wantBaggage: "swimlane=f1"},
		{name: "duplicate keys untouched", give: http.Header{"Tracestate": {"swimlane=a,swimlane=b"}}, lane: "f1", wantTraceState: []string{"swimlane=a,swimlane=b"}, wantBaggage: "swimlane=f1"},
		{name: "full list drops the right-most member", give: http.Header{"Tracestate": {strings.Join(many, ",")}}, lane: "f1", wantTraceState: []string{"swimlane=f1," + strings.Join(many[:31], ",")}, wantBaggage: "swimlane=f1"},
		{name: "full list with our member keeps all others", give: http.Header{"Tracestate": {strings.Join(append(many[:31:31], "swimlane=old"), ",")}}, lane: "f1", wantTraceState: []string{"swimlane=f1," + strings.Join(many[:31], ",")}, wantBaggage: "swimlane=f1"},
		{name: "baggage kept", give: http.Header{"Baggage": {"u=1"}, "Tracestate": {"a=1"}}, lane: "f1", wantTraceState: []string{"swimlane=f1,a=1"}, wantBaggage: "u=1,swimlane=f1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.give.Clone()
			Default().WriteAll(h, tt.lane)
			if got := h.Get("X-Swimlane"); got != string(tt.lane) {
				t.Errorf("x-swimlane = %q, want %q", got, tt.lane)
			}
			if got := h.Get("Baggage"); got != tt.wantBaggage {
				t.Errorf("baggage = %q, want %q", got, tt.wantBaggage)
			}
			if got := h.Values("Tracestate"); strings.Join(got, "|") != strings.Join(tt.wantTraceState, "|") || (got == nil) != (tt.wantTraceState == nil) {
				t.Errorf("tracestate = %q, want %q", got, tt.wantTraceState)
			}
			if got := h.Values("Uberctx-Swimlane"); len(got) != 1 || got[0] != string(tt.lane) {
				t.Errorf("uberctx-swimlane = %q, want %q", got, tt.lane)
			}
			if got := h.Values("Ot-Baggage-Swimlane"); len(got) != 1 || got[0] != string(tt.lane) {
				t.Errorf("ot-baggage-swimlane = %q, want %q", got, tt.lane)
			}
			// Whatever single form an app forwards, the lane reads back from it.
			for _, name := range []string{"X-Swimlane", "Baggage", "Tracestate", "Uberctx-Swimlane", "Ot-Baggage-Swimlane"} {
				if name == "Tracestate" && !strings.HasPrefix(h.Get("Tracestate")+",", "swimlane="+string(tt.lane)+",") {
					continue // none written, or a malformed one left alone
				}
				only := http.Header{name: h[name]}
				if got, _ := Default().FromHeaders(only); got != tt.lane {
					t.Errorf("forwarding only %s: lane %q, want %q", name, got, tt.lane)
				}
			}
		})
	}
}

func TestWriteAllReplacesEveryForm(t *testing.T) {
	h := http.Header{
		"X-Swimlane":          {"old"},
		"Baggage":             {"swimlane=old"},
		"Tracestate":          {"swimlane=old"},
		"Uberctx-Swimlane":    {"old", "older"},
		"Ot-Baggage-Swimlane": {"old"},
	}
	Default().WriteAll(h, "new")
	want := http.Header{
		"X-Swimlane":          {"new"},
		"Baggage":             {"swimlane=new"},
		"Tracestate":          {"swimlane=new"},
		"Uberctx-Swimlane":    {"new"},
		"Ot-Baggage-Swimlane": {"new"},
	}
	if !equalHeaders(h, want) {
		t.Fatalf("headers = %v, want %v", h, want)
	}
}

func TestWriteAllNoLane(t *testing.T) {
	for _, l := range []Lane{"", "bad lane", "a,b=c"} {
		h := http.Header{"Tracestate": {"a=1"}}
		Default().WriteAll(h, l)
		if want := (http.Header{"Tracestate": {"a=1"}}); !equalHeaders(h, want) {
			t.Errorf("WriteAll(%q) wrote %v", l, h)
		}
	}
}

func TestWriteKeepsToPrimaryForms(t *testing.T) {
	h := http.Header{"Tracestate": {"a=1"}}
	Default().Write(h, "f1")
	want := http.Header{"X-Swimlane": {"f1"}, "Baggage": {"swimlane=f1"}, "Tracestate": {"a=1"}}
	if !equalHeaders(h, want) {
		t.Fatalf("headers = %v, want %v", h, want)
	}
}

func TestStrip(t *testing.T) {
	tests := []struct {
		name string
		give http.Header
		want http.Header
	}{
		{name: "nothing", give: http.Header{"A": {"1"}}, want: http.Header{"A": {"1"}}},
		{
			name: "every form",
			give: http.Header{
				"X-Swimlane":          {"h"},
				"Baggage":             {"u=1,swimlane=b"},
				"Tracestate":          {"congo=t61,swimlane=t"},
				"Uberctx-Swimlane":    {"j"},
				"Ot-Baggage-Swimlane": {"o"},
				"Uberctx-User":        {"7"},
				"Traceparent":         {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
			},
			want: http.Header{
				"Baggage":      {"u=1"},
				"Tracestate":   {"congo=t61"},
				"Uberctx-User": {"7"},
				"Traceparent":  {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
			},
		},
		{name: "tracestate without our member untouched", give: http.Header{"Tracestate": {" a=1 ,, b=2"}}, want: http.Header{"Tracestate": {" a=1 ,, b=2"}}},
		{name: "tracestate left empty is dropped", give: http.Header{"Tracestate": {"swimlane=t"}}, want: http.Header{}},
		{name: "tracestate over two lines", give: http.Header{"Tracestate": {"a=1", "swimlane=t,b=2"}}, want: http.Header{"Tracestate": {"a=1,b=2"}}},
		{name: "malformed tracestate dropped", give: http.Header{"Tracestate": {"swimlane=t,junk"}}, want: http.Header{}},
		{name: "duplicate-key tracestate dropped", give: http.Header{"Tracestate": {"swimlane=a,swimlane=b"}}, want: http.Header{}},
		{name: "all jaeger and ot lines", give: http.Header{"Uberctx-Swimlane": {"a", "b"}, "Ot-Baggage-Swimlane": {"c", "d"}}, want: http.Header{}},
		{name: "malformed baggage dropped", give: http.Header{"Baggage": {"swimlane=b,=x"}}, want: http.Header{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.give.Clone()
			Default().Strip(h)
			if !equalHeaders(h, tt.want) {
				t.Errorf("headers = %v, want %v", h, tt.want)
			}
			if l, src := Default().FromHeaders(h); l != "" {
				t.Errorf("lane %q (%s) survived Strip", l, src)
			}
		})
	}
}

// TestStripThenNoSmuggling checks that once a gateway strips a request, no form, however
// written, carries a lane: every header that FromHeaders could read is gone or lane-free.
func TestStripThenNoSmuggling(t *testing.T) {
	attempts := []http.Header{
		{"Baggage": {"swimlane=evil"}},
		{"Baggage": {"a=1", "swimlane=evil"}},
		{"Baggage": {"swimlane=evil;prop=1"}},
		{"Baggage": {"swimlane=ev%69l"}},
		{"Tracestate": {"swimlane=evil"}},
		{"Tracestate": {"a=1", "swimlane=evil"}},
		{"Tracestate": {"\tswimlane=evil\t"}},
		{"Uberctx-Swimlane": {"evil"}},
		{"Uberctx-Swimlane": {"ev%69l"}},
		{"Ot-Baggage-Swimlane": {"evil"}},
		canonical(map[string]string{"uberctx-swimlane": "evil", "OT-BAGGAGE-SWIMLANE": "evil"}),
		{"X-Swimlane": {"evil", "evil2"}, "Baggage": {"swimlane=evil"}, "Tracestate": {"swimlane=evil"}, "Uberctx-Swimlane": {"evil"}, "Ot-Baggage-Swimlane": {"evil"}},
	}
	for _, h := range attempts {
		before := h.Clone()
		Default().Strip(h)
		if l, src := Default().FromHeaders(h); l != "" {
			t.Errorf("Strip(%v) left lane %q in %s: %v", before, l, src, h)
		}
		// And a lane written afterwards is the only one present.
		Default().WriteAll(h, "trusted")
		if l, _ := Default().FromHeaders(h); l != "trusted" {
			t.Errorf("after Strip and WriteAll of %v: lane %q", before, l)
		}
	}
}

func TestTraceStateMembers(t *testing.T) {
	if v, ok := TraceStateMember("a=1, b=x y ,c=3", "b"); !ok || v != "x y" {
		t.Errorf("TraceStateMember = %q, %v", v, ok)
	}
	if _, ok := TraceStateMember("a=1", "b"); ok {
		t.Error("absent member found")
	}
	if _, ok := SetTraceStateMember("a=1", "Bad", "v"); ok {
		t.Error("SetTraceStateMember accepted an invalid key")
	}
	if _, ok := SetTraceStateMember("a=1", "k", "v,w"); ok {
		t.Error("SetTraceStateMember accepted an invalid value")
	}
	if out, ok := RemoveTraceStateMember("a=1,b=2,c=3", "b"); !ok || out != "a=1,c=3" {
		t.Errorf("RemoveTraceStateMember = %q, %v", out, ok)
	}
	if _, ok := RemoveTraceStateMember("a=1,b", "a"); ok {
		t.Error("RemoveTraceStateMember accepted a malformed header")
	}
	for _, k := range []string{"a", "a1_-*/", "0t@s", "t@s1-", strings.Repeat("a", 256), strings.Repeat("t", 241) + "@" + strings.Repeat("s", 14)} {
		if !validTraceStateKey(k) {
			t.Errorf("key %q rejected", k)
		}
	}
	for _, k := range []string{"", "A", "1a", "a@", "@s", "a@1s", "a@b@c", "a.b", strings.Repeat("a", 257), strings.Repeat("t", 242) + "@s", "t@" + strings.Repeat("s", 15)} {
		if validTraceStateKey(k) {
			t.Errorf("key %q accepted", k)
		}
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || strings.Join(va, "\x00") != strings.Join(vb, "\x00") || len(va) != len(vb) {
			return false
		}
	}
	return true
}

// FuzzTraceState checks the tracestate parser never panics, that FromHeaders returns only
// valid lanes, that a member written into any well-formed header reads back from a
// well-formed result, and that Strip leaves no lane behind.
func FuzzTraceState(f *testing.F) {
	for _, s := range []string{"swimlane=a", "a=1, swimlane=b", "=", ",,", " \t", "t@s=x", "a=b=c", "swimlane=a,swimlane=b", "a= b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		h := http.Header{"Tracestate": {header}}
		if l, _ := Default().FromHeaders(h); l != "" && !Valid(string(l)) {
			t.Fatalf("invalid lane %q from %q", l, header)
		}
		stripped := h.Clone()
		Default().Strip(stripped)
		if l, _ := Default().FromHeaders(stripped); l != "" {
			t.Fatalf("lane %q survived Strip of %q", l, header)
		}
		if v := stripped.Get("Tracestate"); v != "" {
			if _, ok := RemoveTraceStateMember(v, "swimlane"); !ok {
				t.Fatalf("Strip of %q left malformed tracestate %q", header, v)
			}
		}
		var l tsList
		if !l.parse(header) {
			if _, ok := SetTraceStateMember(header, "swimlane", "lane-x"); ok {
				t.Fatalf("SetTraceStateMember edited malformed %q", header)
			}
			return
		}
		out, ok := SetTraceStateMember(header, "swimlane", "lane-x")
		if !ok {
			t.Fatalf("SetTraceStateMember rejected well-formed %q", header)
		}
		var o tsList
		if !o.parse(out) || o.n == 0 || o.m[0] != (tsMember{"swimlane", "lane-x"}) {
			t.Fatalf("Set of %q gave %q", header, out)
		}
		if got, src := Default().FromHeaders(http.Header{"Tracestate": {out}}); got != "lane-x" || src != SourceTraceState {
			t.Fatalf("lane %q (%s) from %q", got, src, out)
		}
	})
}

// FuzzFromHeaders feeds arbitrary values to every form: the lane read is always valid, and
// after Strip none is read.
func FuzzFromHeaders(f *testing.F) {
	f.Add("h", "swimlane=b", "swimlane=t", "j", "o")
	f.Add("", "a=1", "a=1,swimlane=t", "", "o%2D")
	f.Add(" ", "=", "junk", "%", "%zz")
	f.Fuzz(func(t *testing.T, hv, bv, tv, jv, ov string) {
		h := http.Header{"X-Swimlane": {hv}, "Baggage": {bv}, "Tracestate": {tv}, "Uberctx-Swimlane": {jv}, "Ot-Baggage-Swimlane": {ov}}
		if l, src := Default().FromHeaders(h); l != "" && !Valid(string(l)) {
			t.Fatalf("invalid lane %q from %s", l, src)
		}
		Default().Strip(h)
		if l, src := Default().FromHeaders(h); l != "" {
			t.Fatalf("lane %q (%s) survived Strip", l, src)
		}
	})
}

// TestHeaderValuesMatchesNetHTTP checks the allocation-free lookup against http.Header.Values
// for canonical, non-canonical and non-token names.
func TestHeaderValuesMatchesNetHTTP(t *testing.T) {
	h := http.Header{}
	names := []string{"x-swimlane", "X-SWIMLANE", "uberctx-swimlane", "Ot-Baggage-Swimlane", "x-a-b", "-x", "x--y", "has space", "x_y", "a1-2b"}
	for i, name := range names {
		h.Add(name, strconv.Itoa(i))
	}
	h["has space"] = []string{"raw"}
	for _, name := range append(names, "absent", strings.Repeat("x", maxHeaderName+1)) {
		want := h.Values(name)
		if got := headerValues(h, "", name); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("headerValues(%q) = %q, want %q", name, got, want)
		}
		if len(name) > 2 {
			if got := headerValues(h, name[:2], name[2:]); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("headerValues(%q, %q) = %q, want %q", name[:2], name[2:], got, want)
			}
		}
	}
}

package lane

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestValid(t *testing.T) {
	tests := []struct {
		name string
		give string
		want bool
	}{
		{name: "simple", give: "main", want: true},
		{name: "all classes", give: "dev-Feature_1.2", want: true},
		{name: "63 chars", give: strings.Repeat("a", 63), want: true},
		{name: "64 chars", give: strings.Repeat("a", 64), want: false},
		{name: "empty", give: "", want: false},
		{name: "space", give: "dev feature", want: false},
		{name: "comma smuggling", give: "main,evil=1", want: false},
		{name: "crlf", give: "main\r\nx-evil: 1", want: false},
		{name: "unicode", give: "dév", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Valid(tt.give); got != tt.want {
				t.Errorf("Valid(%q) = %v, want %v", tt.give, got, tt.want)
			}
		})
	}
}

func TestFromHeaders(t *testing.T) {
	tests := []struct {
		name       string
		give       http.Header
		want       Lane
		wantSource Source
	}{
		{name: "no lane", give: http.Header{}, want: "", wantSource: SourceNone},
		{name: "header", give: http.Header{"X-Swimlane": {"dev-feature1"}}, want: "dev-feature1", wantSource: SourceHeader},
		{name: "baggage only", give: http.Header{"Baggage": {"swimlane=dev-feature2"}}, want: "dev-feature2", wantSource: SourceBaggage},
		{name: "baggage among members with properties", give: http.Header{"Baggage": {"user=1;p=q, swimlane=dev-feature1;ttl=3 ,x=y"}}, want: "dev-feature1", wantSource: SourceBaggage},
		{name: "baggage in second header line", give: http.Header{"Baggage": {"a=b", "swimlane=f1"}}, want: "f1", wantSource: SourceBaggage},
		{name: "header wins over baggage", give: http.Header{"X-Swimlane": {"h"}, "Baggage": {"swimlane=b"}}, want: "h", wantSource: SourceHeader},
		{name: "invalid header falls to baggage", give: http.Header{"X-Swimlane": {"bad lane"}, "Baggage": {"swimlane=b"}}, want: "b", wantSource: SourceBaggage},
		{name: "invalid header ignored", give: http.Header{"X-Swimlane": {strings.Repeat("x", 64)}}, want: "", wantSource: SourceNone},
		{name: "malformed baggage ignored", give: http.Header{"Baggage": {"swimlane=dev-feature1,=broken"}}, want: "", wantSource: SourceNone},
		{name: "baggage lane with bad characters ignored", give: http.Header{"Baggage": {"swimlane=a%2Cb"}}, want: "", wantSource: SourceNone},
		{name: "percent-encoded valid lane", give: http.Header{"Baggage": {"swimlane=dev%2Dx"}}, want: "dev-x", wantSource: SourceBaggage},
		{name: "seed gateway's member name is another key", give: http.Header{"Baggage": {"x-swimlane=dev-feature1"}}, want: "", wantSource: SourceNone},
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

func TestWrite(t *testing.T) {
	tests := []struct {
		name        string
		give        http.Header
		lane        Lane
		wantHeader  string
		wantBaggage []string
	}{
		{name: "adds both", give: http.Header{}, lane: "f1", wantHeader: "f1", wantBaggage: []string{"swimlane=f1"}},
		{name: "appends to baggage", give: http.Header{"Baggage": {"user=7"}}, lane: "f1", wantHeader: "f1", wantBaggage: []string{"user=7,swimlane=f1"}},
		{name: "replaces member, keeps others", give: http.Header{"Baggage": {"a=1,swimlane=old;p,b=2"}}, lane: "new", wantHeader: "new", wantBaggage: []string{"a=1,swimlane=new,b=2"}},
		{name: "joins header lines", give: http.Header{"Baggage": {"a=1", "b=2"}}, lane: "f1", wantHeader: "f1", wantBaggage: []string{"a=1,b=2,swimlane=f1"}},
		{name: "malformed baggage untouched", give: http.Header{"Baggage": {"=x,,bad"}}, lane: "f1", wantHeader: "f1", wantBaggage: []string{"=x,,bad"}},
		{name: "no lane writes nothing", give: http.Header{"Baggage": {"a=1"}}, lane: "", wantHeader: "", wantBaggage: []string{"a=1"}},
		{name: "duplicate member in the middle dropped", give: http.Header{"Baggage": {"swimlane=a, x=1 ,swimlane=b,y=2"}}, lane: "c", wantHeader: "c", wantBaggage: []string{"swimlane=c,x=1,y=2"}},
		{name: "duplicate members collapse", give: http.Header{"Baggage": {"swimlane=a,swimlane=b"}}, lane: "c", wantHeader: "c", wantBaggage: []string{"swimlane=c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.give.Clone()
			Default().Write(h, tt.lane)
			if got := h.Get("X-Swimlane"); got != tt.wantHeader {
				t.Errorf("x-swimlane = %q, want %q", got, tt.wantHeader)
			}
			if got := h.Values("Baggage"); strings.Join(got, "|") != strings.Join(tt.wantBaggage, "|") {
				t.Errorf("baggage = %q, want %q", got, tt.wantBaggage)
			}
		})
	}
}

func TestConfigurableNames(t *testing.T) {
	n := Names{Header: "x-env", BaggageKey: "env"}
	h := http.Header{"Baggage": {"env=blue"}}
	l, _ := n.FromHeaders(h)
	if l != "blue" {
		t.Fatalf("lane = %q, want blue", l)
	}
	n.Write(h, "green")
	if h.Get("X-Env") != "green" || h.Get("Baggage") != "env=green" {
		t.Fatalf("headers = %v", h)
	}
}

// FuzzBaggage checks the parser never panics, that a lane it returns is valid, and that a
// lane written into any parseable header reads back.
func FuzzBaggage(f *testing.F) {
	for _, s := range []string{"swimlane=a", "a=1;p, swimlane=b", "=", ",,", "k=%zz", "swimlane=a%2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		h := http.Header{"Baggage": {header}}
		if l, _ := Default().FromHeaders(h); l != "" && !Valid(string(l)) {
			t.Fatalf("invalid lane %q from %q", l, header)
		}
		if _, ok := BaggageMember(header, "swimlane"); !ok {
			return
		}
		out, ok := SetBaggageMember(header, "swimlane", "lane-x")
		if !ok {
			t.Fatalf("SetBaggageMember rejected a header BaggageMember accepted: %q", header)
		}
		if v, ok := BaggageMember(out, "swimlane"); !ok || v != "lane-x" {
			t.Fatalf("round trip of %q: got %q (%v) from %q", header, v, ok, out)
		}
	})
}

// TestCompiledNamesReadAndWriteAsPlainOnes checks Names.Compiled changes only the cost of a
// lookup: for lane header names in canonical form, lower case, odd case, with token
// punctuation, and with a byte no token has (which stays uncompiled), reading and writing
// the lane gives the same headers.
func TestCompiledNamesReadAndWriteAsPlainOnes(t *testing.T) {
	for _, name := range []string{"X-Swimlane", "x-swimlane", "x-SWIM-lane", "x_env.1", "x env", "x-é"} {
		plain := Names{Header: name, BaggageKey: "swimlane"}
		compiled := plain.Compiled()
		for _, h := range []http.Header{
			{},
			{http.CanonicalHeaderKey(name): {"dev"}},
			{name: {"dev"}}, // a name net/textproto leaves as it is
			{http.CanonicalHeaderKey(name): {"dev", "other"}},
			{"Baggage": {"swimlane=qa"}},
			{http.CanonicalHeaderKey(name): {"not a lane!"}, "Baggage": {"swimlane=qa"}},
		} {
			gotLane, gotSrc := compiled.FromHeaders(h)
			wantLane, wantSrc := plain.FromHeaders(h)
			if gotLane != wantLane || gotSrc != wantSrc {
				t.Errorf("%q, %v: compiled read %q (%s), plain %q (%s)", name, h, gotLane, gotSrc, wantLane, wantSrc)
			}
			gotH, wantH := h.Clone(), h.Clone()
			compiled.Write(gotH, "dev")
			plain.Write(wantH, "dev")
			if !reflect.DeepEqual(gotH, wantH) {
				t.Errorf("%q, %v: compiled wrote %v, plain %v", name, h, gotH, wantH)
			}
		}
	}
}

// TestCompiledNamesWriteEachRequestsOwnMember checks the member Compiled names keep from the
// last Write: lanes that alternate, that share a prefix, or are written from many goroutines
// at once each get the baggage member of their own lane.
func TestCompiledNamesWriteEachRequestsOwnMember(t *testing.T) {
	n := Default().Compiled()
	for _, l := range []Lane{"dev", "dev", "qa", "dev", "de", "dev-2", "d", "dev"} {
		h := http.Header{}
		n.Write(h, l)
		if got, want := h["Baggage"], []string{"swimlane=" + string(l)}; !reflect.DeepEqual(got, want) {
			t.Fatalf("lane %q: baggage %q, want %q", l, got, want)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := Lane(fmt.Sprintf("lane-%d", g%3))
			for range 500 {
				h := http.Header{}
				n.Write(h, l)
				if got := h.Get("Baggage"); got != "swimlane="+string(l) {
					t.Errorf("lane %q: baggage %q", l, got)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestCompiledNamesWriteAsPlainNames: compiled names (keys canonicalised once) write and strip
// exactly what the plain names do, for custom names and for a baggage key that is no header
// name (which compiled names then handle as plain ones do).
func TestCompiledNamesWriteAsPlainNames(t *testing.T) {
	inputs := []http.Header{
		{},
		{"X-Swimlane": {"dev"}, "Baggage": {"swimlane=dev"}},
		{"Baggage": {"other=1, swimlane=qa;p=1"}, "Tracestate": {"vendor=x"}},
		{"Uberctx-Swimlane": {"old"}, "Ot-Baggage-Swimlane": {"old"}, "Uberctx-Lane.key": {"old"}},
		{"Baggage": {"swimlane=dev", "other=2"}},
	}
	for _, plain := range []Names{Default(), {Header: "X-Lane", BaggageKey: "lane.key"}, {Header: "x-swimlane", BaggageKey: "Lane_Key"}, {Header: "x-swimlane", BaggageKey: "lane key"}} {
		compiled := plain.Compiled()
		for i, in := range inputs {
			for _, op := range []struct {
				name string
				do   func(Names, http.Header)
			}{
				{"Write", func(n Names, h http.Header) { n.Write(h, "dev") }},
				{"WriteAll", func(n Names, h http.Header) { n.WriteAll(h, "dev") }},
				{"Strip", func(n Names, h http.Header) { n.Strip(h) }},
			} {
				want, got := in.Clone(), in.Clone()
				op.do(plain, want)
				op.do(compiled, got)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%+v, input %d, %s: compiled names gave %v, plain ones %v", plain, i, op.name, got, want)
				}
			}
		}
	}
}

// TestWriteAllocatesNothingWhenTheLaneIsThere: a request whose lane header and baggage already
// carry the lane, as every hop after the first gets it, is written without an allocation;
// WriteAll then allocates only the two prefixed headers' values, together.
func TestWriteAllocatesNothingWhenTheLaneIsThere(t *testing.T) {
	n := Default().Compiled()
	h := http.Header{"X-Swimlane": {"dev"}, "Baggage": {"swimlane=dev"}}
	if allocs := testing.AllocsPerRun(100, func() { n.Write(h, "dev") }); allocs != 0 {
		t.Errorf("Write: %v allocations, want 0", allocs)
	}
	if allocs := testing.AllocsPerRun(100, func() { n.WriteAll(h, "dev") }); allocs > 1 {
		t.Errorf("WriteAll: %v allocations, want at most 1 (the prefixed headers' values)", allocs)
	}
	if got := h["Baggage"]; !reflect.DeepEqual(got, []string{"swimlane=dev"}) {
		t.Errorf("baggage became %q", got)
	}
}

// TestPrefixedValuesStandApart: the two prefixed headers share one allocation, so an append
// to one must not show in the other.
func TestPrefixedValuesStandApart(t *testing.T) {
	h := http.Header{}
	Default().Compiled().WriteAll(h, "dev")
	h["Uberctx-Swimlane"] = append(h["Uberctx-Swimlane"], "more")
	h["Uberctx-Swimlane"][0] = "changed"
	if got := h["Ot-Baggage-Swimlane"]; !reflect.DeepEqual(got, []string{"dev"}) {
		t.Errorf("ot-baggage became %q after an edit of uberctx", got)
	}
}

// TestWriteAddsBaggageWithoutAllocating: a request with the lane header and no baggage (what
// a client sends, and what every outbound sidecar sees first) gets the baggage member from the
// list kept for the lane, not a new one.
func TestWriteAddsBaggageWithoutAllocating(t *testing.T) {
	n := Default().Compiled()
	h := http.Header{"X-Swimlane": {"dev"}}
	n.Write(h, "dev") // the first request of the lane puts the list together
	if allocs := testing.AllocsPerRun(100, func() {
		delete(h, "Baggage")
		n.Write(h, "dev")
	}); allocs != 0 {
		t.Errorf("Write: %v allocations, want 0", allocs)
	}
	if got := h["Baggage"]; !reflect.DeepEqual(got, []string{"swimlane=dev"}) {
		t.Errorf("baggage became %q", got)
	}
	n.Write(h, "other")
	if got := h["Baggage"]; !reflect.DeepEqual(got, []string{"swimlane=other"}) {
		t.Errorf("after a lane change, baggage became %q", got)
	}
}

// TestSharedBaggageStandsApart: requests of one lane share the baggage list Write sets, so an
// edit of one request's header, as header edits and net/http make them, must not show in the
// next request's.
func TestSharedBaggageStandsApart(t *testing.T) {
	n := Default().Compiled()
	first, second := http.Header{}, http.Header{}
	n.Write(first, "dev")
	first.Add("Baggage", "user=1")
	n.Write(second, "dev")
	first.Set("Baggage", "changed")
	if got := second["Baggage"]; !reflect.DeepEqual(got, []string{"swimlane=dev"}) {
		t.Errorf("the second request's baggage became %q after edits of the first's", got)
	}
}

// TestStripAllocatesNothing: a gateway that does not trust incoming lanes strips every
// request; with compiled names that costs no allocation, whether or not the request had a
// lane (h.Del canonicalised the lane header's name anew each time).
func TestStripAllocatesNothing(t *testing.T) {
	n := Default().Compiled()
	for _, in := range []http.Header{{}, {"X-Swimlane": {"dev"}, "Uberctx-Swimlane": {"dev"}, "Ot-Baggage-Swimlane": {"dev"}}} {
		if allocs := testing.AllocsPerRun(100, func() { n.Strip(in.Clone()) }) - testing.AllocsPerRun(100, func() { _ = in.Clone() }); allocs != 0 {
			t.Errorf("Strip of %v: %v allocations, want 0", in, allocs)
		}
	}
}

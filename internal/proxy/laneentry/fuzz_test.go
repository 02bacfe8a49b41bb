package laneentry

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"swimlane.dev/swimlane/internal/lane"
	"swimlane.dev/swimlane/internal/snapshot"
)

// fuzzPolicies covers every mode, with rules of every kind reading every source.
var fuzzPolicies = func() []*Policy {
	rules := []snapshot.EntryRule{
		{Name: "flag", Lane: "beta", Match: &snapshot.EntryMatch{From: snapshot.ValueFrom{Query: "beta"}, Value: "1"}},
		{Name: "q", LaneFrom: &snapshot.ValueFrom{Query: "lane"}},
		{Name: "c", LaneFrom: &snapshot.ValueFrom{Cookie: "lane"}},
		{Name: "h", LaneFrom: &snapshot.ValueFrom{Header: "x-preview"}},
		{Name: "staff", Lane: "staff", Users: &snapshot.EntryUsers{From: snapshot.ValueFrom{Cookie: "uid"}, IDs: []string{"1", "alice", "bob"}}},
		{Name: "pct", Lane: "canary", Percent: &snapshot.EntryShare{From: snapshot.ValueFrom{Header: "x-user"}, Value: 30}},
		{Name: "num", Buckets: &snapshot.EntryBucket{From: snapshot.ValueFrom{Query: "uid"}, Lanes: []lane.Lane{"even", "odd"}, Numeric: true}},
		{Name: "hash", Buckets: &snapshot.EntryBucket{From: snapshot.ValueFrom{Cookie: "uid"}, Lanes: []lane.Lane{"a", "b", "c"}}},
	}
	var pols []*Policy
	for _, mode := range []snapshot.IncomingLanes{snapshot.IncomingTrust, snapshot.IncomingStrip, snapshot.IncomingAllowList} {
		pols = append(pols, Prepare(&snapshot.LaneEntry{Incoming: mode, Allow: []lane.Lane{"main", "dev-1"}, Rules: rules}))
	}
	return append(pols, nil)
}()

// otherHeaders are further headers that carry lanes or sit next to them.
var otherHeaders = []string{"Tracestate", "Uberctx-Swimlane", "Ot-Baggage-Swimlane", "Traceparent"}

func FuzzApply(f *testing.F) {
	f.Add(uint8(0), "dev-1", "swimlane=dev-2,k=v", "uid=alice; lane=dev-c", "lane=dev-q&uid=7", "user-1", "dev-h", uint8(0), "swimlane=dev-t,other=1")
	f.Add(uint8(1), "bad lane", "swimlane=a%2Cb", "uid=\"quoted\"", "beta=1", "", "", uint8(1), "dev-j")
	f.Add(uint8(2), "main", "=broken,swimlane=x", "lane=;;;", "uid=%zz&lane=a;b", "\x00", "x\r\ny", uint8(2), "dev%2Do")
	f.Add(uint8(3), "", "", "", "uid=18446744073709551616", "42", "..", uint8(0), "swimlane=,=")
	f.Fuzz(func(t *testing.T, mode uint8, laneHdr, baggage, cookie, query, user, preview string, otherKind uint8, other string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL.RawQuery = query
		otherName := otherHeaders[int(otherKind)%len(otherHeaders)]
		for k, v := range map[string]string{"X-Swimlane": laneHdr, "Baggage": baggage, "Cookie": cookie, "X-User": user, "X-Preview": preview, otherName: other} {
			if v != "" {
				r.Header[k] = []string{v}
			}
		}
		pol := fuzzPolicies[int(mode)%len(fuzzPolicies)]
		d := pol.Apply(names, r)

		if d.Lane != "" && !lane.Valid(string(d.Lane)) {
			t.Fatalf("invalid lane %q", d.Lane)
		}
		if d.Incoming != "" && !lane.Valid(string(d.Incoming)) {
			t.Fatalf("invalid incoming lane %q", d.Incoming)
		}
		if d.Stripped && d.Incoming == "" {
			t.Fatalf("stripped without an incoming lane: %+v", d)
		}
		if d.Rule == "" && d.Lane != "" && (d.Lane != d.Incoming || d.Stripped) {
			t.Fatalf("lane without a rule must be the kept incoming lane: %+v", d)
		}
		if d.Rule != "" && d.Lane == "" {
			t.Fatalf("rule without a lane: %+v", d)
		}
		if pol != nil && pol.mode == modeStrip {
			if d.Incoming != "" && !d.Stripped {
				t.Fatalf("strip mode kept %q", d.Incoming)
			}
			if l, _ := names.FromHeaders(r.Header); l != "" {
				t.Fatalf("lane %q survived strip", l)
			}
		}
		names.Write(r.Header, d.Lane)
		if d.Lane != "" {
			if l, _ := names.FromHeaders(r.Header); l != d.Lane {
				t.Fatalf("after Write the request reads lane %q, want %q", l, d.Lane)
			}
		}
	})
}

package laneentry

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"swimlane.dev/swimlane/internal/lane"
	"swimlane.dev/swimlane/internal/snapshot"
)

func BenchmarkApply(b *testing.B) {
	fiveRules := []snapshot.EntryRule{
		{Name: "beta", Lane: "beta", Match: &snapshot.EntryMatch{From: snapshot.ValueFrom{Header: "x-beta"}}},
		{Name: "preview", LaneFrom: &snapshot.ValueFrom{Query: "lane"}},
		{Name: "staff", Lane: "staff", Users: &snapshot.EntryUsers{From: snapshot.ValueFrom{Cookie: "uid"}, IDs: []string{"alice", "bob", "carol"}}},
		{Name: "off", Lane: "canary", Percent: &snapshot.EntryShare{From: snapshot.ValueFrom{Header: "x-user"}, Value: 0}},
		{Name: "split", Buckets: &snapshot.EntryBucket{From: snapshot.ValueFrom{Header: "x-user"}, Lanes: []lane.Lane{"even", "odd"}, Numeric: true}},
	}
	cases := []struct {
		name    string
		entry   *snapshot.LaneEntry
		target  string
		header  http.Header
		want    Decision
		restore []string // headers Apply strips, put back before each iteration
	}{
		{
			name:   "trust/incoming",
			entry:  &snapshot.LaneEntry{Incoming: snapshot.IncomingTrust, Rules: fiveRules},
			target: "/path?q=1",
			header: http.Header{"X-Swimlane": {"dev-1"}, "X-User": {"42"}},
			want:   Decision{Lane: "dev-1", Incoming: "dev-1"},
		},
		{
			name:    "strip/5-rules-last-matches",
			entry:   &snapshot.LaneEntry{Incoming: snapshot.IncomingStrip, Rules: fiveRules},
			target:  "/path?q=1&page=2",
			header:  http.Header{"X-Swimlane": {"dev-1"}, "X-User": {"42"}, "Cookie": {"session=abc; uid=dave"}},
			want:    Decision{Lane: "even", Incoming: "dev-1", Stripped: true, Rule: "split"},
			restore: []string{"X-Swimlane"},
		},
		{
			name:    "strip-baggage/5-rules-last-matches",
			entry:   &snapshot.LaneEntry{Incoming: snapshot.IncomingStrip, Rules: fiveRules},
			target:  "/path?q=1&page=2",
			header:  http.Header{"X-Swimlane": {"dev-1"}, "Baggage": {"user=7,swimlane=dev-1"}, "X-User": {"42"}, "Cookie": {"session=abc; uid=dave"}},
			want:    Decision{Lane: "even", Incoming: "dev-1", Stripped: true, Rule: "split"},
			restore: []string{"X-Swimlane", "Baggage"},
		},
	}
	names := names.Compiled() // as a proxy's snapshot has them
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			pol := Prepare(bc.entry)
			r := httptest.NewRequest(http.MethodGet, bc.target, nil)
			for k, v := range bc.header {
				r.Header[k] = v
			}
			if d := pol.Apply(names, r); d != bc.want {
				b.Fatalf("Apply = %+v, want %+v", d, bc.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				for _, k := range bc.restore {
					r.Header[k] = bc.header[k] // Strip deletes the key; the slice is untouched
				}
				pol.Apply(names, r)
			}
		})
	}
}

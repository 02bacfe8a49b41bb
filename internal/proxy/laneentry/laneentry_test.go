package laneentry

import (
	"fmt"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"swimlane.dev/swimlane/internal/lane"
	"swimlane.dev/swimlane/internal/snapshot"
)

var names = lane.Default()

// newRequest builds a gateway request for target with the given headers (set as is).
func newRequest(target string, header http.Header) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for k, vs := range header {
		r.Header[http.CanonicalHeaderKey(k)] = slices.Clone(vs)
	}
	return r
}

func TestIncoming(t *testing.T) {
	long := make([]lane.Lane, 0, 40)
	for i := range 40 {
		long = append(long, lane.Lane(fmt.Sprintf("allowed-%d", i)))
	}
	tests := []struct {
		name        string
		entry       *snapshot.LaneEntry
		header      http.Header
		want        Decision
		wantLaneHdr []string // X-Swimlane after Apply; nil for absent
		wantBaggage []string // Baggage after Apply; nil for absent
	}{
		{
			name:        "nil policy trusts the header",
			entry:       nil,
			header:      http.Header{"X-Swimlane": {"dev-1"}},
			want:        Decision{Lane: "dev-1", Incoming: "dev-1"},
			wantLaneHdr: []string{"dev-1"},
		},
		{
			name:        "trust keeps a baggage lane",
			entry:       &snapshot.LaneEntry{Incoming: snapshot.IncomingTrust},
			header:      http.Header{"Baggage": {"user=7,swimlane=dev-2"}},
			want:        Decision{Lane: "dev-2", Incoming: "dev-2"},
			wantBaggage: []string{"user=7,swimlane=dev-2"},
		},
		{
			name:        "empty mode is trust",
			entry:       &snapshot.LaneEntry{},
			header:      http.Header{"X-Swimlane": {"dev-1"}},
			want:        Decision{Lane: "dev-1", Incoming: "dev-1"},
			wantLaneHdr: []string{"dev-1"},
		},
		{
			name:        "trust leaves an invalid lane alone but does not use it",
			entry:       &snapshot.LaneEntry{Incoming: snapshot.IncomingTrust},
			header:      http.Header{"X-Swimlane": {"bad lane!"}},
			want:        Decision{},
			wantLaneHdr: []string{"bad lane!"},
		},
		{
			name:   "strip removes the header lane",
			entry:  &snapshot.LaneEntry{Incoming: snapshot.IncomingStrip},
			header: http.Header{"X-Swimlane": {"dev-1"}},
			want:   Decision{Incoming: "dev-1", Stripped: true},
		},
		{
			name:  "a stripped lane cannot be smuggled in through baggage",
			entry: &snapshot.LaneEntry{Incoming: snapshot.IncomingStrip},
			header: http.Header{
				"X-Swimlane": {"dev-1"},
				"Baggage":    {"user=7,swimlane=dev-2;ttl=3", "theme=dark"},
			},
			want:        Decision{Incoming: "dev-1", Stripped: true},
			wantBaggage: []string{"user=7,theme=dark"},
		},
		{
			name:  "a stripped lane cannot be smuggled in through tracing headers",
			entry: &snapshot.LaneEntry{Incoming: snapshot.IncomingStrip},
			header: http.Header{
				"Uberctx-Swimlane":    {"dev-3"},
				"Ot-Baggage-Swimlane": {"dev-4"},
			},
			want: Decision{Incoming: "dev-3", Stripped: true},
		},
		{
			name:        "strip removes a baggage-only lane and keeps other members",
			entry:       &snapshot.LaneEntry{Incoming: snapshot.IncomingStrip},
			header:      http.Header{"Baggage": {"swimlane=dev-2, k=v"}},
			want:        Decision{Incoming: "dev-2", Stripped: true},
			wantBaggage: []string{"k=v"},
		},
		{
			name:  "invalid incoming lane is stripped too",
			entry: &snapshot.LaneEntry{Incoming: snapshot.IncomingStrip},
			header: http.Header{
				"X-Swimlane": {"bad lane!"},
				"Baggage":    {"swimlane=a%2Cb,k=v"},
			},
			want:        Decision{}, // nothing valid was sent, so nothing counts as stripped
			wantBaggage: []string{"k=v"},
		},
		{
			name:   "malformed baggage carrying a lane is dropped whole",
			entry:  &snapshot.LaneEntry{Incoming: snapshot.IncomingStrip},
			header: http.Header{"Baggage": {"swimlane=dev-1,=broken"}},
			want:   Decision{},
		},
		{
			name:        "strip without a lane leaves other baggage untouched",
			entry:       &snapshot.LaneEntry{Incoming: snapshot.IncomingStrip},
			header:      http.Header{"Baggage": {"k=v"}},
			want:        Decision{},
			wantBaggage: []string{"k=v"},
		},
		{
			name:   "unknown mode fails closed as strip",
			entry:  &snapshot.LaneEntry{Incoming: "sometimes"},
			header: http.Header{"X-Swimlane": {"dev-1"}},
			want:   Decision{Incoming: "dev-1", Stripped: true},
		},
		{
			name:        "allowList keeps an allowed lane",
			entry:       &snapshot.LaneEntry{Incoming: snapshot.IncomingAllowList, Allow: []lane.Lane{"main", "dev-1"}},
			header:      http.Header{"X-Swimlane": {"dev-1"}, "Baggage": {"swimlane=dev-1"}},
			want:        Decision{Lane: "dev-1", Incoming: "dev-1"},
			wantLaneHdr: []string{"dev-1"},
			wantBaggage: []string{"swimlane=dev-1"},
		},
		{
			name:   "allowList strips a lane not on the list",
			entry:  &snapshot.LaneEntry{Incoming: snapshot.IncomingAllowList, Allow: []lane.Lane{"main"}},
			header: http.Header{"X-Swimlane": {"evil"}},
			want:   Decision{Incoming: "evil", Stripped: true},
		},
		{
			name:        "allowList strips a baggage lane not on the list",
			entry:       &snapshot.LaneEntry{Incoming: snapshot.IncomingAllowList, Allow: []lane.Lane{"main"}},
			header:      http.Header{"Baggage": {"a=1,swimlane=evil,b=2"}},
			want:        Decision{Incoming: "evil", Stripped: true},
			wantBaggage: []string{"a=1,b=2"},
		},
		{
			name:        "allowList strips an invalid lane",
			entry:       &snapshot.LaneEntry{Incoming: snapshot.IncomingAllowList, Allow: []lane.Lane{"main"}},
			header:      http.Header{"X-Swimlane": {"main evil"}, "Baggage": {"swimlane=main%20x,k=v"}},
			want:        Decision{},
			wantBaggage: []string{"k=v"},
		},
		{
			name:   "empty allowList strips everything",
			entry:  &snapshot.LaneEntry{Incoming: snapshot.IncomingAllowList},
			header: http.Header{"X-Swimlane": {"main"}},
			want:   Decision{Incoming: "main", Stripped: true},
		},
		{
			name:        "long allowList keeps an allowed lane",
			entry:       &snapshot.LaneEntry{Incoming: snapshot.IncomingAllowList, Allow: long},
			header:      http.Header{"X-Swimlane": {"allowed-33"}},
			want:        Decision{Lane: "allowed-33", Incoming: "allowed-33"},
			wantLaneHdr: []string{"allowed-33"},
		},
		{
			name:   "long allowList strips another lane",
			entry:  &snapshot.LaneEntry{Incoming: snapshot.IncomingAllowList, Allow: long},
			header: http.Header{"X-Swimlane": {"allowed-40"}},
			want:   Decision{Incoming: "allowed-40", Stripped: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRequest("/", tt.header)
			got := Prepare(tt.entry).Apply(names, r)
			if got != tt.want {
				t.Errorf("Apply = %+v, want %+v", got, tt.want)
			}
			if hdr := r.Header.Values("X-Swimlane"); !slices.Equal(hdr, tt.wantLaneHdr) {
				t.Errorf("X-Swimlane after Apply = %q, want %q", hdr, tt.wantLaneHdr)
			}
			if bag := r.Header.Values("Baggage"); !slices.Equal(bag, tt.wantBaggage) {
				t.Errorf("Baggage after Apply = %q, want %q", bag, tt.wantBaggage)
			}
			for _, k := range []string{"Uberctx-Swimlane", "Ot-Baggage-Swimlane"} {
				if tt.want.Stripped && r.Header.Get(k) != "" {
					t.Errorf("%s survived strip", k)
				}
			}
			if got.Lane == "" {
				if l, _ := names.FromHeaders(r.Header); l != "" {
					t.Errorf("request still carries lane %q after entry decided none", l)
				}
			}
		})
	}
}

// fnvIndex computes the bucket with the standard library's FNV-1a, independently of
// fnv1a64, finished with the package's mixer.
func fnvIndex(id string, n uint64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return mix64(h.Sum64()) % n
}

func TestFNV(t *testing.T) {
	for _, s := range []string{"", "a", "user-1", "42", "\xff\x00é"} {
		h := fnv.New64a()
		h.Write([]byte(s))
		if got, want := fnv1a64(s), h.Sum64(); got != want {
			t.Errorf("fnv1a64(%q) = %x, want %x", s, got, want)
		}
	}
}

// pickID returns an ID starting with prefix whose hash bucket (mod n) is want.
func pickID(t *testing.T, prefix string, n, want uint64) string {
	t.Helper()
	for i := range 1000 {
		id := fmt.Sprintf("%s%d", prefix, i)
		if fnvIndex(id, n) == want {
			return id
		}
	}
	t.Fatalf("no ID with bucket %d", want)
	return ""
}

func TestRules(t *testing.T) {
	hdr := func(name string) snapshot.ValueFrom { return snapshot.ValueFrom{Header: name} }
	cookie := func(name string) snapshot.ValueFrom { return snapshot.ValueFrom{Cookie: name} }
	query := func(name string) snapshot.ValueFrom { return snapshot.ValueFrom{Query: name} }
	ptr := func(v snapshot.ValueFrom) *snapshot.ValueFrom { return &v }

	manyIDs := make([]string, 0, 100)
	for i := range 100 {
		manyIDs = append(manyIDs, fmt.Sprintf("u%d", i))
	}
	// Percent: an ID in the first half of the hash space, and one in the second half.
	var inHalf, outHalf string
	for i := 0; inHalf == "" || outHalf == ""; i++ {
		id := fmt.Sprintf("p%d", i)
		if fnvIndex(id, 10000) < 5000 {
			inHalf = id
		} else {
			outHalf = id
		}
	}
	lowest := "z0"
	for i := range 1000 {
		if id := fmt.Sprintf("z%d", i); fnvIndex(id, 10000) < fnvIndex(lowest, 10000) {
			lowest = id
		}
	}
	bucket0 := pickID(t, "b", 3, 0)
	bucket2 := pickID(t, "b", 3, 2)
	bigNumber := "99999999999999999999999" // does not fit uint64: hashed
	negative := "-3"                       // not a non-negative integer: hashed

	tests := []struct {
		name     string
		incoming snapshot.IncomingLanes
		rules    []snapshot.EntryRule
		target   string
		header   http.Header
		want     Decision
	}{
		// Match.
		{
			name:   "match header present, any value",
			rules:  []snapshot.EntryRule{{Name: "beta", Lane: "beta", Match: &snapshot.EntryMatch{From: hdr("x-beta")}}},
			header: http.Header{"X-Beta": {"yes"}},
			want:   Decision{Lane: "beta", Rule: "beta"},
		},
		{
			name:   "match header present with empty value",
			rules:  []snapshot.EntryRule{{Lane: "beta", Match: &snapshot.EntryMatch{From: hdr("x-beta")}}},
			header: http.Header{"X-Beta": {""}},
			want:   Decision{Lane: "beta", Rule: "rules[0]"},
		},
		{
			name:  "match header absent",
			rules: []snapshot.EntryRule{{Lane: "beta", Match: &snapshot.EntryMatch{From: hdr("x-beta")}}},
			want:  Decision{},
		},
		{
			name:   "match header name is case-insensitive",
			rules:  []snapshot.EntryRule{{Lane: "beta", Match: &snapshot.EntryMatch{From: hdr("X-BETA"), Value: "on"}}},
			header: http.Header{"x-beta": {"on"}},
			want:   Decision{Lane: "beta", Rule: "rules[0]"},
		},
		{
			name:   "match value equal",
			rules:  []snapshot.EntryRule{{Lane: "beta", Match: &snapshot.EntryMatch{From: hdr("x-tier"), Value: "gold"}}},
			header: http.Header{"X-Tier": {"gold"}},
			want:   Decision{Lane: "beta", Rule: "rules[0]"},
		},
		{
			name:   "match value differs",
			rules:  []snapshot.EntryRule{{Lane: "beta", Match: &snapshot.EntryMatch{From: hdr("x-tier"), Value: "gold"}}},
			header: http.Header{"X-Tier": {"Gold"}},
			want:   Decision{},
		},
		{
			name:   "match cookie value",
			rules:  []snapshot.EntryRule{{Lane: "beta", Match: &snapshot.EntryMatch{From: cookie("tier"), Value: "gold"}}},
			header: http.Header{"Cookie": {"a=1; tier=gold; b=2"}},
			want:   Decision{Lane: "beta", Rule: "rules[0]"},
		},
		{
			name:   "match query flag without value",
			rules:  []snapshot.EntryRule{{Lane: "beta", Match: &snapshot.EntryMatch{From: query("beta")}}},
			target: "/?beta",
			want:   Decision{Lane: "beta", Rule: "rules[0]"},
		},
		{
			name:   "match query value",
			rules:  []snapshot.EntryRule{{Lane: "beta", Match: &snapshot.EntryMatch{From: query("tier"), Value: "gold"}}},
			target: "/x?tier=silver&tier=gold",
			want:   Decision{}, // the first value counts
		},

		// LaneFrom.
		{
			name:   "laneFrom query",
			rules:  []snapshot.EntryRule{{Name: "q", LaneFrom: ptr(query("lane"))}},
			target: "/?lane=dev-q",
			want:   Decision{Lane: "dev-q", Rule: "q"},
		},
		{
			name:   "laneFrom cookie",
			rules:  []snapshot.EntryRule{{LaneFrom: ptr(cookie("lane"))}},
			header: http.Header{"Cookie": {"lane=dev-c"}},
			want:   Decision{Lane: "dev-c", Rule: "rules[0]"},
		},
		{
			name:   "laneFrom header",
			rules:  []snapshot.EntryRule{{LaneFrom: ptr(hdr("x-preview"))}},
			header: http.Header{"X-Preview": {"dev-h"}},
			want:   Decision{Lane: "dev-h", Rule: "rules[0]"},
		},
		{
			name:   "laneFrom invalid value yields nothing",
			rules:  []snapshot.EntryRule{{LaneFrom: ptr(query("lane"))}},
			target: "/?lane=dev%2Cevil%3D1",
			want:   Decision{},
		},
		{
			name:   "laneFrom too long yields nothing",
			rules:  []snapshot.EntryRule{{LaneFrom: ptr(query("lane"))}},
			target: "/?lane=" + fmt.Sprintf("%064d", 0),
			want:   Decision{},
		},
		{
			name:     "strip runs first: laneFrom cannot read the stripped lane header",
			incoming: snapshot.IncomingStrip,
			rules:    []snapshot.EntryRule{{LaneFrom: ptr(hdr("x-swimlane"))}},
			header:   http.Header{"X-Swimlane": {"dev-1"}},
			want:     Decision{Incoming: "dev-1", Stripped: true},
		},

		// Users.
		{
			name:   "users short list hit",
			rules:  []snapshot.EntryRule{{Name: "staff", Lane: "canary", Users: &snapshot.EntryUsers{From: hdr("x-user"), IDs: []string{"alice", "bob"}}}},
			header: http.Header{"X-User": {"bob"}},
			want:   Decision{Lane: "canary", Rule: "staff"},
		},
		{
			name:   "users short list miss",
			rules:  []snapshot.EntryRule{{Lane: "canary", Users: &snapshot.EntryUsers{From: hdr("x-user"), IDs: []string{"alice", "bob"}}}},
			header: http.Header{"X-User": {"carol"}},
			want:   Decision{},
		},
		{
			name:   "users long list hit",
			rules:  []snapshot.EntryRule{{Lane: "canary", Users: &snapshot.EntryUsers{From: cookie("uid"), IDs: manyIDs}}},
			header: http.Header{"Cookie": {"uid=u77"}},
			want:   Decision{Lane: "canary", Rule: "rules[0]"},
		},
		{
			name:   "users long list miss",
			rules:  []snapshot.EntryRule{{Lane: "canary", Users: &snapshot.EntryUsers{From: cookie("uid"), IDs: manyIDs}}},
			header: http.Header{"Cookie": {"uid=u100"}},
			want:   Decision{},
		},
		{
			name:   "users empty ID in the list matches no absent value",
			rules:  []snapshot.EntryRule{{Lane: "canary", Users: &snapshot.EntryUsers{From: query("uid"), IDs: []string{""}}}},
			target: "/?uid=",
			want:   Decision{},
		},

		// Buckets.
		{
			name:   "buckets numeric odd",
			rules:  []snapshot.EntryRule{{Lane: "x", Buckets: &snapshot.EntryBucket{From: hdr("x-user"), Lanes: []lane.Lane{"even", "odd"}, Numeric: true}}},
			header: http.Header{"X-User": {"7"}},
			want:   Decision{Lane: "odd", Rule: "rules[0]"},
		},
		{
			name:   "buckets numeric even with leading zeros",
			rules:  []snapshot.EntryRule{{Buckets: &snapshot.EntryBucket{From: hdr("x-user"), Lanes: []lane.Lane{"even", "odd"}, Numeric: true}}},
			header: http.Header{"X-User": {"0008"}},
			want:   Decision{Lane: "even", Rule: "rules[0]"},
		},
		{
			name:   "buckets numeric modulo three",
			rules:  []snapshot.EntryRule{{Buckets: &snapshot.EntryBucket{From: query("uid"), Lanes: []lane.Lane{"a", "b", "c"}, Numeric: true}}},
			target: "/?uid=11",
			want:   Decision{Lane: "c", Rule: "rules[0]"},
		},
		{
			name:   "buckets numeric: negative ID is hashed",
			rules:  []snapshot.EntryRule{{Buckets: &snapshot.EntryBucket{From: hdr("x-user"), Lanes: []lane.Lane{"a", "b", "c"}, Numeric: true}}},
			header: http.Header{"X-User": {negative}},
			want:   Decision{Lane: []lane.Lane{"a", "b", "c"}[fnvIndex(negative, 3)], Rule: "rules[0]"},
		},
		{
			name:   "buckets numeric: ID beyond 64 bits is hashed",
			rules:  []snapshot.EntryRule{{Buckets: &snapshot.EntryBucket{From: hdr("x-user"), Lanes: []lane.Lane{"a", "b", "c"}, Numeric: true}}},
			header: http.Header{"X-User": {bigNumber}},
			want:   Decision{Lane: []lane.Lane{"a", "b", "c"}[fnvIndex(bigNumber, 3)], Rule: "rules[0]"},
		},
		{
			name:   "buckets hash picks first bucket",
			rules:  []snapshot.EntryRule{{Buckets: &snapshot.EntryBucket{From: cookie("uid"), Lanes: []lane.Lane{"a", "b", "c"}}}},
			header: http.Header{"Cookie": {"uid=" + bucket0}},
			want:   Decision{Lane: "a", Rule: "rules[0]"},
		},
		{
			name:   "buckets hash picks last bucket",
			rules:  []snapshot.EntryRule{{Buckets: &snapshot.EntryBucket{From: cookie("uid"), Lanes: []lane.Lane{"a", "b", "c"}}}},
			header: http.Header{"Cookie": {"uid=" + bucket2}},
			want:   Decision{Lane: "c", Rule: "rules[0]"},
		},
		{
			name:   "buckets without numeric hash integers too",
			rules:  []snapshot.EntryRule{{Buckets: &snapshot.EntryBucket{From: hdr("x-user"), Lanes: []lane.Lane{"a", "b", "c"}}}},
			header: http.Header{"X-User": {"11"}},
			want:   Decision{Lane: []lane.Lane{"a", "b", "c"}[fnvIndex("11", 3)], Rule: "rules[0]"},
		},
		{
			name:   "buckets empty ID yields nothing",
			rules:  []snapshot.EntryRule{{Buckets: &snapshot.EntryBucket{From: hdr("x-user"), Lanes: []lane.Lane{"a", "b"}}}},
			header: http.Header{"X-User": {""}},
			want:   Decision{},
		},
		{
			name:   "buckets with no lanes yield nothing",
			rules:  []snapshot.EntryRule{{Buckets: &snapshot.EntryBucket{From: hdr("x-user")}}},
			header: http.Header{"X-User": {"7"}},
			want:   Decision{},
		},
		{
			name: "bucket with an invalid lane yields nothing and the next rule runs",
			rules: []snapshot.EntryRule{
				{Buckets: &snapshot.EntryBucket{From: hdr("x-user"), Lanes: []lane.Lane{"even", "bad lane"}, Numeric: true}},
				{Name: "fallback", Lane: "fb", Match: &snapshot.EntryMatch{From: hdr("x-user")}},
			},
			header: http.Header{"X-User": {"7"}},
			want:   Decision{Lane: "fb", Rule: "fallback"},
		},

		// Percent.
		{
			name:   "percent 100 takes everyone",
			rules:  []snapshot.EntryRule{{Lane: "canary", Percent: &snapshot.EntryShare{From: hdr("x-user"), Value: 100}}},
			header: http.Header{"X-User": {outHalf}},
			want:   Decision{Lane: "canary", Rule: "rules[0]"},
		},
		{
			name:   "percent 0 takes no one",
			rules:  []snapshot.EntryRule{{Lane: "canary", Percent: &snapshot.EntryShare{From: hdr("x-user"), Value: 0}}},
			header: http.Header{"X-User": {lowest}}, // the ID nearest bucket 0
			want:   Decision{},
		},
		{
			name:   "percent 50 takes a user in the first half",
			rules:  []snapshot.EntryRule{{Lane: "canary", Percent: &snapshot.EntryShare{From: query("uid"), Value: 50}}},
			target: "/?uid=" + inHalf,
			want:   Decision{Lane: "canary", Rule: "rules[0]"},
		},
		{
			name:   "percent 50 leaves a user in the second half",
			rules:  []snapshot.EntryRule{{Lane: "canary", Percent: &snapshot.EntryShare{From: query("uid"), Value: 50}}},
			target: "/?uid=" + outHalf,
			want:   Decision{},
		},
		{
			name:  "percent 100 needs an ID",
			rules: []snapshot.EntryRule{{Lane: "canary", Percent: &snapshot.EntryShare{From: hdr("x-user"), Value: 100}}},
			want:  Decision{},
		},

		// Malformed rules yield nothing.
		{
			name:   "rule with two kinds",
			rules:  []snapshot.EntryRule{{Lane: "x", Match: &snapshot.EntryMatch{From: hdr("x-a")}, LaneFrom: ptr(hdr("x-a"))}},
			header: http.Header{"X-A": {"dev"}},
			want:   Decision{},
		},
		{
			name:   "rule with no kind",
			rules:  []snapshot.EntryRule{{Lane: "x"}},
			header: http.Header{"X-A": {"dev"}},
			want:   Decision{},
		},
		{
			name:   "from naming two sources",
			rules:  []snapshot.EntryRule{{Lane: "x", Match: &snapshot.EntryMatch{From: snapshot.ValueFrom{Header: "x-a", Query: "a"}}}},
			target: "/?a=1",
			header: http.Header{"X-A": {"dev"}},
			want:   Decision{},
		},
		{
			name:   "from naming no source",
			rules:  []snapshot.EntryRule{{Lane: "x", Match: &snapshot.EntryMatch{}}},
			header: http.Header{"X-A": {"dev"}},
			want:   Decision{},
		},
		{
			name:   "match with invalid target lane",
			rules:  []snapshot.EntryRule{{Lane: "not a lane", Match: &snapshot.EntryMatch{From: hdr("x-a")}}},
			header: http.Header{"X-A": {"dev"}},
			want:   Decision{},
		},

		// Order and interplay with incoming lanes.
		{
			name: "first matching rule wins",
			rules: []snapshot.EntryRule{
				{Name: "one", Lane: "l1", Match: &snapshot.EntryMatch{From: hdr("x-a")}},
				{Name: "two", Lane: "l2", Match: &snapshot.EntryMatch{From: hdr("x-a")}},
			},
			header: http.Header{"X-A": {"1"}},
			want:   Decision{Lane: "l1", Rule: "one"},
		},
		{
			name: "rules that yield nothing are skipped",
			rules: []snapshot.EntryRule{
				{LaneFrom: ptr(query("lane"))},
				{Lane: "l1", Users: &snapshot.EntryUsers{From: hdr("x-user"), IDs: []string{"alice"}}},
				{Lane: "l2", Match: &snapshot.EntryMatch{From: hdr("x-user")}},
			},
			target: "/?lane=not%20valid",
			header: http.Header{"X-User": {"bob"}},
			want:   Decision{Lane: "l2", Rule: "rules[2]"},
		},
		{
			name:     "a trusted incoming lane beats rules",
			incoming: snapshot.IncomingTrust,
			rules:    []snapshot.EntryRule{{Name: "all", Lane: "canary", Percent: &snapshot.EntryShare{From: hdr("x-user"), Value: 100}}},
			header:   http.Header{"X-Swimlane": {"dev-1"}, "X-User": {"alice"}},
			want:     Decision{Lane: "dev-1", Incoming: "dev-1"},
		},
		{
			name:     "an allowed incoming lane beats rules",
			incoming: snapshot.IncomingAllowList,
			rules:    []snapshot.EntryRule{{Name: "all", Lane: "canary", Percent: &snapshot.EntryShare{From: hdr("x-user"), Value: 100}}},
			header:   http.Header{"Baggage": {"swimlane=main"}, "X-User": {"alice"}},
			want:     Decision{Lane: "main", Incoming: "main"},
		},
		{
			name:     "stripped incoming lane, then a rule assigns",
			incoming: snapshot.IncomingStrip,
			rules:    []snapshot.EntryRule{{Name: "all", Lane: "canary", Percent: &snapshot.EntryShare{From: hdr("x-user"), Value: 100}}},
			header:   http.Header{"X-Swimlane": {"dev-1"}, "X-User": {"alice"}},
			want:     Decision{Lane: "canary", Incoming: "dev-1", Stripped: true, Rule: "all"},
		},
		{
			name:     "disallowed incoming lane, then a rule assigns",
			incoming: snapshot.IncomingAllowList,
			rules:    []snapshot.EntryRule{{Name: "q", LaneFrom: ptr(query("lane"))}},
			target:   "/?lane=dev-q",
			header:   http.Header{"X-Swimlane": {"evil"}},
			want:     Decision{Lane: "dev-q", Incoming: "evil", Stripped: true, Rule: "q"},
		},
		{
			name:     "trust with an invalid incoming lane runs rules",
			incoming: snapshot.IncomingTrust,
			rules:    []snapshot.EntryRule{{Name: "q", LaneFrom: ptr(query("lane"))}},
			target:   "/?lane=dev-q",
			header:   http.Header{"X-Swimlane": {"bad lane"}},
			want:     Decision{Lane: "dev-q", Rule: "q"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.target
			if target == "" {
				target = "/"
			}
			entry := &snapshot.LaneEntry{Gateway: "public", Incoming: tt.incoming, Allow: []lane.Lane{"main"}, Rules: tt.rules}
			r := newRequest(target, tt.header)
			got := Prepare(entry).Apply(names, r)
			if got != tt.want {
				t.Errorf("Apply = %+v, want %+v", got, tt.want)
			}
			if got.Rule != "" {
				// The assigned lane is the caller's to write: Apply must not have.
				if l, _ := names.FromHeaders(r.Header); l == got.Lane {
					t.Errorf("Apply wrote the assigned lane %q into the request", l)
				}
			}
			// The one-shot form decides the same on a fresh request.
			if again := Apply(entry, names, newRequest(target, tt.header)); again != got {
				t.Errorf("package Apply = %+v, Policy.Apply = %+v", again, got)
			}
		})
	}
}

func TestNilPolicy(t *testing.T) {
	if Prepare(nil) != nil {
		t.Fatal("Prepare(nil) is not nil")
	}
	r := newRequest("/?lane=x", http.Header{"Baggage": {"swimlane=dev-1"}})
	if got, want := Apply(nil, names, r), (Decision{Lane: "dev-1", Incoming: "dev-1"}); got != want {
		t.Errorf("Apply(nil) = %+v, want %+v", got, want)
	}
	if got := (*Policy)(nil).Apply(names, newRequest("/", nil)); got != (Decision{}) {
		t.Errorf("nil Policy without a lane = %+v, want none", got)
	}
}

func TestCustomNames(t *testing.T) {
	custom := lane.Names{Header: "x-env", BaggageKey: "env"}
	r := newRequest("/", http.Header{
		"X-Env":      {"dev-1"},
		"X-Swimlane": {"other"}, // not a lane header under these names: left alone
		"Baggage":    {"env=dev-1,swimlane=x"},
	})
	got := Prepare(&snapshot.LaneEntry{Incoming: snapshot.IncomingStrip}).Apply(custom, r)
	if want := (Decision{Incoming: "dev-1", Stripped: true}); got != want {
		t.Errorf("Apply = %+v, want %+v", got, want)
	}
	if r.Header.Get("X-Env") != "" || r.Header.Get("Baggage") != "swimlane=x" || r.Header.Get("X-Swimlane") != "other" {
		t.Errorf("headers after strip = %v", r.Header)
	}
}

// TestConcurrent shares one Policy between goroutines, for the race detector.
func TestConcurrent(t *testing.T) {
	pol := Prepare(&snapshot.LaneEntry{
		Incoming: snapshot.IncomingStrip,
		Rules: []snapshot.EntryRule{
			{LaneFrom: &snapshot.ValueFrom{Query: "lane"}},
			{Buckets: &snapshot.EntryBucket{From: snapshot.ValueFrom{Cookie: "uid"}, Lanes: []lane.Lane{"even", "odd"}, Numeric: true}},
		},
	})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				r := newRequest("/", http.Header{"Cookie": {fmt.Sprintf("uid=%d", g*1000+i)}, "X-Swimlane": {"dev-1"}})
				want := lane.Lane([]string{"even", "odd"}[i%2])
				if d := pol.Apply(names, r); d.Lane != want || !d.Stripped {
					t.Errorf("Apply = %+v, want lane %q", d, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestUserHashMixesLowBits guards against raw FNV-1a's weak low bits: with two buckets, the
// odd-numbered IDs user-1, user-3, ... must not all land in one bucket.
func TestUserHashMixesLowBits(t *testing.T) {
	var odd [2]int
	for i := 1; i < 200; i += 2 {
		odd[userHash(fmt.Sprintf("user-%d", i))%2]++
	}
	// 100 IDs, p = 1/2: sd 5; allow 5 sd.
	if odd[0] < 25 || odd[1] < 25 {
		t.Errorf("odd-numbered IDs split %v over two buckets; want about 50/50", odd)
	}
}

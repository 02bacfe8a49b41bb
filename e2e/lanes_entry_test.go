package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"swimlane.dev/swimlane/internal/lane"
)

// entryMesh has one service, front, deployed in main, feat, even and odd, behind four
// gateways with different lane entry policies:
//
//	ingress   incoming strip, and one rule of every kind, in order
//	partner   incoming allowList [feat]
//	trusting  incoming trust (explicit), with a rule that must not override a kept lane
//	open      no LaneEntry at all (trust by default)
func entryMesh() string {
	return lanesMeshYAML(
		[]string{"ingress=front", "partner=front", "trusting=front", "open=front"},
		[]string{"front"},
		[]string{
			echoWorkload("front-main", "front", "main"),
			echoWorkload("front-feat", "front", "feat"),
			echoWorkload("front-even", "front", "even"),
			echoWorkload("front-odd", "front", "odd"),
		},
		`---
apiVersion: swimlane.dev/v1alpha1
kind: LaneEntry
metadata: {name: ingress-lanes}
spec:
  gateway: ingress
  incoming: strip
  rules:
  - name: beta-header
    match: {from: {header: x-beta}, value: "1"}
    lane: feat
  - name: canary-cookie
    match: {from: {cookie: canary}, value: "yes"}
    lane: canary
  - name: lane-query
    laneFrom: {query: lane}
  - name: vip-users
    users: {from: {header: x-user}, ids: [alice, bob]}
    lane: vip
  - name: parity
    buckets: {from: {header: x-uid}, lanes: [even, odd], numeric: true}
  - name: colours
    buckets: {from: {header: x-session}, lanes: [blue, green]}
  - name: ten-percent
    percent: {from: {header: x-customer}, value: 10}
    lane: ten
---
apiVersion: swimlane.dev/v1alpha1
kind: LaneEntry
metadata: {name: partner-lanes}
spec:
  gateway: partner
  incoming: allowList
  allow: [feat]
---
apiVersion: swimlane.dev/v1alpha1
kind: LaneEntry
metadata: {name: trusting-lanes}
spec:
  gateway: trusting
  incoming: trust
  rules:
  - match: {from: {header: x-beta}}
    lane: odd
`)
}

// deployed are the lanes front has a deployment in; other lanes fall back to main.
var entryDeployed = map[string]bool{"main": true, "feat": true, "even": true, "odd": true}

// entryResult is what one request through a gateway came to: the lane the app received (in
// x-swimlane; "" for none) and the lane whose deployment served it.
type entryResult struct {
	received, served string
}

func (r entryResult) String() string {
	return fmt.Sprintf("received %q, served by %q", r.received, r.served)
}

// wantEntry is the result of a request that got lane l ("" for none).
func wantEntry(l string) entryResult {
	served := l
	if !entryDeployed[l] {
		served = "main"
	}
	return entryResult{received: l, served: served}
}

// entryGet sends one request and returns its result, checking that every lane form the app
// received agrees with x-swimlane.
func entryGet(t *testing.T, c *http.Client, url string, headers laneHdrs) entryResult {
	t.Helper()
	got, err := entryTry(c, url, headers)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// entryTry is entryGet for other goroutines than the test's: it returns the error.
func entryTry(c *http.Client, url string, headers laneHdrs) (entryResult, error) {
	r, err := laneGet(c, url, headers)
	if err != nil {
		return entryResult{}, fmt.Errorf("GET %s %v: %v", url, headers, err)
	}
	if r.status != http.StatusOK {
		return entryResult{}, fmt.Errorf("GET %s %v: status %d: %s", url, headers, r.status, r.body)
	}
	h := http.Header{}
	for k, v := range r.answer.Headers {
		h.Set(k, v)
	}
	got := entryResult{received: r.answer.Headers["x-swimlane"], served: r.answer.Lane}
	if l, src := lane.Default().FromHeaders(h); string(l) != got.received {
		return got, fmt.Errorf("GET %s %v: the app received x-swimlane %q but lane %q in %s: %v", url, headers, got.received, l, src, r.answer.Headers)
	}
	return got, nil
}

// TestLaneEntryRules drives every kind of entry rule through the real gateway.
func TestLaneEntryRules(t *testing.T) {
	m := startLanesMesh(t, entryMesh())
	url := m.gateway(t, "ingress") + "/"
	c := lanesClient()
	defer c.CloseIdleConnections()

	cases := []struct {
		name    string
		path    string
		headers laneHdrs
		want    string
	}{
		{name: "no rule applies", want: ""},
		{name: "header match", headers: laneHdrs{"x-beta", "1"}, want: "feat"},
		{name: "header match, other value", headers: laneHdrs{"x-beta", "2"}, want: ""},
		{name: "cookie match", headers: laneHdrs{"Cookie", "session=abc; canary=yes"}, want: "canary"},
		{name: "cookie match, other value", headers: laneHdrs{"Cookie", "canary=no"}, want: ""},
		{name: "cookie name in a header is not a cookie", headers: laneHdrs{"canary", "yes"}, want: ""},
		{name: "query laneFrom", path: "?lane=odd", want: "odd"},
		{name: "query laneFrom, undeployed lane", path: "?x=1&lane=dev-q", want: "dev-q"},
		{name: "query laneFrom, invalid lane", path: "?lane=bad%20lane", want: ""},
		{name: "users allow-list: alice", headers: laneHdrs{"x-user", "alice"}, want: "vip"},
		{name: "users allow-list: bob", headers: laneHdrs{"x-user", "bob"}, want: "vip"},
		{name: "users allow-list: carol is not listed", headers: laneHdrs{"x-user", "carol"}, want: ""},
		{name: "rules in order: header before query", path: "?lane=odd", headers: laneHdrs{"x-beta", "1"}, want: "feat"},
		{name: "rules in order: cookie before users", headers: laneHdrs{"Cookie", "canary=yes", "x-user", "alice"}, want: "canary"},
		{name: "a stripped lane does not count, rules still apply", headers: laneHdrs{"x-swimlane", "even", "x-user", "bob"}, want: "vip"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 3; i++ {
				if got, want := entryGet(t, c, url+tc.path, tc.headers), wantEntry(tc.want); got != want {
					t.Fatalf("got %s, want %s", got, want)
				}
			}
		})
	}

	t.Run("numeric buckets split odd and even user IDs exactly", func(t *testing.T) {
		const users = 400
		var mu sync.Mutex
		bad := []string{}
		perLane := map[string]int{}
		laneMany(t, users, func(c *http.Client, i int) error {
			got, err := entryTry(c, url, laneHdrs{"x-uid", strconv.Itoa(i)})
			want := wantEntry([]string{"even", "odd"}[i%2])
			mu.Lock()
			defer mu.Unlock()
			perLane[got.received]++
			if err == nil && got != want {
				bad = append(bad, fmt.Sprintf("user %d: %s, want %s", i, got, want))
			}
			return err
		})
		if len(bad) > 0 {
			t.Errorf("%d of %d users in the wrong lane: %v", len(bad), users, bad[:min(len(bad), 5)])
		}
		t.Logf("numeric buckets over %d users: %v", users, perLane)
		// A non-numeric ID in a numeric rule is hashed: it still gets one of the two lanes.
		for _, id := range []string{"u-17", "-3", "1e3"} {
			if got := entryGet(t, c, url, laneHdrs{"x-uid", id}); got != wantEntry("even") && got != wantEntry("odd") {
				t.Errorf("non-numeric ID %q: %s, want even or odd", id, got)
			}
		}
	})

	t.Run("hashed buckets split users evenly and stickily", func(t *testing.T) {
		const users = 1000
		got := make([]string, users)
		laneMany(t, users, func(c *http.Client, i int) error {
			r, err := entryTry(c, url, laneHdrs{"x-session", fmt.Sprintf("session-%d", i)})
			got[i] = r.received
			return err
		})
		n := laneCounts(got)
		if n["blue"]+n["green"] != users {
			t.Fatalf("lanes over %d users: %v, want only blue and green", users, n)
		}
		laneWithinSigmas(t, "hashed buckets: blue", n["blue"], users, 0.5, 5)
		// The bucket is the documented user hash of the ID modulo the number of lanes.
		wrong := 0
		for i, l := range got {
			if want := []string{"blue", "green"}[fnv1a(fmt.Sprintf("session-%d", i))%2]; l != want {
				wrong++
			}
		}
		if wrong > 0 {
			t.Errorf("%d of %d users are not in the bucket the user hash %% 2 names", wrong, users)
		}
		// Sticky: the same users again get the same lanes.
		for i := 0; i < 50; i++ {
			if l := entryGet(t, c, url, laneHdrs{"x-session", fmt.Sprintf("session-%d", i)}).received; l != got[i] {
				t.Errorf("user session-%d: lane %q, then %q", i, got[i], l)
			}
		}
	})

	t.Run("percent 10 is a sticky tenth of users", func(t *testing.T) {
		const users = 2000
		first := make([]string, users)
		second := make([]string, users)
		laneMany(t, 2*users, func(c *http.Client, i int) error {
			u := i % users // each user asked twice, the second time after the others' first
			r, err := entryTry(c, url, laneHdrs{"x-customer", fmt.Sprintf("customer-%d", u)})
			if i < users {
				first[u] = r.received
			} else {
				second[u] = r.received
			}
			return err
		})
		in, flipped, wrong := 0, 0, 0
		for u := 0; u < users; u++ {
			if first[u] != "" && first[u] != "ten" {
				t.Fatalf("customer-%d got lane %q, want ten or none", u, first[u])
			}
			if first[u] == "ten" {
				in++
			}
			if first[u] != second[u] {
				flipped++
			}
			if want := fnv1a(fmt.Sprintf("customer-%d", u))%10000 < 1000; want != (first[u] == "ten") {
				wrong++
			}
		}
		laneWithinSigmas(t, "percent 10: users in lane ten", in, users, 0.10, 5)
		if flipped > 0 {
			t.Errorf("%d of %d users got a different lane the second time", flipped, users)
		}
		if wrong > 0 {
			t.Errorf("%d of %d users disagree with user hash %% 10000 < 1000", wrong, users)
		}
	})
}

// fnv1a is the user hash the entry rules document: FNV-1a 64 finished with splitmix64's
// mixer, computed here independently of the product's code.
func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// TestLaneEntryIncoming checks what each gateway does with a lane sent from outside: strip
// removes every form, allowList keeps only listed lanes, trust (explicit or by default) keeps
// it, and rules never override a kept lane.
func TestLaneEntryIncoming(t *testing.T) {
	m := startLanesMesh(t, entryMesh())
	c := lanesClient()
	defer c.CloseIdleConnections()
	const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

	type check func(t *testing.T, received map[string]string)
	keeps := func(name, want string) check {
		return func(t *testing.T, received map[string]string) {
			if got := received[name]; got != want {
				t.Errorf("the app received %s %q, want %q", name, got, want)
			}
		}
	}
	cases := []struct {
		name    string
		gateway string
		headers laneHdrs
		want    string // the lane the request gets ("" none)
		checks  []check
	}{
		// strip
		{name: "strip: x-swimlane", gateway: "ingress", headers: laneHdrs{"x-swimlane", "feat"}},
		{name: "strip: baggage member, other members kept", gateway: "ingress", headers: laneHdrs{"baggage", "user=42,swimlane=feat;p=1,tenant=acme"},
			checks: []check{keeps("baggage", "user=42,tenant=acme")}},
		{name: "strip: baggage with only the lane", gateway: "ingress", headers: laneHdrs{"baggage", "swimlane=feat"}, checks: []check{keeps("baggage", "")}},
		{name: "strip: tracestate member, vendors kept", gateway: "ingress", headers: laneHdrs{"traceparent", traceparent, "tracestate", "swimlane=feat,congo=t61rcWkgMzE"},
			checks: []check{keeps("tracestate", "congo=t61rcWkgMzE"), keeps("traceparent", traceparent)}},
		{name: "strip: uberctx-swimlane", gateway: "ingress", headers: laneHdrs{"uberctx-swimlane", "feat"}},
		{name: "strip: ot-baggage-swimlane", gateway: "ingress", headers: laneHdrs{"ot-baggage-swimlane", "feat"}},
		{name: "strip: every form at once", gateway: "ingress", headers: laneHdrs{"x-swimlane", "feat", "baggage", "swimlane=even", "traceparent", traceparent,
			"tracestate", "swimlane=odd", "uberctx-swimlane", "feat", "ot-baggage-swimlane", "even"}},
		{name: "strip: an invalid lane is removed too", gateway: "ingress", headers: laneHdrs{"x-swimlane", "bad lane!", "uberctx-swimlane", "x%0Ay"},
			checks: []check{keeps("x-swimlane", ""), keeps("uberctx-swimlane", "")}},
		{name: "strip: then a rule assigns", gateway: "ingress", headers: laneHdrs{"x-swimlane", "even", "x-beta", "1"}, want: "feat"},

		// allowList [feat]
		{name: "allowList: allowed lane kept", gateway: "partner", headers: laneHdrs{"x-swimlane", "feat"}, want: "feat"},
		{name: "allowList: allowed lane in baggage kept", gateway: "partner", headers: laneHdrs{"baggage", "swimlane=feat,user=1"}, want: "feat",
			checks: []check{keeps("baggage", "swimlane=feat,user=1")}},
		{name: "allowList: other lane stripped", gateway: "partner", headers: laneHdrs{"x-swimlane", "even"}},
		{name: "allowList: other lane in baggage stripped", gateway: "partner", headers: laneHdrs{"baggage", "user=1,swimlane=odd"},
			checks: []check{keeps("baggage", "user=1")}},
		{name: "allowList: other lane in tracestate stripped", gateway: "partner", headers: laneHdrs{"traceparent", traceparent, "tracestate", "swimlane=odd"},
			checks: []check{keeps("tracestate", "")}},
		{name: "allowList: other lane in jaeger baggage stripped", gateway: "partner", headers: laneHdrs{"uberctx-swimlane", "odd"}},

		// trust
		{name: "trust (default): x-swimlane kept", gateway: "open", headers: laneHdrs{"x-swimlane", "even"}, want: "even"},
		{name: "trust (default): baggage kept", gateway: "open", headers: laneHdrs{"baggage", "swimlane=odd"}, want: "odd"},
		{name: "trust (default): tracestate kept", gateway: "open", headers: laneHdrs{"traceparent", traceparent, "tracestate", "swimlane=feat"}, want: "feat"},
		{name: "trust (default): ot-baggage kept", gateway: "open", headers: laneHdrs{"ot-baggage-swimlane", "even"}, want: "even"},
		{name: "trust (default): unknown lane kept, served by main", gateway: "open", headers: laneHdrs{"x-swimlane", "dev-nowhere"}, want: "dev-nowhere"},
		{name: "trust: kept lane wins over rules", gateway: "trusting", headers: laneHdrs{"x-swimlane", "even", "x-beta", "1"}, want: "even"},
		{name: "trust: rules assign when no lane came", gateway: "trusting", headers: laneHdrs{"x-beta", "1"}, want: "odd"},
		{name: "trust: no lane, no rule", gateway: "trusting"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := m.gateway(t, tc.gateway) + "/"
			for i := 0; i < 3; i++ {
				r := mustLaneGet(t, c, url, tc.headers)
				h := http.Header{}
				for k, v := range r.answer.Headers {
					h.Set(k, v)
				}
				got := entryResult{received: r.answer.Headers["x-swimlane"], served: r.answer.Lane}
				if want := wantEntry(tc.want); got != want {
					t.Fatalf("got %s, want %s (headers received: %v)", got, want, r.answer.Headers)
				}
				if l, src := lane.Default().FromHeaders(h); string(l) != tc.want {
					t.Fatalf("the app received lane %q (in %s), want %q: %v", l, src, tc.want, r.answer.Headers)
				}
				if tc.want == "" {
					for _, name := range []string{"x-swimlane", "uberctx-swimlane", "ot-baggage-swimlane"} {
						if v, ok := r.answer.Headers[name]; ok {
							t.Errorf("the app received %s %q, want none", name, v)
						}
					}
					if strings.Contains(r.answer.Headers["baggage"], "swimlane") || strings.Contains(r.answer.Headers["tracestate"], "swimlane") {
						t.Errorf("a lane member reached the app: baggage %q, tracestate %q", r.answer.Headers["baggage"], r.answer.Headers["tracestate"])
					}
				}
				for _, ck := range tc.checks {
					ck(t, r.answer.Headers)
				}
			}
		})
	}
}

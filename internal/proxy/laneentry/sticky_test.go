package laneentry

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"testing"

	"swimlane.dev/swimlane/internal/lane"
	"swimlane.dev/swimlane/internal/snapshot"
)

const stickyUsers = 10000

// sources returns one policy per way of carrying the user ID, each with the single rule
// build(from). Evaluating a user through all three is three repeated evaluations that must
// agree: the lane depends on the ID, not on the request or where the ID was carried.
func sources(build func(from snapshot.ValueFrom) snapshot.EntryRule) []*Policy {
	froms := []snapshot.ValueFrom{{Header: "x-user"}, {Cookie: "uid"}, {Query: "uid"}}
	pols := make([]*Policy, len(froms))
	for i, from := range froms {
		pols[i] = Prepare(&snapshot.LaneEntry{Incoming: snapshot.IncomingStrip, Rules: []snapshot.EntryRule{build(from)}})
	}
	return pols
}

// requestFor carries id the way pols[i] reads it.
func requestFor(i int, id string) *http.Request {
	switch i {
	case 0:
		return newRequest("/", http.Header{"X-User": {id}})
	case 1:
		return newRequest("/", http.Header{"Cookie": {"uid=" + id}})
	default:
		return newRequest("/?uid="+url.QueryEscape(id), nil)
	}
}

// stickyLanes evaluates every user through every policy and returns each user's lane,
// failing if any user's evaluations disagree.
func stickyLanes(t *testing.T, pols []*Policy, ids []string) []lane.Lane {
	t.Helper()
	out := make([]lane.Lane, len(ids))
	for u, id := range ids {
		for i, pol := range pols {
			d := pol.Apply(names, requestFor(i, id))
			if i == 0 {
				out[u] = d.Lane
			} else if d.Lane != out[u] {
				t.Fatalf("user %q: lane %q on evaluation %d, %q on the first", id, d.Lane, i+1, out[u])
			}
		}
	}
	return out
}

func userIDs(format string) []string {
	ids := make([]string, stickyUsers)
	for i := range ids {
		ids[i] = fmt.Sprintf(format, i)
	}
	return ids
}

// within5Sigma checks that count of n trials is within five binomial standard deviations
// of share p.
func within5Sigma(t *testing.T, what string, count, n int, p float64) {
	t.Helper()
	mean := float64(n) * p
	sigma := math.Sqrt(float64(n) * p * (1 - p))
	if math.Abs(float64(count)-mean) > 5*sigma {
		t.Errorf("%s: %d of %d, want %.0f ± %.0f (5σ)", what, count, n, mean, 5*sigma)
	}
}

func TestStickyPercent(t *testing.T) {
	pols := sources(func(from snapshot.ValueFrom) snapshot.EntryRule {
		return snapshot.EntryRule{Lane: "canary", Percent: &snapshot.EntryShare{From: from, Value: 10}}
	})
	lanes := stickyLanes(t, pols, userIDs("user-%d"))
	in := 0
	for _, l := range lanes {
		switch l {
		case "canary":
			in++
		case "":
		default:
			t.Fatalf("unexpected lane %q", l)
		}
	}
	within5Sigma(t, "users in the 10% canary", in, stickyUsers, 0.10)
}

func TestStickyPercentGrows(t *testing.T) {
	// Raising the share only adds users: everyone in at 10% is still in at 25%.
	ids := userIDs("account-%d")
	at := func(v float64) []lane.Lane {
		return stickyLanes(t, sources(func(from snapshot.ValueFrom) snapshot.EntryRule {
			return snapshot.EntryRule{Lane: "canary", Percent: &snapshot.EntryShare{From: from, Value: v}}
		}), ids)
	}
	small, large := at(10), at(25)
	for u := range ids {
		if small[u] == "canary" && large[u] != "canary" {
			t.Fatalf("user %q left the canary when the share grew", ids[u])
		}
	}
}

func TestStickyBucketsNumeric(t *testing.T) {
	pols := sources(func(from snapshot.ValueFrom) snapshot.EntryRule {
		return snapshot.EntryRule{Buckets: &snapshot.EntryBucket{From: from, Lanes: []lane.Lane{"even", "odd"}, Numeric: true}}
	})
	lanes := stickyLanes(t, pols, userIDs("%d"))
	for u, l := range lanes {
		want := lane.Lane("even")
		if u%2 == 1 {
			want = "odd"
		}
		if l != want {
			t.Fatalf("user %d got %q, want %q", u, l, want)
		}
	}
}

func TestStickyBucketsHashed(t *testing.T) {
	for _, numeric := range []bool{false, true} { // numeric falls back to the hash for non-integers
		t.Run(fmt.Sprintf("numeric=%v", numeric), func(t *testing.T) {
			pols := sources(func(from snapshot.ValueFrom) snapshot.EntryRule {
				return snapshot.EntryRule{Buckets: &snapshot.EntryBucket{From: from, Lanes: []lane.Lane{"blue", "green"}, Numeric: numeric}}
			})
			counts := map[lane.Lane]int{}
			for _, l := range stickyLanes(t, pols, userIDs("user-%d")) {
				counts[l]++
			}
			if len(counts) != 2 {
				t.Fatalf("lanes = %v, want blue and green only", counts)
			}
			within5Sigma(t, "blue bucket", counts["blue"], stickyUsers, 0.5)
			within5Sigma(t, "green bucket", counts["green"], stickyUsers, 0.5)
		})
	}
}

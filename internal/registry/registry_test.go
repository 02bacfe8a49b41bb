package registry

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestListStaysSorted checks List, which patches its last answer with the workloads changed
// since, returns what sorting every workload from scratch would, whatever the mix of changes
// between calls; and that a slice it returned earlier never changes.
func TestListStaysSorted(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	r := New()
	want := map[string]Workload{}
	type answer struct {
		ws   []Workload
		copy []Workload
	}
	var answers []answer
	for round := 0; round < 300; round++ {
		// Mostly few changes between calls (merged), sometimes many (sorted again).
		changes := 1 + rnd.IntN(4)
		if round%25 == 0 {
			changes = 200
		}
		for c := 0; c < changes; c++ {
			name := fmt.Sprintf("w-%03d", rnd.IntN(400))
			switch rnd.IntN(4) {
			case 0:
				r.Remove(name)
				delete(want, name)
			case 1:
				if r.SetHealth(name, "draining") {
					w := want[name]
					w.Health = "draining"
					want[name] = w
				}
			default:
				w := Workload{Name: name, Address: fmt.Sprintf("127.0.0.1:%d", rnd.IntN(60000)), Labels: map[string]string{"app": name}}
				r.Upsert(w)
				want[name] = w
			}
		}
		got, _, _ := r.List()
		sorted := slices.Collect(maps.Values(want))
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
		if len(got) != len(sorted) {
			t.Fatalf("round %d: %d workloads, want %d", round, len(got), len(sorted))
		}
		for i := range got {
			if g, w := got[i], sorted[i]; g.Name != w.Name || g.Address != w.Address || g.Health != w.Health || !maps.Equal(g.Labels, w.Labels) {
				t.Fatalf("round %d: workload %d is %+v, want %+v", round, i, g, w)
			}
		}
		answers = append(answers, answer{got, slices.Clone(got)})
	}
	for i, a := range answers {
		for j := range a.ws {
			if a.ws[j].Name != a.copy[j].Name || a.ws[j].Address != a.copy[j].Address || a.ws[j].Health != a.copy[j].Health {
				t.Fatalf("the answer of round %d changed after it was returned", i)
			}
		}
	}
}

func TestChangedSince(t *testing.T) {
	r := New()
	r.Upsert(Workload{Name: "a"})
	r.Upsert(Workload{Name: "b"})
	v, _ := r.Version()
	r.Upsert(Workload{Name: "c"})
	r.SetHealth("a", "draining")
	r.SetHealth("a", "draining") // unchanged: not a change
	r.Upsert(Workload{Name: "c", Address: "x"})
	r.Remove("b")
	r.Upsert(Workload{Name: "d"})
	r.Remove("d")
	now, _ := r.Version()
	tests := []struct {
		name        string
		since       uint64
		wantChanged string
		wantRemoved []string
		wantOK      bool
	}{
		{name: "each changed workload once, as it is now", since: v, wantChanged: "a:draining c:x", wantRemoved: []string{"b", "d"}, wantOK: true},
		{name: "from the start", since: 0, wantChanged: "a:draining c:x", wantRemoved: []string{"b", "d"}, wantOK: true},
		{name: "nothing since now", since: now, wantOK: true},
		{name: "a version not reached yet", since: now + 1, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changed, removed, version, ok := r.ChangedSince(tt.since)
			var got []string
			for _, w := range changed {
				got = append(got, w.Name+":"+w.Health+w.Address)
			}
			if ok != tt.wantOK || strings.Join(got, " ") != tt.wantChanged || !slices.Equal(removed, tt.wantRemoved) || version != now {
				t.Errorf("ChangedSince(%d) = %v, %v, %d, %v; want %s, %v, %d, %v", tt.since, got, removed, version, ok, tt.wantChanged, tt.wantRemoved, now, tt.wantOK)
			}
		})
	}
	for i := 0; i < 3*recentChanges; i++ {
		r.Upsert(Workload{Name: fmt.Sprint(i)})
	}
	if _, _, _, ok := r.ChangedSince(now); ok {
		t.Error("ChangedSince answered for a version older than it remembers")
	}
	last, _ := r.Version()
	if changed, _, _, ok := r.ChangedSince(last - recentChanges); !ok || len(changed) != recentChanges {
		t.Errorf("ChangedSince(%d versions back) = %d workloads, %v; want %d, true", recentChanges, len(changed), ok, recentChanges)
	}
}

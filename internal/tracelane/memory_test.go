package tracelane

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"swimlane.dev/swimlane/internal/lane"
)

// fakeClock is a settable clock for NewWithClock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// check verifies m's internal invariants: every shard's list and free list together cover its
// entries exactly once, the list agrees with the map both ways, and the size counter matches.
func (m *Memory) check() error {
	total := 0
	for si := range m.shards {
		s := &m.shards[si]
		s.mu.Lock()
		seen := make([]bool, len(s.entries))
		n := 0
		prev := int32(nilIndex)
		for i := s.head; i != nilIndex; i = s.entries[i].next {
			if seen[i] {
				s.mu.Unlock()
				return fmt.Errorf("shard %d: entry %d twice in the list", si, i)
			}
			seen[i] = true
			e := &s.entries[i]
			if e.prev != prev {
				s.mu.Unlock()
				return fmt.Errorf("shard %d: entry %d prev %d, want %d", si, i, e.prev, prev)
			}
			if j, ok := s.index[e.key]; !ok || j != i {
				s.mu.Unlock()
				return fmt.Errorf("shard %d: entry %d key %q maps to %d (%v)", si, i, e.key, j, ok)
			}
			prev = i
			n++
		}
		if s.tail != prev {
			s.mu.Unlock()
			return fmt.Errorf("shard %d: tail %d, want %d", si, s.tail, prev)
		}
		for i := s.free; i != nilIndex; i = s.entries[i].next {
			if seen[i] {
				s.mu.Unlock()
				return fmt.Errorf("shard %d: entry %d both free and used", si, i)
			}
			seen[i] = true
		}
		for i, ok := range seen {
			if !ok {
				s.mu.Unlock()
				return fmt.Errorf("shard %d: entry %d lost", si, i)
			}
		}
		if n != len(s.index) || int64(n) != s.size.Load() || n > len(s.entries) {
			s.mu.Unlock()
			return fmt.Errorf("shard %d: list %d, map %d, size %d, capacity %d", si, n, len(s.index), s.size.Load(), len(s.entries))
		}
		total += len(s.entries)
		s.mu.Unlock()
	}
	if total != m.capacity {
		return fmt.Errorf("shard capacities sum to %d, want %d", total, m.capacity)
	}
	return nil
}

func mustCheck(t *testing.T, m *Memory) {
	t.Helper()
	if err := m.check(); err != nil {
		t.Fatal(err)
	}
}

func wantStats(t *testing.T, m *Memory, want Stats) {
	t.Helper()
	if got := m.Stats(); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

func TestRememberRecall(t *testing.T) {
	m := New(100, time.Minute)
	if _, ok := m.Recall(w3cID); ok {
		t.Fatal("hit in an empty memory")
	}
	m.Remember(w3cID, "dev-feature1")
	if l, ok := m.Recall(w3cID); !ok || l != "dev-feature1" {
		t.Fatalf("Recall = %q, %v", l, ok)
	}
	m.Remember(w3cID, "dev-feature2") // a later request of the trace in another lane
	if l, ok := m.Recall(w3cID); !ok || l != "dev-feature2" {
		t.Fatalf("Recall after update = %q, %v", l, ok)
	}
	// Ignored: empty or invalid input.
	m.Remember("", "dev")
	m.Remember("t2", "")
	m.Remember("t3", "bad lane")
	m.Remember(string(make([]byte, MaxKeyLen+1)), "dev")
	if _, ok := m.Recall(""); ok {
		t.Fatal("hit for the empty id")
	}
	// The empty id is not looked up, so not counted.
	wantStats(t, m, Stats{Size: 1, Capacity: 100, Hits: 2, Misses: 1})
	mustCheck(t, m)
}

// TestRememberCopiesStrings checks that an entry pins neither the header its key was sliced
// from nor the one its lane was, and that entries of one lane share one copy of it.
func TestRememberCopiesStrings(t *testing.T) {
	m := New(4, time.Minute) // one shard
	traceparent := strings.Clone("00-" + w3cID + "-b7ad6b7169203331-01")
	baggage := strings.Clone("user=1,swimlane=dev-feature1,tenant=acme")
	id, l := traceparent[3:35], lane.Lane(baggage[16:28])
	m.Remember(id, l)
	m.Remember("another", lane.Lane(strings.Clone("dev-feature1")))
	s := &m.shards[0]
	e1, e2 := &s.entries[s.index[w3cID]], &s.entries[s.index["another"]]
	if e1.key != w3cID || e1.lane != "dev-feature1" {
		t.Fatalf("entry %+v", *e1)
	}
	if within(e1.key, traceparent) || within(string(e1.lane), baggage) {
		t.Fatal("entry points into the request's headers")
	}
	if unsafe.StringData(string(e1.lane)) != unsafe.StringData(string(e2.lane)) {
		t.Fatal("entries of one lane hold separate copies")
	}
}

// within reports whether s's bytes lie inside buf's.
func within(s, buf string) bool {
	p, lo := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(buf)))
	return p >= lo && p < lo+uintptr(len(buf))
}

func TestLRUEvictionOrder(t *testing.T) {
	m := New(4, time.Hour) // under 8 entries: one shard, so the order is global
	if len(m.shards) != 1 {
		t.Fatalf("%d shards", len(m.shards))
	}
	for _, k := range []string{"a", "b", "c", "d"} {
		m.Remember(k, lane.Lane("lane-"+k))
	}
	// Use a: b is now the least recently used.
	if _, ok := m.Recall("a"); !ok {
		t.Fatal("a missing")
	}
	m.Remember("e", "lane-e") // evicts b
	// Refresh c by remembering: d is now the least recently used.
	m.Remember("c", "lane-c")
	m.Remember("f", "lane-f") // evicts d
	for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": false, "e": true, "f": true} {
		if l, ok := m.Recall(k); ok != want || ok && l != lane.Lane("lane-"+k) {
			t.Errorf("Recall(%s) = %q, %v; want present=%v", k, l, ok, want)
		}
	}
	wantStats(t, m, Stats{Size: 4, Capacity: 4, Hits: 1 + 4, Misses: 2, Evictions: 2})
	mustCheck(t, m)

	// The recalls above ran in map order; recall again in a known order and check that
	// evictions then go oldest first.
	for _, k := range []string{"a", "c", "e", "f"} {
		m.Recall(k)
	}
	for i, evicted := range []string{"a", "c", "e", "f"} {
		m.Remember("n"+strconv.Itoa(i), "x")
		if _, ok := m.Recall(evicted); ok {
			t.Fatalf("%s survived eviction %d", evicted, i)
		}
	}
	mustCheck(t, m)
}

func TestCapacityNeverExceeded(t *testing.T) {
	for _, capacity := range []int{1, 2, 7, 8, 15, 16, 63, 64, 100, 1000, 1001} {
		m := New(capacity, time.Hour)
		mustCheck(t, m)
		for i := 0; i < capacity*8; i++ {
			m.Remember(strconv.Itoa(i), "l")
			if s := m.Stats(); s.Size > capacity {
				t.Fatalf("capacity %d: size %d after %d", capacity, s.Size, i+1)
			}
		}
		s := m.Stats()
		// 8x the capacity in distinct keys fills every shard.
		if s.Size != capacity || s.Evictions != uint64(capacity*7) {
			t.Errorf("capacity %d: %+v", capacity, s)
		}
		mustCheck(t, m)
	}
}

func TestTTL(t *testing.T) {
	clock := newFakeClock()
	m := NewWithClock(100, 10*time.Second, clock.Now)
	m.Remember("t1", "dev")
	m.Remember("t2", "dev")

	clock.Advance(10*time.Second - 1)
	if _, ok := m.Recall("t1"); !ok {
		t.Fatal("t1 expired early")
	}
	m.Remember("t2", "dev") // refresh: t2 now expires at 20s-1ns

	clock.Advance(1) // 10s: t1's expiry; a recall did not extend it
	if _, ok := m.Recall("t1"); ok {
		t.Fatal("t1 alive at its expiry")
	}
	if _, ok := m.Recall("t2"); !ok {
		t.Fatal("refreshed t2 expired")
	}
	wantStats(t, m, Stats{Size: 1, Capacity: 100, Hits: 2, Misses: 1, Evictions: 1})

	clock.Advance(10 * time.Second)
	if _, ok := m.Recall("t2"); ok {
		t.Fatal("t2 alive after its expiry")
	}
	wantStats(t, m, Stats{Size: 0, Capacity: 100, Hits: 2, Misses: 2, Evictions: 2})
	mustCheck(t, m)
}

func TestExpiredSweptOnRemember(t *testing.T) {
	clock := newFakeClock()
	m := NewWithClock(4, time.Second, clock.Now) // one shard
	m.Remember("a", "l")
	m.Remember("b", "l")
	m.Remember("c", "l")
	clock.Advance(time.Second)
	m.Remember("d", "l") // sweeps up to two expired entries from the cold end: a, b
	wantStats(t, m, Stats{Size: 2, Capacity: 4, Evictions: 2})
	m.Remember("e", "l") // and then c
	wantStats(t, m, Stats{Size: 2, Capacity: 4, Evictions: 3})
	if _, ok := m.Recall("d"); !ok {
		t.Fatal("fresh d missing")
	}
	mustCheck(t, m)
}

func TestClockStepsBack(t *testing.T) {
	clock := newFakeClock()
	m := NewWithClock(10, time.Second, clock.Now)
	clock.Advance(-time.Hour) // before the epoch: times are negative, still ordered
	m.Remember("a", "l")
	if _, ok := m.Recall("a"); !ok {
		t.Fatal("miss")
	}
	clock.Advance(time.Second)
	if _, ok := m.Recall("a"); ok {
		t.Fatal("hit after ttl")
	}
}

func TestNewPanics(t *testing.T) {
	for _, c := range []struct {
		capacity int
		ttl      time.Duration
	}{{0, time.Second}, {-1, time.Second}, {1, 0}, {1, -time.Second}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%d, %v) did not panic", c.capacity, c.ttl)
				}
			}()
			New(c.capacity, c.ttl)
		}()
	}
}

func TestConcurrentUse(t *testing.T) {
	const (
		goroutines = 16
		iterations = 3000
		keys       = 400
		capacity   = 128
	)
	laneOf := func(k int) lane.Lane { return lane.Lane("lane-" + strconv.Itoa(k%7)) }
	ids := make([]string, keys)
	for i := range ids {
		ids[i] = fmt.Sprintf("%032x", i+1)
	}
	clock := newFakeClock()
	m := NewWithClock(capacity, time.Second, clock.Now)
	var recalls atomic.Uint64
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 1))
			for i := 0; i < iterations; i++ {
				k := r.IntN(keys)
				switch op := r.IntN(10); {
				case op < 5:
					m.Remember(ids[k], laneOf(k))
				case op < 9:
					recalls.Add(1)
					if l, ok := m.Recall(ids[k]); ok && l != laneOf(k) {
						t.Errorf("Recall(%d) = %q, want %q", k, l, laneOf(k))
						return
					}
				default:
					if s := m.Stats(); s.Size > capacity {
						t.Errorf("size %d over capacity", s.Size)
						return
					}
					if i%100 == 0 {
						clock.Advance(100 * time.Millisecond)
					}
				}
			}
		}(uint64(g))
	}
	wg.Wait()
	mustCheck(t, m)
	s := m.Stats()
	if s.Size > capacity || s.Hits+s.Misses != recalls.Load() {
		t.Fatalf("stats %+v after %d recalls", s, recalls.Load())
	}
	if s.Hits == 0 || s.Evictions == 0 {
		t.Fatalf("test did not exercise hits and evictions: %+v", s)
	}
}

// TestFootprint measures the bytes a full Memory holds per entry, the figure the package
// comment quotes, and fails if it grows well past it.
func TestFootprint(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation-sensitive")
	}
	const n = 100_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%032x", i+1)
	}
	lanes := []lane.Lane{"main", "dev-feature1", "dev-feature2"}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := New(n, time.Hour)
	for i, id := range ids {
		m.Remember(id, lanes[i%len(lanes)])
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes per entry (%d entries, %.1f MB)", per, n, float64(after.HeapAlloc-before.HeapAlloc)/1e6)
	if per > 160 {
		t.Errorf("%.0f bytes per entry, want at most 160", per)
	}
	runtime.KeepAlive(m)
	runtime.KeepAlive(ids)
}

// Example of the two sidecars' use: inbound remembers, outbound recalls for an app that
// forwarded only traceparent.
func ExampleMemory() {
	names := lane.Default()
	mem := New(100_000, 5*time.Minute)

	// Inbound: the request carries its lane and trace context.
	in := http.Header{"X-Swimlane": {"dev-feature1"}, "Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	if l, _ := names.FromHeaders(in); l != "" {
		mem.Remember(TraceID(in), l)
	}

	// Outbound: the app kept traceparent (new span id) but dropped the lane.
	out := http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"}}
	if l, _ := names.FromHeaders(out); l == "" {
		if l, ok := mem.Recall(TraceID(out)); ok {
			names.Write(out, l)
		}
	}
	fmt.Println(out.Get("X-Swimlane"), out.Get("Baggage"))
	// Output: dev-feature1 swimlane=dev-feature1
}

func BenchmarkMemoryRecall(b *testing.B) {
	const n = 1 << 16
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%032x", i+1)
	}
	m := New(2*n, time.Hour)
	for _, id := range ids {
		m.Remember(id, "dev-feature1")
	}
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		var next atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			i := next.Add(7919) // a different walk per goroutine
			for pb.Next() {
				i++
				if _, ok := m.Recall(ids[i&(n-1)]); !ok {
					b.Error("miss")
					return
				}
			}
		})
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.Recall("rid:absent")
			}
		})
	})
}

func BenchmarkMemoryRemember(b *testing.B) {
	const n = 1 << 18
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%032x", i+1)
	}
	// refresh: every key is already there (no allocation).
	b.Run("refresh", func(b *testing.B) {
		m := New(n, time.Hour)
		for _, id := range ids[:1<<14] {
			m.Remember(id, "dev-feature1")
		}
		b.ReportAllocs()
		b.ResetTimer()
		var next atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			i := next.Add(7919)
			for pb.Next() {
				i++
				m.Remember(ids[i&(1<<14-1)], "dev-feature1")
			}
		})
	})
	// insert: every key is new and evicts the oldest (one allocation, the key's copy).
	b.Run("insert-evict", func(b *testing.B) {
		m := New(1<<14, time.Hour)
		b.ReportAllocs()
		var next atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			i := next.Add(1 << 16)
			for pb.Next() {
				i++
				m.Remember(ids[i&(n-1)], "dev-feature1")
			}
		})
	})
}

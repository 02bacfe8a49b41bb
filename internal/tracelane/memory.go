// Package tracelane is the sidecar's memory of which lane each trace belongs to, for apps
// that forward only trace context (traceparent, b3, x-request-id) and drop the lane.
//
// The inbound sidecar knows a request's lane from its headers; it remembers the request's
// trace id (TraceID) with that lane. When the app calls out, it usually forwards the trace
// context even when it drops x-swimlane and baggage, so the outbound sidecar, seeing a request
// with no lane, recalls the lane from the trace id and routes (and re-labels) the call as the
// inbound request was.
//
// The memory is bounded twice over: by a TTL, after which a trace's entry is a miss (traces
// are short), and by a fixed capacity, past which the least recently used entry is evicted.
// A full Memory holds capacity entries and no more, each about 115 bytes for a W3C or B3
// trace id (a 48-byte entry, about 35 bytes of map, and the 32-byte copy of the id; lane
// strings are shared between entries), up to about 230 bytes for the longest request id:
// 100,000 trace ids take about 11.5 MB (measured by TestFootprint). All entries and map
// space are allocated up front by New. Keys and lanes are copied on insert, so an entry
// never pins the (possibly large) header it was sliced from.
package tracelane

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"swimlane.dev/swimlane/internal/lane"
)

// MaxKeyLen is the longest trace key remembered; longer ones are ignored so that the bound on
// memory holds. TraceID never returns a longer one.
const MaxKeyLen = len(RequestIDPrefix) + MaxRequestID

// maxShards is the number of shards for large memories. Each shard has its own lock, so up to
// this many requests remember and recall at once without contending.
const maxShards = 16

// Memory maps trace ids to lanes. It is a sharded LRU with a TTL, safe for concurrent use.
type Memory struct {
	shards   []shard
	mask     uint64
	seed     maphash.Seed
	ttl      int64 // nanoseconds
	capacity int
	now      func() time.Time
	epoch    time.Time // expiries are nanoseconds since epoch, read off the monotonic clock
}

// Stats is a snapshot of a Memory's counters.
type Stats struct {
	Size     int // entries held, including expired ones not yet removed
	Capacity int // the most entries ever held
	Hits     uint64
	Misses   uint64 // including recalls of expired entries
	// Evictions counts entries removed to make room, or because they had expired.
	Evictions uint64
}

// New returns a Memory of at most capacity entries (across all shards), each forgotten ttl
// after it was last remembered. It panics if capacity < 1 or ttl <= 0.
func New(capacity int, ttl time.Duration) *Memory {
	return NewWithClock(capacity, ttl, time.Now)
}

// NewWithClock is New with a clock other than time.Now, for tests.
func NewWithClock(capacity int, ttl time.Duration, now func() time.Time) *Memory {
	if capacity < 1 {
		panic("tracelane: capacity must be at least 1")
	}
	if ttl <= 0 {
		panic("tracelane: ttl must be positive")
	}
	n := maxShards
	for n > 1 && capacity < 4*n { // keep shards big enough for LRU order to mean something
		n /= 2
	}
	m := &Memory{
		shards:   make([]shard, n),
		mask:     uint64(n - 1),
		seed:     maphash.MakeSeed(),
		ttl:      int64(ttl),
		capacity: capacity,
		now:      now,
		epoch:    now(),
	}
	for i := range m.shards {
		c := capacity / n
		if i < capacity%n {
			c++
		}
		m.shards[i].init(c)
	}
	return m
}

// Remember records that trace traceID is in lane l, or refreshes the record: the entry
// becomes the most recently used and expires ttl from now. An empty id or lane, an invalid
// lane, or an id longer than MaxKeyLen is ignored. Adding an entry to a full shard evicts its
// least recently used one.
func (m *Memory) Remember(traceID string, l lane.Lane) {
	if traceID == "" || len(traceID) > MaxKeyLen || !lane.Valid(string(l)) {
		return
	}
	m.shard(traceID).remember(traceID, l, m.clock(), m.ttl)
}

// Recall returns the lane remembered for traceID. An entry past its expiry is a miss, and is
// removed; a hit becomes the most recently used entry (its expiry is not extended). An empty
// id (a request without trace context) is not looked up and counts as neither.
func (m *Memory) Recall(traceID string) (lane.Lane, bool) {
	if traceID == "" || len(traceID) > MaxKeyLen {
		return "", false
	}
	now := m.clock()
	return m.shard(traceID).recall(traceID, now)
}

// Stats returns the counters. They are read without locking, so under load the fields may
// come from slightly different instants.
func (m *Memory) Stats() Stats {
	s := Stats{Capacity: m.capacity}
	for i := range m.shards {
		sh := &m.shards[i]
		s.Size += int(sh.size.Load())
		s.Hits += sh.hits.Load()
		s.Misses += sh.misses.Load()
		s.Evictions += sh.evictions.Load()
	}
	return s
}

// clock returns the time in nanoseconds since m.epoch. time.Time.Sub uses the monotonic
// readings when both times have them, so a wall-clock step neither expires nor revives
// entries.
func (m *Memory) clock() int64 { return int64(m.now().Sub(m.epoch)) }

func (m *Memory) shard(key string) *shard {
	return &m.shards[maphash.String(m.seed, key)&m.mask]
}

// Each shard is a map from key to an index into a fixed array of entries, which are linked
// into a doubly-linked list in recency order by int32 indices, with a free list threaded
// through the same links. The list is written by hand rather than with container/list
// because container/list allocates an Element (and boxes the value in an interface) on every
// insert, and its pointers make the garbage collector trace every entry; here all entries are
// allocated once, up front, an insert into a full shard reuses the evicted entry in place, and
// only the key and lane strings hold pointers.
type shard struct {
	mu      sync.Mutex
	index   map[string]int32
	entries []entry
	head    int32 // most recently used; nilIndex when empty
	tail    int32 // least recently used; nilIndex when empty
	free    int32 // first unused entry, linked through next; nilIndex when none

	// lanes interns lane strings: nearly every entry carries one of a few lanes, and copying
	// each into its entry would cost an allocation and 16 or more bytes per entry.
	lanes [8]lane.Lane

	size      atomic.Int64
	hits      atomic.Uint64
	misses    atomic.Uint64
	evictions atomic.Uint64

	_ [64]byte // keep shards' locks and counters on separate cache lines
}

type entry struct {
	key        string
	lane       lane.Lane
	expires    int64 // nanoseconds since Memory.epoch
	prev, next int32
}

const nilIndex = -1

func (s *shard) init(capacity int) {
	s.index = make(map[string]int32, capacity)
	s.entries = make([]entry, capacity)
	s.head, s.tail = nilIndex, nilIndex
	for i := range s.entries {
		s.entries[i].next = int32(i + 1)
	}
	s.entries[capacity-1].next = nilIndex
	s.free = 0
}

func (s *shard) remember(key string, l lane.Lane, now, ttl int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	expires := now + ttl
	if i, ok := s.index[key]; ok {
		e := &s.entries[i]
		if e.lane != l {
			e.lane = s.intern(l)
		}
		e.expires = expires
		s.moveToFront(i)
		return
	}
	// Drop expired entries from the cold end before adding one, a few at a time so the cost
	// stays bounded, so that expired entries do not sit in memory until capacity pushes them
	// out. (The tail is not always the first to expire, since a recall moves an entry forward
	// without extending it; the rest go when recalled or pushed out.)
	for n := 0; n < 2 && s.tail != nilIndex && now >= s.entries[s.tail].expires; n++ {
		s.remove(s.tail)
		s.evictions.Add(1)
	}
	i := s.free
	if i != nilIndex {
		s.free = s.entries[i].next
		s.size.Add(1)
	} else {
		// Full: reuse the least recently used entry.
		i = s.tail
		s.unlink(i)
		delete(s.index, s.entries[i].key)
		s.evictions.Add(1)
	}
	key = strings.Clone(key)
	s.entries[i] = entry{key: key, lane: s.intern(l), expires: expires}
	s.index[key] = i
	s.pushFront(i)
}

func (s *shard) recall(key string, now int64) (lane.Lane, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.index[key]
	if !ok {
		s.misses.Add(1)
		return "", false
	}
	e := &s.entries[i]
	if now >= e.expires {
		s.remove(i)
		s.evictions.Add(1)
		s.misses.Add(1)
		return "", false
	}
	s.moveToFront(i)
	s.hits.Add(1)
	return e.lane, true
}

// intern returns a copy of l that is shared with other entries of the same lane.
func (s *shard) intern(l lane.Lane) lane.Lane {
	slot := &s.lanes[laneHash(l)&uint32(len(s.lanes)-1)]
	if *slot != l {
		*slot = lane.Lane(strings.Clone(string(l)))
	}
	return *slot
}

// laneHash is FNV-1a: lanes are short, and it saves a call into maphash under the lock.
func laneHash(l lane.Lane) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(l); i++ {
		h ^= uint32(l[i])
		h *= 16777619
	}
	return h
}

// remove unlinks entry i, forgets its key and puts it on the free list.
func (s *shard) remove(i int32) {
	s.unlink(i)
	delete(s.index, s.entries[i].key)
	s.entries[i] = entry{next: s.free}
	s.free = i
	s.size.Add(-1)
}

func (s *shard) unlink(i int32) {
	e := &s.entries[i]
	if e.prev != nilIndex {
		s.entries[e.prev].next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nilIndex {
		s.entries[e.next].prev = e.prev
	} else {
		s.tail = e.prev
	}
}

func (s *shard) pushFront(i int32) {
	e := &s.entries[i]
	e.prev, e.next = nilIndex, s.head
	if s.head != nilIndex {
		s.entries[s.head].prev = i
	} else {
		s.tail = i
	}
	s.head = i
}

func (s *shard) moveToFront(i int32) {
	if s.head == i {
		return
	}
	s.unlink(i)
	s.pushFront(i)
}

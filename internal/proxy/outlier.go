package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"swimlane.dev/swimlane/internal/snapshot"
)

// ejectFor is how long an endpoint that refused a connection is skipped. Active health
// checks (the control plane's view) decide longer outages; this covers the seconds before
// they notice, so requests fall back at once instead of failing.
const ejectFor = 5 * time.Second

// ejector remembers the endpoints this proxy saw fail. Ejections are rare and lookups happen
// on every request, so the set is copy-on-write behind an atomic pointer: the common case (no
// ejections) costs one atomic load.
type ejector struct {
	mu      sync.Mutex
	ejected atomic.Pointer[map[string]time.Time] // address -> until; never nil
	now     func() time.Time
}

func newEjector() *ejector {
	e := &ejector{now: time.Now}
	e.ejected.Store(&map[string]time.Time{})
	return e
}

// usable is a snapshot.Usable: false while the endpoint is ejected.
func (e *ejector) usable(ep *snapshot.Endpoint) bool {
	m := *e.ejected.Load()
	if len(m) == 0 {
		return true
	}
	until, ok := m[ep.Address]
	return !ok || e.now().After(until)
}

// eject skips address for ejectFor, and forgets ejections that have ended.
func (e *ejector) eject(address string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	old := *e.ejected.Load()
	next := make(map[string]time.Time, len(old)+1)
	for a, until := range old {
		if now.Before(until) {
			next[a] = until
		}
	}
	next[address] = now.Add(ejectFor)
	e.ejected.Store(&next)
}

// count returns how many endpoints are ejected now.
func (e *ejector) count() int {
	n := 0
	now := e.now()
	for _, until := range *e.ejected.Load() {
		if now.Before(until) {
			n++
		}
	}
	return n
}

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
func (e *ejector) eject(address string) { e.ejectFor(address, ejectFor) }

// ejectFor skips address for d.
func (e *ejector) ejectFor(address string, d time.Duration) {
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
	next[address] = now.Add(d)
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

// maxEjection caps one endpoint's ejection, however often it failed.
const maxEjection = 5 * time.Minute

// outlierState is one endpoint's run of failures, kept across snapshots.
type outlierState struct {
	fails5xx, failsGateway, ejections atomic.Int32
}

// outliers implements DestinationRule outlierDetection: consecutive failures eject an
// endpoint for baseEjectionTime times its number of ejections; success resets the run.
type outliers struct{ states sync.Map } // address -> *outlierState

// observe records one try's outcome at address, for the endpoints of set, and ejects it when
// the policy says so, unless that would eject more than maxEjectionPercent of the set (one
// endpoint may always be ejected, as in Envoy).
func (o *outliers) observe(p *Proxy, policy *snapshot.OutlierPolicy, set *snapshot.EndpointSet, address string, status int, failed bool) {
	v, _ := o.states.LoadOrStore(address, &outlierState{})
	st := v.(*outlierState)
	gateway := failed || status == 502 || status == 503 || status == 504
	if !failed && status < 500 {
		st.fails5xx.Store(0)
		st.failsGateway.Store(0)
		return
	}
	n5 := st.fails5xx.Add(1)
	var ng int32
	if gateway {
		ng = st.failsGateway.Add(1)
	} else {
		st.failsGateway.Store(0)
	}
	if !(policy.Consecutive5xx > 0 && int(n5) >= policy.Consecutive5xx || policy.ConsecutiveGateway > 0 && int(ng) >= policy.ConsecutiveGateway) {
		return
	}
	if set != nil && len(set.Endpoints) > 1 {
		ejected := 0
		for i := range set.Endpoints {
			if !p.ejector.usable(&set.Endpoints[i]) {
				ejected++
			}
		}
		if ejected > 0 && (ejected+1)*100 > policy.MaxEjectionPercent*len(set.Endpoints) {
			return
		}
	}
	st.fails5xx.Store(0)
	st.failsGateway.Store(0)
	k := st.ejections.Add(1)
	d := min(time.Duration(k)*policy.BaseEjection.Duration, maxEjection)
	p.ejector.ejectFor(address, d)
	p.log.Warn("outlier ejected", "address", address, "for", d, "consecutive_5xx", n5)
}

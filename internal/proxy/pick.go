package proxy

import (
	"net/http"
	"sync"
	"sync/atomic"

	"swimlane.dev/swimlane/internal/snapshot"
)

// picker is what this proxy brings to picking an endpoint for r: its ejections, the request
// (consistent hashing) and its in-flight counts (LEAST_REQUEST).
func (p *Proxy) picker(r *http.Request) *snapshot.Picker {
	return &snapshot.Picker{Usable: p.ejector.usable, Request: r, Load: p.inflight.load, Source: p.Labels}
}

// inflight counts this proxy's requests in flight per endpoint address and per service.
// Counters outlive snapshots: a new snapshot does not forget the load.
type inflight struct{ counts sync.Map } // key -> *atomic.Int64

func (f *inflight) counter(key string) *atomic.Int64 {
	if c, ok := f.counts.Load(key); ok {
		return c.(*atomic.Int64)
	}
	c, _ := f.counts.LoadOrStore(key, new(atomic.Int64))
	return c.(*atomic.Int64)
}

func (f *inflight) load(ep *snapshot.Endpoint) int64 { return f.counter(ep.Address).Load() }

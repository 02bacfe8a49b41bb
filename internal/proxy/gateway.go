package proxy

import (
	"context"
	"net"
	"net/http"

	"swimlane.dev/swimlane/internal/proxy/laneentry"
	"swimlane.dev/swimlane/internal/snapshot"
)

// entryCache is a gateway's lane policy compiled for one snapshot.
type entryCache struct {
	snap   *snapshot.Snapshot
	policy *laneentry.Policy
}

// ServeGateway serves the ingress gateway named name on lis until ctx ends. Each request first
// gets its lane from the gateway's lane policy (which may strip a lane sent from outside and
// assign one by rule), then goes to the gateway's service and is routed like any outbound
// request.
func (p *Proxy) ServeGateway(ctx context.Context, lis net.Listener, name string) error {
	return serveHTTP(ctx, lis, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		snap := p.Snapshot()
		gw := snap.Gateway(name)
		if gw == nil || gw.DefaultService == "" {
			writeError(w, r, http.StatusServiceUnavailable, "swimlane: gateway "+quote(name)+" has no configuration yet")
			return
		}
		entry := p.entryPolicy(snap, name).Apply(snap.Mesh.LaneNames(), r)
		p.handle(w, r, snap, gw.DefaultService, &outcome{direction: dirGateway, asked: entry.Lane, entryRule: entry.Rule})
	}))
}

// entryPolicy returns the compiled lane policy of gateway name in snap (nil: trust, no
// rules), compiling it once per snapshot.
func (p *Proxy) entryPolicy(snap *snapshot.Snapshot, name string) *laneentry.Policy {
	if c := p.entry.Load(); c != nil && c.snap == snap {
		return c.policy
	}
	var policy *laneentry.Policy
	for _, e := range snap.LaneEntries {
		if e.Gateway == name {
			policy = laneentry.Prepare(e)
		}
	}
	p.entry.Store(&entryCache{snap: snap, policy: policy})
	return policy
}

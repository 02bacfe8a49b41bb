package proxy

import (
	"context"
	"net"
	"net/http"
)

// ServeGateway serves the ingress gateway named name on lis until ctx ends. Requests go to the
// gateway's service from the snapshot, then are routed like any outbound request.
func (p *Proxy) ServeGateway(ctx context.Context, lis net.Listener, name string) error {
	return serveHTTP(ctx, lis, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gw := p.Snapshot().Gateway(name)
		if gw == nil || gw.DefaultService == "" {
			writeError(w, r, http.StatusServiceUnavailable, "swimlane: gateway "+quote(name)+" has no configuration yet")
			return
		}
		p.routeAndForward(w, r, gw.DefaultService)
	}))
}

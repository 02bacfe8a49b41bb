package proxy

import (
	"context"
	"net"
	"net/http"
	"time"

	"swimlane.dev/swimlane/internal/snapshot"
	"swimlane.dev/swimlane/internal/tracelane"
)

// ServeInbound serves the sidecar's inbound listener on lis until ctx ends, passing traffic to
// the app at appAddr, which speaks protocol. HTTP traffic has its lane written in both forms
// first, so the app's OpenTelemetry baggage carries it onward even if the caller sent only
// x-swimlane.
func (p *Proxy) ServeInbound(ctx context.Context, lis net.Listener, appAddr string, protocol snapshot.Protocol) error {
	if protocol == snapshot.TCP {
		return p.serveInboundTCP(ctx, lis, appAddr)
	}
	t := &target{addr: appAddr, protocol: protocol, service: "app", inbound: true}
	return serveHTTP(ctx, lis, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		snap := p.Snapshot()
		names := snap.Mesh.LaneNames()
		l, _ := names.FromHeaders(r.Header)
		if p.metrics != nil || p.AccessLog {
			rec := newStatusRecorder(w)
			o := outcome{direction: dirInbound, service: "app", asked: l, served: l, endpoint: appAddr}
			defer p.record(r, rec, snap, &o, time.Now())
			w = rec
		}
		// Every lane form, so the lane survives whichever of them the app forwards; and the
		// trace's lane, for apps that forward only trace context.
		dropConnectionListed(r.Header)
		names.WriteAll(r.Header, l)
		if l != "" {
			if id := tracelane.TraceID(r.Header); id != "" {
				p.traces.Remember(id, l)
			}
		}
		p.fwd.forward(w, r, t)
	}))
}

func (p *Proxy) serveInboundTCP(ctx context.Context, lis net.Listener, appAddr string) error {
	return serveTCP(ctx, lis, func(c net.Conn) {
		up, err := net.DialTimeout("tcp", appAddr, 5*time.Second)
		if err != nil {
			p.log.Warn("inbound tcp: app unreachable", "app", appAddr, "err", err)
			c.Close()
			return
		}
		pipe(c, up)
	})
}

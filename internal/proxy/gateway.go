package proxy

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"time"

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
	host, _, _ := net.SplitHostPort(lis.Addr().String())
	go p.serveGatewayServers(ctx, name, host)
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

// serverListener is one running Istio Gateway server.
type serverListener struct {
	protocol snapshot.Protocol
	cancel   context.CancelFunc
	done     chan struct{}
}

// serveGatewayServers keeps the listeners of gateway name's Istio Gateway servers in step with
// the snapshot: opened when a Gateway adds a server, closed when it goes, until ctx ends.
func (p *Proxy) serveGatewayServers(ctx context.Context, name, host string) {
	running := map[int]*serverListener{}
	defer func() {
		for _, l := range running {
			l.cancel()
			<-l.done
		}
	}()
	for {
		snap, changed := p.snapshotChanged()
		want := map[int]*snapshot.GatewayServer{}
		if gw := snap.Gateway(name); gw != nil {
			for _, s := range gw.Servers {
				want[s.Port] = s
			}
		}
		for port, l := range running {
			if s, ok := want[port]; !ok || s.Protocol != l.protocol {
				l.cancel()
				<-l.done
				delete(running, port)
				p.log.Info("gateway server closed", "gateway", name, "port", port)
			}
		}
		for port, s := range want {
			if running[port] != nil {
				continue
			}
			listen := p.GatewayListen
			if listen == nil {
				listen = func(port int) (net.Listener, error) {
					return net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
				}
			}
			lis, err := listen(port)
			if err != nil {
				p.log.Error("gateway server cannot listen; retrying at the next config change", "gateway", name, "port", port, "source", s.Source, "err", err)
				continue
			}
			sctx, cancel := context.WithCancel(ctx)
			l := &serverListener{protocol: s.Protocol, cancel: cancel, done: make(chan struct{})}
			running[port] = l
			p.log.Info("gateway server listening", "gateway", name, "port", port, "protocol", s.Protocol, "addr", lis.Addr().String(), "source", s.Source)
			go func() {
				defer close(l.done)
				if s.Protocol == snapshot.TCP {
					p.serveGatewayTCP(sctx, lis, name, port)
				} else {
					_ = serveHTTP(sctx, lis, p.gatewayServerHandler(name, port))
				}
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// gatewayServerHandler routes HTTP on an Istio Gateway server by the VirtualServices bound to
// it, after the gateway's lane policy.
func (p *Proxy) gatewayServerHandler(name string, port int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		snap := p.Snapshot()
		srv := gatewayServer(snap, name, port)
		if srv == nil {
			writeError(w, r, http.StatusNotFound, "swimlane: gateway "+quote(name)+" has no server on this port")
			return
		}
		vh := srv.VirtualHostFor(r.Host)
		if vh == nil {
			writeError(w, r, http.StatusNotFound, "swimlane: no VirtualService for host "+quote(r.Host)+" on gateway "+quote(name))
			return
		}
		entry := p.entryPolicy(snap, name).Apply(snap.Mesh.LaneNames(), r)
		o := &outcome{direction: dirGateway, asked: entry.Lane, entryRule: entry.Rule}
		if p.metrics != nil || p.AccessLog {
			rec := newStatusRecorder(w)
			defer p.record(r, rec, snap, o, time.Now())
			w = rec
		}
		dropConnectionListed(r.Header)
		snap.Mesh.LaneNames().Write(r.Header, o.asked)
		d := snap.RouteVirtualHost(vh, r, o.asked, p.picker(r))
		o.service, o.served, o.fallback = d.Host, d.Served, d.Fallback()
		p.serveDecision(w, r, snap, &d)
	})
}

// serveGatewayTCP routes TCP connections on an Istio Gateway server by its tcp routes.
func (p *Proxy) serveGatewayTCP(ctx context.Context, lis net.Listener, name string, port int) {
	_ = serveTCP(ctx, lis, func(c net.Conn) {
		snap := p.Snapshot()
		var route *snapshot.TCPRoute
		if srv := gatewayServer(snap, name, port); srv != nil {
			route = srv.TCPFor(port)
		}
		if route == nil {
			p.log.Warn("gateway tcp: no route", "gateway", name, "port", port)
			c.Close()
			return
		}
		p.dialTCP(c, snap, route.Name, func() snapshot.Decision { return snap.ResolveTCP(route, "", p.tcpPicker) })
	})
}

func gatewayServer(snap *snapshot.Snapshot, name string, port int) *snapshot.GatewayServer {
	gw := snap.Gateway(name)
	if gw == nil {
		return nil
	}
	for _, s := range gw.Servers {
		if s.Port == port {
			return s
		}
	}
	return nil
}

package proxy

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"time"

	"swimlane.dev/swimlane/internal/lane"
	"swimlane.dev/swimlane/internal/snapshot"
)

// ServeOutbound serves the sidecar's outbound listener on lis until ctx ends. Apps reach it:
//   - as their HTTP proxy (HTTP_PROXY): absolute-form requests, routed by the URL's host;
//   - as their HTTPS proxy (HTTPS_PROXY, which grpc-go honours): CONNECT host:port, then
//     HTTP/1.1 or h2c inside the tunnel, routed by the CONNECT target, or raw bytes for a TCP
//     service;
//   - directly, with the service in the Host header or :authority.
func (p *Proxy) ServeOutbound(ctx context.Context, lis net.Listener) error {
	tunnels := newConnQueue(lis.Addr())
	go func() {
		<-ctx.Done()
		tunnels.Close()
	}()
	go func() {
		_ = serveHTTP(ctx, tunnels, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host, _ := r.Context().Value(tunnelKey{}).(string)
			p.routeOutbound(w, r, host)
		}))
	}()
	return serveHTTP(ctx, lis, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			p.connect(w, r, tunnels)
			return
		}
		p.routeOutbound(w, r, r.Host)
	}))
}

// connect accepts a CONNECT tunnel to a mesh service.
func (p *Proxy) connect(w http.ResponseWriter, r *http.Request, tunnels *connQueue) {
	snap := p.Snapshot()
	svc := snap.Service(r.Host)
	switch {
	case svc != nil:
	case snap.Version == 0 || !outsideMesh(r.Host):
		writeError(w, r, http.StatusServiceUnavailable, "swimlane: no service "+quote(r.Host)+" in the mesh")
		return
	case snap.Mesh.RegistryOnly:
		writeError(w, r, http.StatusBadGateway, blockedMessage(r.Host))
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok { // CONNECT over HTTP/2 carries one stream; apps use HTTP/1.1 for it
		writeError(w, r, http.StatusMethodNotAllowed, "swimlane: CONNECT is served over HTTP/1.1 only")
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	if _, err := conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		conn.Close()
		return
	}
	tc := &tunnelConn{Conn: conn, r: brw.Reader, target: r.Host}
	if svc == nil {
		// ALLOW_ANY: a tunnel to a host outside the mesh (typically HTTPS) passes through
		// as bytes, as Istio's PassthroughCluster does.
		go func() {
			up, err := net.DialTimeout("tcp", r.Host, 5*time.Second)
			if err != nil {
				p.log.Warn("passthrough tunnel", "host", r.Host, "err", err)
				tc.Close()
				return
			}
			pipe(tc, up)
		}()
		return
	}
	if serviceProtocol(svc) == "tcp" {
		go p.pipeTCP(tc, svc.Name, "")
		return
	}
	if !tunnels.push(tc) {
		conn.Close()
	}
}

// pipeTCP connects client to an endpoint of the named service in lane l (the baseline when
// l is empty: raw TCP carries no headers), through the service's TCP routes if it has any
// (VirtualService tcp, matched on the CONNECT port), and copies bytes both ways.
func (p *Proxy) pipeTCP(client net.Conn, service string, l lane.Lane) {
	snap := p.Snapshot()
	svc := snap.Service(service)
	if svc == nil {
		client.Close()
		return
	}
	port := 0
	if tc, ok := client.(*tunnelConn); ok {
		if _, ps, err := net.SplitHostPort(tc.target); err == nil {
			port, _ = strconv.Atoi(ps)
		}
	}
	for _, r := range svc.TCP {
		if r.Port == 0 || r.Port == port {
			p.dialTCP(client, snap, r.Name, func() snapshot.Decision { return snap.ResolveTCP(r, l, p.tcpPicker) })
			return
		}
	}
	p.dialTCP(client, snap, service, func() snapshot.Decision {
		d := snapshot.Decision{Service: svc, Host: svc.Name, Asked: l}
		snap.Resolve(&d, p.tcpPicker)
		return d
	})
}

// dialTCP connects client to the endpoint resolve picks, ejecting endpoints that refuse and
// resolving again, then copies bytes both ways.
func (p *Proxy) dialTCP(client net.Conn, snap *snapshot.Snapshot, what string, resolve func() snapshot.Decision) {
	for attempt := 0; attempt <= maxReroutes; attempt++ {
		d := resolve()
		if d.Endpoint == nil {
			p.log.Warn("tcp: "+d.NoEndpointReason(), "route", what)
			client.Close()
			return
		}
		up, err := net.DialTimeout("tcp", d.Endpoint.Address, 5*time.Second)
		if err == nil {
			pipe(client, up)
			return
		}
		p.log.Warn("tcp: upstream refused; ejected", "route", what, "endpoint", d.Endpoint.Workload, "err", err)
		p.ejector.eject(d.Endpoint.Address)
	}
	client.Close()
}

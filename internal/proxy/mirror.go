package proxy

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"swimlane.dev/swimlane/internal/snapshot"
)

// Mirroring limits: copies are best effort and must never slow or endanger the real request.
const (
	maxMirrorBody      = 64 << 10         // larger bodies are not mirrored
	maxMirrorsInFlight = 64               // further copies are dropped while this many run
	mirrorTimeout      = 10 * time.Second // a copy's whole exchange
)

// mirrorSlots bounds the copies in flight across the process.
var mirrorSlots = make(chan struct{}, maxMirrorsInFlight)

// mirror sends copies of r to the route's mirrors, as Envoy's request shadowing does: the
// copy's authority gets a "-shadow" suffix (so the receiver can tell), it resolves like any
// destination (subset, or the request's lane), and its answer is dropped. A request body is
// copied only up to maxMirrorBody; r keeps an identical body.
func (p *Proxy) mirror(r *http.Request, snap *snapshot.Snapshot, d *snapshot.Decision) {
	var body []byte
	for _, m := range d.Route.Mirrors {
		if rand.Float64()*100 >= m.Percent {
			continue
		}
		svc := snap.Service(m.Destination.Host)
		if svc == nil {
			continue
		}
		md := snapshot.Decision{Service: svc, Host: svc.Name, Asked: d.Asked}
		if m.Destination.Subset != "" {
			if set := svc.SubsetSet(m.Destination.Subset); set != nil {
				md.Endpoint = set.Pick(p.picker(r))
			}
		} else {
			snap.Resolve(&md, p.picker(r))
		}
		if md.Endpoint == nil {
			continue
		}
		if body == nil && r.Body != nil && r.Body != http.NoBody {
			if r.ContentLength < 0 || r.ContentLength > maxMirrorBody {
				return // streaming or large: mirroring would have to hold the real request
			}
			var err error
			if body, err = io.ReadAll(r.Body); err != nil {
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		select {
		case mirrorSlots <- struct{}{}:
		default:
			p.log.Debug("mirror dropped: too many copies in flight", "service", svc.Name)
			continue
		}
		shadow := r.Clone(context.Background())
		shadow.RequestURI = ""
		shadow.URL.Scheme, shadow.URL.Host = "http", md.Endpoint.Address
		shadow.Host = shadowHost(r.Host)
		if body != nil {
			shadow.Body = io.NopCloser(bytes.NewReader(body))
		}
		transport := p.fwd.transport1
		if md.Endpoint.Protocol.IsHTTP2() {
			transport = p.fwd.transport2
		}
		go func() {
			defer func() { <-mirrorSlots }()
			ctx, cancel := context.WithTimeout(context.Background(), mirrorTimeout)
			defer cancel()
			resp, err := transport.RoundTrip(shadow.WithContext(ctx))
			if err != nil {
				p.log.Debug("mirror failed", "service", svc.Name, "err", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
}

// shadowHost appends "-shadow" to the host part of an authority, as Envoy does.
func shadowHost(authority string) string {
	host, port, err := net.SplitHostPort(authority)
	if err != nil {
		return authority + "-shadow"
	}
	return net.JoinHostPort(host+"-shadow", port)
}

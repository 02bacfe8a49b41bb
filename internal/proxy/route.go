package proxy

import (
	"net/http"

	"swimlane.dev/swimlane/internal/lane"
	"swimlane.dev/swimlane/internal/snapshot"
)

// Debug response headers, sent only when the request asks with x-swimlane-debug: 1.
const (
	debugHeader    = "X-Swimlane-Debug"
	servedHeader   = "X-Swimlane-Served"
	fallbackHeader = "X-Swimlane-Fallback"
)

// routeAndForward handles one request addressed to host (steps 1 to 5 of the package doc).
func (p *Proxy) routeAndForward(w http.ResponseWriter, r *http.Request, host string) {
	snap := p.Snapshot()
	names := snap.Mesh.LaneNames()
	asked, _ := names.FromHeaders(r.Header)
	names.Write(r.Header, asked)

	svc := snap.Service(host)
	if svc == nil {
		writeError(w, r, http.StatusServiceUnavailable, "swimlane: no service "+quote(host)+" in the mesh")
		return
	}
	d := snap.RouteHTTP(svc, r, asked, p.ejector.usable)
	p.serveDecision(w, r, snap, &d)
}

func (p *Proxy) serveDecision(w http.ResponseWriter, r *http.Request, snap *snapshot.Snapshot, d *snapshot.Decision) {
	if r.Header.Get(debugHeader) == "1" {
		if d.Served != "" {
			w.Header().Set(servedHeader, string(d.Served))
		}
		if d.Fallback() {
			w.Header().Set(fallbackHeader, chain(d.Tried))
		}
	}
	if d.Endpoint == nil {
		status := http.StatusServiceUnavailable
		msg := "swimlane: " + d.NoEndpointReason()
		if d.NoRoute {
			status, msg = http.StatusNotFound, "swimlane: no route of "+d.Host+" matches the request"
		}
		p.log.Debug("no endpoint", "host", d.Host, "lane", d.Asked, "reason", msg)
		writeError(w, r, status, msg)
		return
	}
	ep := d.Endpoint
	p.log.Debug("route", "method", r.Method, "host", r.Host, "path", r.URL.Path, "service", d.Service.Name,
		"lane_asked", d.Asked, "lane_served", d.Served, "fallback", d.Fallback(), "endpoint", ep.Workload)
	t := p.targetFor(d.Service, ep)
	t.reroute = func(failed string) *target {
		// The endpoint refused: skip it from now on, and resolve the request again, which
		// may move it to the next lane of its chain when the lane has no endpoint left.
		p.ejector.eject(failed)
		p.log.Warn("endpoint refused the connection; ejected", "service", d.Service.Name, "address", failed, "for", ejectFor)
		again := *d
		again.Endpoint, again.Served, again.Tried = nil, "", nil
		if again.Subset != "" {
			if set := again.Service.SubsetSet(again.Subset); set != nil {
				again.Endpoint = set.Pick(p.ejector.usable)
			}
		} else {
			snap.Resolve(&again, p.ejector.usable)
		}
		if again.Endpoint == nil {
			return nil
		}
		next := p.targetFor(again.Service, again.Endpoint)
		next.reroute = t.reroute
		return next
	}
	p.fwd.forward(w, r, t)
}

func (p *Proxy) targetFor(svc *snapshot.Service, ep *snapshot.Endpoint) *target {
	return &target{addr: ep.Address, protocol: ep.Protocol, what: svc.Name + "/" + ep.Workload + " (" + ep.Address + ")"}
}

func chain(ls []lane.Lane) string {
	s := ""
	for i, l := range ls {
		if i > 0 {
			s += " -> "
		}
		s += string(l)
	}
	return s
}

func quote(s string) string { return "\"" + s + "\"" }

package compile

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	networking "istio.io/api/networking/v1alpha3"

	"swimlane.dev/swimlane/internal/snapshot"
)

// errorf reports an error at a field of one object (config.Object.Errorf).
type errorf func(field, format string, args ...any) error

// onlyFields fails for every field set in m that is not in supported. Istio's API is large;
// a field Swimlane does not implement must be an error, never silently ignored, or users
// would believe a retry or fault was in force when it was not.
func (c *compiler) onlyFields(at errorf, path string, m proto.Message, supported ...string) {
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !slices.Contains(supported, fd.JSONName()) {
			c.fail(at(path+"."+fd.JSONName(), "not supported yet (see the compatibility table in README.md)"))
		}
		return true
	})
}

func (c *compiler) destinationRules() {
	for _, o := range c.set.DestinationRules {
		dr := o.Spec
		c.onlyFields(o.Errorf, "spec", dr, "host", "subsets", "exportTo", "trafficPolicy")
		svc := c.service(dr.GetHost())
		if svc == nil {
			c.warn("%s: spec.host: no service %q in the mesh; its subsets are unused", o.Source, dr.GetHost())
			continue
		}
		if len(svc.Subsets) > 0 {
			c.fail(o.Errorf("spec.host", "service %q already has subsets from another DestinationRule", svc.Name))
			continue
		}
		svc.Policy = c.trafficPolicy(o.Errorf, "spec.trafficPolicy", dr.GetTrafficPolicy(), svc.Port)
		seen := map[string]bool{}
		for i, s := range dr.GetSubsets() {
			path := fmt.Sprintf("spec.subsets[%d]", i)
			c.onlyFields(o.Errorf, path, s, "name", "labels", "trafficPolicy")
			if s.GetName() == "" {
				c.fail(o.Errorf(path, "subset name is required"))
				continue
			}
			if seen[s.GetName()] {
				c.fail(o.Errorf(path+".name", "duplicate subset %q", s.GetName()))
				continue
			}
			seen[s.GetName()] = true
			svc.Subsets = append(svc.Subsets, snapshot.Subset{Name: s.GetName(), Labels: s.GetLabels(), Policy: c.trafficPolicy(o.Errorf, path+".trafficPolicy", s.GetTrafficPolicy(), svc.Port)})
		}
	}
}

func (c *compiler) virtualServices() {
	for _, o := range c.set.VirtualServices {
		vs := o.Spec
		c.onlyFields(o.Errorf, "spec", vs, "hosts", "gateways", "http", "tcp", "exportTo")
		var routes []*snapshot.HTTPRoute
		for i, r := range vs.GetHttp() {
			if rt := c.istioRoute(o.Errorf, fmt.Sprintf("spec.http[%d]", i), r); rt != nil {
				rt.Name = fmt.Sprintf("VirtualService/%s#%d", o.Name, i)
				if r.GetName() != "" {
					rt.Name += "(" + r.GetName() + ")"
				}
				routes = append(routes, rt)
			}
		}
		var tcp []*snapshot.TCPRoute
		for i, r := range vs.GetTcp() {
			tcp = append(tcp, c.istioTCPRoute(o.Errorf, fmt.Sprintf("spec.tcp[%d]", i), fmt.Sprintf("VirtualService/%s#tcp%d", o.Name, i), r)...)
		}
		mesh := len(vs.GetGateways()) == 0
		for i, g := range vs.GetGateways() {
			if g == "mesh" {
				mesh = true
				continue
			}
			servers := c.gatewayServers[shortName(g)]
			if servers == nil {
				if _, known := c.istioGatewayNames[shortName(g)]; !known {
					// Istio's analyzer flags this too (IST0101): the rules would never apply.
					c.fail(o.Errorf(fmt.Sprintf("spec.gateways[%d]", i), "no Gateway %q", g))
				}
				continue
			}
			for _, srv := range servers {
				switch srv.Protocol {
				case snapshot.TCP:
					for _, r := range tcp {
						if r.Port == 0 || r.Port == srv.Port {
							srv.TCP = append(srv.TCP, r)
						}
					}
				default:
					if len(routes) > 0 {
						srv.VirtualHosts = append(srv.VirtualHosts, &snapshot.VirtualHost{Source: o.Source.String(), Hosts: lowerAll(vs.GetHosts()), HTTP: routes})
					}
				}
			}
		}
		if !mesh {
			continue
		}
		for i, host := range vs.GetHosts() {
			svc := c.service(host)
			if svc == nil {
				c.warn("%s: spec.hosts[%d]: no service %q in the mesh; the rules apply to nothing", o.Source, i, host)
				continue
			}
			if prev, dup := c.routedBy[svc.Name]; dup {
				c.fail(o.Errorf(fmt.Sprintf("spec.hosts[%d]", i), "host %q is already routed by %s", host, prev))
				continue
			}
			c.routedBy[svc.Name] = o.Source.String()
			svc.HTTP = routes
			svc.TCP = tcp
		}
	}
}

// istioTCPRoute compiles one tcp rule into a route per match port (none: any port).
func (c *compiler) istioTCPRoute(at errorf, path, name string, r *networking.TCPRoute) []*snapshot.TCPRoute {
	c.onlyFields(at, path, r, "match", "route")
	var dests []snapshot.Destination
	for i, d := range r.GetRoute() {
		dp := fmt.Sprintf("%s.route[%d]", path, i)
		c.onlyFields(at, dp, d, "destination", "weight")
		dst := d.GetDestination()
		out := snapshot.Destination{Host: dst.GetHost(), Subset: dst.GetSubset(), Port: int(dst.GetPort().GetNumber()), Weight: int(d.GetWeight())}
		svc := c.service(out.Host)
		if svc == nil {
			c.fail(at(dp+".destination.host", "no service %q in the mesh", out.Host))
			continue
		}
		out.Host = svc.Name
		if out.Subset != "" && !hasSubset(svc, out.Subset) {
			c.fail(at(dp+".destination.subset", "subset %q of host %q is not defined by any DestinationRule", out.Subset, out.Host))
		}
		dests = append(dests, out)
	}
	if len(dests) == 0 {
		c.fail(at(path+".route", "at least one destination is required"))
		return nil
	}
	if len(r.GetMatch()) == 0 {
		return []*snapshot.TCPRoute{{Name: name, Destinations: dests}}
	}
	var out []*snapshot.TCPRoute
	for i, m := range r.GetMatch() {
		c.onlyFields(at, fmt.Sprintf("%s.match[%d]", path, i), m, "port", "gateways")
		out = append(out, &snapshot.TCPRoute{Name: name, Port: int(m.GetPort()), Destinations: dests})
	}
	return out
}

// istioGateways gives each mesh gateway the servers of the Istio Gateways that select it.
func (c *compiler) istioGateways() {
	c.gatewayServers = map[string][]*snapshot.GatewayServer{}
	c.istioGatewayNames = map[string]bool{}
	for _, o := range c.set.Gateways {
		gw := o.Spec
		c.onlyFields(o.Errorf, "spec", gw, "selector", "servers")
		c.istioGatewayNames[o.Name] = true
		for _, mg := range c.gws {
			if !matches(mg.Labels, gw.GetSelector()) {
				continue
			}
			for i, srv := range gw.GetServers() {
				path := fmt.Sprintf("spec.servers[%d]", i)
				c.onlyFields(o.Errorf, path, srv, "port", "hosts", "name")
				port := srv.GetPort()
				protocol, ok := gatewayProtocol(port.GetProtocol())
				if !ok {
					c.fail(o.Errorf(path+".port.protocol", "%q is not supported yet (HTTP, HTTP2, GRPC, TCP)", port.GetProtocol()))
					continue
				}
				if prev := findServer(mg, int(port.GetNumber())); prev != nil {
					c.fail(o.Errorf(path+".port.number", "port %d of gateway %s is already opened by %s", port.GetNumber(), mg.Name, prev.Source))
					continue
				}
				s := &snapshot.GatewayServer{Source: o.Source.String(), Port: int(port.GetNumber()), Protocol: protocol, Hosts: lowerAll(srv.GetHosts())}
				mg.Servers = append(mg.Servers, s)
				c.gatewayServers[o.Name] = append(c.gatewayServers[o.Name], s)
			}
		}
	}
}

func findServer(g *snapshot.Gateway, port int) *snapshot.GatewayServer {
	for _, s := range g.Servers {
		if s.Port == port {
			return s
		}
	}
	return nil
}

func gatewayProtocol(p string) (snapshot.Protocol, bool) {
	switch strings.ToUpper(p) {
	case "HTTP":
		return snapshot.HTTP, true
	case "HTTP2":
		return snapshot.HTTP2, true
	case "GRPC":
		return snapshot.GRPC, true
	case "TCP":
		return snapshot.TCP, true
	}
	return "", false
}

// shortName drops a namespace prefix ("istio-system/my-gateway" -> "my-gateway").
func shortName(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}

func lowerAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(shortName(s))
	}
	return out
}

func (c *compiler) istioRoute(at errorf, path string, r *networking.HTTPRoute) *snapshot.HTTPRoute {
	c.onlyFields(at, path, r, "name", "match", "route", "fault", "timeout", "retries", "mirror", "mirrorPercentage", "mirrorPercent", "mirrors", "headers", "rewrite", "redirect")
	rt := &snapshot.HTTPRoute{Fault: c.istioFault(at, path+".fault", r.GetFault()), Retries: c.istioRetries(at, path+".retries", r.GetRetries())}
	if r.GetTimeout() != nil {
		rt.Timeout.Duration = r.GetTimeout().AsDuration()
		if rt.Timeout.Duration < time.Millisecond {
			c.fail(at(path+".timeout", "must be at least 1ms (0s: omit the field for no timeout)"))
		}
	}
	for i, m := range r.GetMatch() {
		mp := fmt.Sprintf("%s.match[%d]", path, i)
		c.onlyFields(at, mp, m, "name", "uri", "method", "authority", "headers", "withoutHeaders", "queryParams", "ignoreUriCase", "sourceLabels")
		hm := snapshot.HTTPMatch{IgnoreURICase: m.GetIgnoreUriCase(), SourceLabels: m.GetSourceLabels()}
		hm.URI = c.istioString(at, mp+".uri", m.GetUri())
		hm.Method = c.istioString(at, mp+".method", m.GetMethod())
		hm.Authority = c.istioString(at, mp+".authority", m.GetAuthority())
		hm.Headers = c.istioNamedMatches(at, mp+".headers", m.GetHeaders())
		hm.WithoutHeaders = c.istioNamedMatches(at, mp+".withoutHeaders", m.GetWithoutHeaders())
		hm.QueryParams = c.istioNamedMatches(at, mp+".queryParams", m.GetQueryParams())
		rt.Match = append(rt.Match, hm)
	}
	rt.Mirrors = c.istioMirrors(at, path, r)
	if h := r.GetHeaders(); h != nil {
		c.onlyFields(at, path+".headers", h, "request", "response")
		rt.RequestHeaders = headerOps(h.GetRequest())
		rt.ResponseHeaders = headerOps(h.GetResponse())
	}
	if rw := r.GetRewrite(); rw != nil {
		c.onlyFields(at, path+".rewrite", rw, "uri", "authority")
		rt.Rewrite = &snapshot.Rewrite{URI: rw.GetUri(), Authority: rw.GetAuthority()}
	}
	if rd := r.GetRedirect(); rd != nil {
		c.onlyFields(at, path+".redirect", rd, "uri", "authority", "port", "scheme", "redirectCode")
		code := int(rd.GetRedirectCode())
		switch code {
		case 0:
			code = 301 // Istio's default
		case 301, 302, 303, 307, 308:
		default:
			c.fail(at(path+".redirect.redirectCode", "%d is not a redirect status (301, 302, 303, 307, 308)", code))
		}
		rt.Redirect = &snapshot.Redirect{URI: rd.GetUri(), Authority: rd.GetAuthority(), Scheme: rd.GetScheme(), Port: int(rd.GetPort()), Code: code}
		if len(r.GetRoute()) > 0 {
			c.fail(at(path+".redirect", "a rule has either route or redirect, not both"))
		}
		return rt
	}
	if len(r.GetRoute()) == 0 {
		c.fail(at(path, "route or redirect is required (directResponse is not supported yet)"))
		return nil
	}
	for i, d := range r.GetRoute() {
		dp := fmt.Sprintf("%s.route[%d]", path, i)
		c.onlyFields(at, dp, d, "destination", "weight")
		dst := d.GetDestination()
		if dst.GetHost() == "" {
			c.fail(at(dp+".destination.host", "host is required"))
			continue
		}
		c.onlyFields(at, dp+".destination", dst, "host", "subset", "port")
		out := snapshot.Destination{Host: dst.GetHost(), Subset: dst.GetSubset(), Port: int(dst.GetPort().GetNumber()), Weight: int(d.GetWeight())}
		if svc := c.service(out.Host); svc != nil {
			out.Host = svc.Name
			// Istio's analyzer flags a route to an undefined subset (IST0101); so do we, as an
			// error, because at run time it would answer every request with 503.
			if out.Subset != "" && !hasSubset(svc, out.Subset) {
				c.fail(at(dp+".destination.subset", "subset %q of host %q is not defined by any DestinationRule", out.Subset, out.Host))
			}
		} else {
			c.warn("%s: no service %q in the mesh", dp, out.Host)
		}
		rt.Destinations = append(rt.Destinations, out)
	}
	return rt
}

func hasSubset(svc *snapshot.Service, name string) bool {
	for _, s := range svc.Subsets {
		if s.Name == name {
			return true
		}
	}
	return false
}

func (c *compiler) istioString(at errorf, path string, m *networking.StringMatch) *snapshot.StringMatch {
	if m == nil {
		return nil
	}
	switch v := m.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		return &snapshot.StringMatch{Exact: v.Exact}
	case *networking.StringMatch_Prefix:
		return &snapshot.StringMatch{Prefix: v.Prefix}
	case *networking.StringMatch_Regex:
		if _, err := snapshot.CompileRegex(v.Regex); err != nil {
			c.fail(at(path+".regex", "invalid regex: %v", err))
			return nil
		}
		return &snapshot.StringMatch{Regex: v.Regex}
	}
	c.fail(at(path, "one of exact, prefix or regex is required"))
	return nil
}

// istioFault compiles a fault. A share that is not set means every request, as in Istio.
func (c *compiler) istioFault(at errorf, path string, f *networking.HTTPFaultInjection) *snapshot.Fault {
	if f == nil {
		return nil
	}
	out := &snapshot.Fault{}
	share := func(p string, pct *networking.Percent, legacy int32) float64 {
		switch {
		case pct != nil:
			if v := pct.GetValue(); v < 0 || v > 100 {
				c.fail(at(p+".percentage.value", "%v is not a percentage in 0..100", v))
			}
			return pct.GetValue()
		case legacy != 0:
			if legacy < 0 || legacy > 100 {
				c.fail(at(p+".percent", "%d is not a percentage in 0..100", legacy))
			}
			return float64(legacy)
		}
		return 100
	}
	if d := f.GetDelay(); d != nil {
		c.onlyFields(at, path+".delay", d, "fixedDelay", "percentage", "percent")
		if d.GetFixedDelay() == nil {
			c.fail(at(path+".delay", "fixedDelay is required"))
		} else {
			out.Delay = &snapshot.FaultDelay{Fixed: snapshot.Duration{Duration: d.GetFixedDelay().AsDuration()}, Percent: share(path+".delay", d.GetPercentage(), d.GetPercent())}
		}
	}
	if a := f.GetAbort(); a != nil {
		c.onlyFields(at, path+".abort", a, "httpStatus", "grpcStatus", "percentage")
		abort := &snapshot.FaultAbort{Percent: share(path+".abort", a.GetPercentage(), 0)}
		switch {
		case a.GetGrpcStatus() != "":
			var code codes.Code
			if err := code.UnmarshalJSON([]byte(`"` + a.GetGrpcStatus() + `"`)); err != nil {
				c.fail(at(path+".abort.grpcStatus", "%q is not a gRPC status name like UNAVAILABLE", a.GetGrpcStatus()))
			}
			n := int(code)
			abort.GRPCStatus = &n
			abort.HTTPStatus = 503 // for callers that are not gRPC
		case a.GetHttpStatus() >= 200 && a.GetHttpStatus() <= 599:
			abort.HTTPStatus = int(a.GetHttpStatus())
		default:
			c.fail(at(path+".abort.httpStatus", "want an HTTP status in 200..599, got %d", a.GetHttpStatus()))
		}
		out.Abort = abort
	}
	return out
}

// istioRetries compiles a retry policy; nil (no retries field) means Istio's default.
func (c *compiler) istioRetries(at errorf, path string, r *networking.HTTPRetry) *snapshot.RetryPolicy {
	if r == nil {
		return nil
	}
	c.onlyFields(at, path, r, "attempts", "perTryTimeout", "retryOn", "backoff")
	p := &snapshot.RetryPolicy{Attempts: int(r.GetAttempts())}
	if p.Attempts < 0 {
		c.fail(at(path+".attempts", "must not be negative"))
	}
	if r.GetPerTryTimeout() != nil {
		p.PerTry.Duration = r.GetPerTryTimeout().AsDuration()
	}
	if r.GetBackoff() != nil {
		p.Backoff.Duration = r.GetBackoff().AsDuration()
	}
	on := r.GetRetryOn()
	if on == "" {
		on = snapshot.DefaultRetryOn
	}
	conds, err := snapshot.ParseRetryOn(on)
	if err != nil {
		c.fail(at(path+".retryOn", "%v", err))
	}
	p.On = conds
	return p
}

// istioMirrors compiles mirror (with mirrorPercentage, or the legacy mirrorPercent) and
// mirrors. A share that is not set is 100%, as in Istio.
func (c *compiler) istioMirrors(at errorf, path string, r *networking.HTTPRoute) []snapshot.Mirror {
	var out []snapshot.Mirror
	dest := func(p string, d *networking.Destination) (snapshot.Destination, bool) {
		c.onlyFields(at, p, d, "host", "subset", "port")
		out := snapshot.Destination{Host: d.GetHost(), Subset: d.GetSubset(), Port: int(d.GetPort().GetNumber())}
		svc := c.service(out.Host)
		if svc == nil {
			c.warn("%s: no service %q in the mesh; nothing will be mirrored", p, out.Host)
			return out, false
		}
		out.Host = svc.Name
		if out.Subset != "" && !hasSubset(svc, out.Subset) {
			c.fail(at(p+".subset", "subset %q of host %q is not defined by any DestinationRule", out.Subset, out.Host))
		}
		return out, true
	}
	percent := func(p string, pct *networking.Percent) float64 {
		if pct == nil {
			return 100
		}
		if v := pct.GetValue(); v < 0 || v > 100 {
			c.fail(at(p+".value", "%v is not a percentage in 0..100", v))
		}
		return pct.GetValue()
	}
	if m := r.GetMirror(); m != nil {
		if d, ok := dest(path+".mirror", m); ok {
			share := percent(path+".mirrorPercentage", r.GetMirrorPercentage())
			if r.GetMirrorPercentage() == nil && r.GetMirrorPercent() != nil {
				share = float64(r.GetMirrorPercent().GetValue())
			}
			out = append(out, snapshot.Mirror{Destination: d, Percent: share})
		}
	}
	for i, m := range r.GetMirrors() {
		p := fmt.Sprintf("%s.mirrors[%d]", path, i)
		c.onlyFields(at, p, m, "destination", "percentage")
		if d, ok := dest(p+".destination", m.GetDestination()); ok {
			out = append(out, snapshot.Mirror{Destination: d, Percent: percent(p+".percentage", m.GetPercentage())})
		}
	}
	return out
}

// istioNamedMatches compiles a map of header or query-parameter matches, sorted by name so
// snapshots compare equal. An empty match ({}) asks only for presence.
func (c *compiler) istioNamedMatches(at errorf, path string, ms map[string]*networking.StringMatch) []snapshot.HeaderMatch {
	var out []snapshot.HeaderMatch
	for _, name := range sortedKeys(ms) {
		m := ms[name]
		if m.GetMatchType() == nil {
			out = append(out, snapshot.HeaderMatch{Name: name})
			continue
		}
		if sm := c.istioString(at, path+"."+name, m); sm != nil {
			out = append(out, snapshot.HeaderMatch{Name: name, Value: *sm})
		}
	}
	return out
}

func headerOps(o *networking.Headers_HeaderOperations) *snapshot.HeaderOps {
	if o == nil {
		return nil
	}
	return &snapshot.HeaderOps{Set: o.GetSet(), Add: o.GetAdd(), Remove: o.GetRemove()}
}

// trafficPolicy compiles a DestinationRule trafficPolicy: load balancing, connection pool
// limits (as one bound on in-flight requests per proxy) and outlier detection.
//
// portLevelSettings apply to the service's port (Swimlane services have one): a setting for
// that port replaces the policy's own load balancer, connection pool and outlier detection.
func (c *compiler) trafficPolicy(at errorf, path string, tp *networking.TrafficPolicy, port int) *snapshot.TrafficPolicy {
	if tp == nil {
		return nil
	}
	c.onlyFields(at, path, tp, "loadBalancer", "connectionPool", "outlierDetection", "tls", "portLevelSettings")
	out := c.policyFields(at, path, tp.GetLoadBalancer(), tp.GetConnectionPool(), tp.GetOutlierDetection())
	for i, pl := range tp.GetPortLevelSettings() {
		pp := fmt.Sprintf("%s.portLevelSettings[%d]", path, i)
		c.onlyFields(at, pp, pl, "port", "loadBalancer", "connectionPool", "outlierDetection")
		if int(pl.GetPort().GetNumber()) != port {
			c.warn("%s: port %d is not the service's port %d; the setting applies to nothing", pp, pl.GetPort().GetNumber(), port)
			continue
		}
		lvl := c.policyFields(at, pp, pl.GetLoadBalancer(), pl.GetConnectionPool(), pl.GetOutlierDetection())
		if pl.GetLoadBalancer() != nil {
			out.LB, out.Hash = lvl.LB, lvl.Hash
		}
		if pl.GetConnectionPool() != nil {
			out.MaxRequests = lvl.MaxRequests
		}
		if pl.GetOutlierDetection() != nil {
			out.Outlier = lvl.Outlier
		}
	}
	if tls := tp.GetTls(); tls != nil {
		switch tls.GetMode() {
		case networking.ClientTLSSettings_ISTIO_MUTUAL, networking.ClientTLSSettings_DISABLE:
			// Seed 002's DestinationRules ask for ISTIO_MUTUAL. Accepted so that YAML loads,
			// and said plainly: sidecars talk plaintext (on loopback in local mode).
			c.warn("%s.tls: mode %s accepted, but mTLS is not implemented yet: traffic between sidecars is plaintext", path, tls.GetMode())
		default:
			c.fail(at(path+".tls.mode", "%s is not supported yet (ISTIO_MUTUAL and DISABLE are accepted)", tls.GetMode()))
		}
	}
	return out
}

// policyFields compiles the load balancer, connection pool and outlier detection of a policy
// or of one of its port-level settings.
func (c *compiler) policyFields(at errorf, path string, lb *networking.LoadBalancerSettings, cp *networking.ConnectionPoolSettings, od *networking.OutlierDetection) *snapshot.TrafficPolicy {
	out := &snapshot.TrafficPolicy{}
	if lb != nil {
		c.onlyFields(at, path+".loadBalancer", lb, "simple", "consistentHash")
		switch lb.GetSimple() {
		case networking.LoadBalancerSettings_UNSPECIFIED, networking.LoadBalancerSettings_ROUND_ROBIN:
		case networking.LoadBalancerSettings_LEAST_REQUEST, networking.LoadBalancerSettings_LEAST_CONN:
			out.LB = "LEAST_REQUEST"
		case networking.LoadBalancerSettings_RANDOM:
			out.LB = "RANDOM"
		default:
			c.fail(at(path+".loadBalancer.simple", "%s is not supported yet", lb.GetSimple()))
		}
		if h := lb.GetConsistentHash(); h != nil {
			c.onlyFields(at, path+".loadBalancer.consistentHash", h, "httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName")
			out.Hash = &snapshot.HashPolicy{Header: h.GetHttpHeaderName(), Cookie: h.GetHttpCookie().GetName(), Query: h.GetHttpQueryParameterName(), SourceIP: h.GetUseSourceIp()}
		}
	}
	if cp != nil {
		c.onlyFields(at, path+".connectionPool", cp, "tcp", "http")
		// One bound on what a proxy has in flight to the service: http2MaxRequests, else
		// maxConnections plus http1MaxPendingRequests (the requests that may wait for one).
		limit := int(cp.GetHttp().GetHttp2MaxRequests())
		if limit == 0 {
			if conns := int(cp.GetTcp().GetMaxConnections()); conns > 0 {
				limit = conns + int(cp.GetHttp().GetHttp1MaxPendingRequests())
			}
		}
		out.MaxRequests = limit
		if t := cp.GetTcp(); t != nil {
			c.onlyFields(at, path+".connectionPool.tcp", t, "maxConnections", "connectTimeout")
		}
		if h := cp.GetHttp(); h != nil {
			c.onlyFields(at, path+".connectionPool.http", h, "http1MaxPendingRequests", "http2MaxRequests", "maxRequestsPerConnection", "maxRetries")
		}
	}
	if od != nil {
		c.onlyFields(at, path+".outlierDetection", od, "consecutive5xxErrors", "consecutiveGatewayErrors", "consecutiveErrors", "interval", "baseEjectionTime", "maxEjectionPercent")
		o := &snapshot.OutlierPolicy{Consecutive5xx: 5, BaseEjection: snapshot.Duration{Duration: 30 * time.Second}, MaxEjectionPercent: 10} // Istio's defaults
		if v := od.GetConsecutive_5XxErrors(); v != nil {
			o.Consecutive5xx = int(v.GetValue())
		} else if od.GetConsecutiveErrors() > 0 {
			o.Consecutive5xx = int(od.GetConsecutiveErrors())
		}
		if v := od.GetConsecutiveGatewayErrors(); v != nil {
			o.ConsecutiveGateway = int(v.GetValue())
		}
		if d := od.GetBaseEjectionTime(); d != nil {
			o.BaseEjection.Duration = d.AsDuration()
		}
		if p := od.GetMaxEjectionPercent(); p > 0 {
			o.MaxEjectionPercent = int(p)
		}
		out.Outlier = o
	}
	return out
}

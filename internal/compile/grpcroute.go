package compile

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"swimlane.dev/swimlane/internal/config"
	"swimlane.dev/swimlane/internal/snapshot"
)

// gatewayRouteKinds compiles the Gateway API route kinds beyond HTTPRoute, GRPCRoute then
// TCPRoute, each attached to a Service (GAMMA). It runs after httpRoutes, so c.routedBy sees
// every earlier object that routes a service.
func (c *compiler) gatewayRouteKinds() {
	c.grpcRoutes()
	c.tcpRoutes()
}

// grpcRoutes compiles GRPCRoutes attached to a Service. A gRPC call is an HTTP/2 POST to
// /<package.Service>/<Method>, so each match becomes an HTTP route on the path: the proxy
// routes gRPC like any HTTP/2 request, and the Service's routes are in svc.HTTP.
func (c *compiler) grpcRoutes() {
	seen := map[string]config.Source{}
	for _, o := range c.set.GRPCRoutes {
		if !c.firstOfName(seen, o.Source, o.Errorf) {
			continue
		}
		spec := o.Spec
		targets := c.serviceParents(o.Errorf, o.Source, spec.ParentRefs)
		if len(spec.Hostnames) > 0 {
			c.warn("%s: spec.hostnames: ignored for a Service parent (GAMMA routes by the Service)", o.Source)
		}
		var routes []grpcRoute
		for i, rule := range spec.Rules {
			routes = append(routes, c.grpcRule(o.Errorf, o.Name, i, rule)...)
		}
		// GRPCRoute precedence (spec, "matches"): most characters of service, then of
		// method, then most header matches; ties keep rule order.
		sort.SliceStable(routes, func(i, j int) bool { return routes[i].rank.before(routes[j].rank) })
		out := make([]*snapshot.HTTPRoute, len(routes))
		for i, r := range routes {
			out[i] = r.route
		}
		c.attachRoutes(o.Errorf, o.Source, targets, func(svc *snapshot.Service) { svc.HTTP = out })
	}
}

// grpcRoute is a compiled match with its precedence.
type grpcRoute struct {
	route *snapshot.HTTPRoute
	rank  grpcRank
}

// grpcRank is what GRPCRoute precedence compares.
type grpcRank struct {
	service, method, headers int
	regex                    bool // a RegularExpression method match: after an exact one on ties
}

func (a grpcRank) before(b grpcRank) bool {
	switch {
	case a.service != b.service:
		return a.service > b.service
	case a.method != b.method:
		return a.method > b.method
	case a.regex != b.regex:
		return !a.regex
	}
	return a.headers > b.headers
}

// grpcRule turns one rule into one route per match (matches are ORed; each keeps its own
// place in the precedence order).
func (c *compiler) grpcRule(at errorf, name string, idx int, rule gatewayv1.GRPCRouteRule) []grpcRoute {
	path := fmt.Sprintf("spec.rules[%d]", idx)
	if rule.SessionPersistence != nil {
		c.fail(at(path+".sessionPersistence", "not supported yet"))
	}
	var dests []snapshot.Destination
	for i, b := range rule.BackendRefs {
		bp := fmt.Sprintf("%s.backendRefs[%d]", path, i)
		if len(b.Filters) > 0 {
			c.fail(at(bp+".filters", "not supported yet"))
		}
		if d, ok := c.gatewayBackend(at, bp, b.BackendRef); ok {
			dests = append(dests, d)
		}
	}
	switch {
	case rule.BackendRefs == nil: // not written: point at the rule
		c.fail(at(path, "backendRefs: at least one backendRef is required"))
		return nil
	case len(dests) == 0: // each bad one is reported
		if len(rule.BackendRefs) == 0 {
			c.fail(at(path+".backendRefs", "at least one backendRef is required"))
		}
		return nil
	}
	filters, filtersOK := c.grpcFilters(at, path, rule.Filters)

	matches := rule.Matches
	if len(matches) == 0 {
		matches = []gatewayv1.GRPCRouteMatch{{}} // no match: every call
	}
	var out []grpcRoute
	for i, m := range matches {
		mp := fmt.Sprintf("%s.matches[%d]", path, i)
		route := &snapshot.HTTPRoute{}
		if filtersOK {
			route = c.gatewayFilters(at, path, filters, nil)
		}
		var hm snapshot.HTTPMatch
		var rank grpcRank
		if m.Method != nil {
			hm.URI, rank = c.grpcMethod(at, mp+".method", m.Method)
		}
		seen := map[string]bool{}
		for j, h := range m.Headers {
			hp := fmt.Sprintf("%s.headers[%d]", mp, j)
			hname := http.CanonicalHeaderKey(string(h.Name))
			if hname == "" {
				c.fail(at(hp+".name", "required"))
				continue
			}
			if seen[hname] {
				// The spec: only the first entry of an equivalent name counts.
				c.warn("%s: header %q is matched twice; only the first entry counts", hp, h.Name)
				continue
			}
			seen[hname] = true
			sm := snapshot.StringMatch{Exact: h.Value}
			if h.Type != nil {
				switch *h.Type {
				case gatewayv1.GRPCHeaderMatchExact:
				case gatewayv1.GRPCHeaderMatchRegularExpression:
					if _, err := snapshot.CompileRegex(h.Value); err != nil {
						c.fail(at(hp+".value", "invalid regex: %v", err))
						continue
					}
					sm = snapshot.StringMatch{Regex: h.Value}
				default:
					c.fail(at(hp+".type", "%q: want Exact or RegularExpression", *h.Type))
					continue
				}
			}
			hm.Headers = append(hm.Headers, snapshot.HeaderMatch{Name: hname, Value: sm})
		}
		rank.headers = len(hm.Headers)
		route.Name = fmt.Sprintf("GRPCRoute/%s#%d.%d", name, idx, i)
		if rule.Name != nil && *rule.Name != "" {
			route.Name += "(" + string(*rule.Name) + ")"
		}
		route.Match = []snapshot.HTTPMatch{hm}
		route.Destinations = dests
		out = append(out, grpcRoute{route: route, rank: rank})
	}
	return out
}

// grpcMethod compiles a method match into a match on the request path, /<service>/<method>:
// exact service and method is the exact path, service alone its prefix, method alone any
// service's method; RegularExpression joins the two expressions, a missing one matching any
// name.
func (c *compiler) grpcMethod(at errorf, mp string, m *gatewayv1.GRPCMethodMatch) (*snapshot.StringMatch, grpcRank) {
	service, method := "", ""
	if m.Service != nil {
		service = *m.Service
	}
	if m.Method != nil {
		method = *m.Method
	}
	if service == "" && method == "" {
		c.fail(at(mp, "one or both of service and method are required"))
		return nil, grpcRank{}
	}
	rank := grpcRank{service: len(service), method: len(method)}
	kind := gatewayv1.GRPCMethodMatchExact
	if m.Type != nil {
		kind = *m.Type
	}
	switch kind {
	case gatewayv1.GRPCMethodMatchExact:
		bad := false
		for _, part := range []struct{ field, value string }{{"service", service}, {"method", method}} {
			if strings.Contains(part.value, "/") {
				c.fail(at(mp+"."+part.field, "%q: an exact %s must not contain \"/\" (the path is /<service>/<method>)", part.value, part.field))
				bad = true
			}
		}
		switch {
		case bad:
			return nil, rank
		case service != "" && method != "":
			return &snapshot.StringMatch{Exact: "/" + service + "/" + method}, rank
		case service != "":
			return &snapshot.StringMatch{Prefix: "/" + service + "/"}, rank
		}
		return &snapshot.StringMatch{Regex: `/[^/]+/` + regexp.QuoteMeta(method)}, rank
	case gatewayv1.GRPCMethodMatchRegularExpression:
		rank.regex = true
		parts := []struct{ field, value string }{{"service", service}, {"method", method}}
		exprs := make([]string, len(parts))
		bad := false
		for i, part := range parts {
			if part.value == "" {
				exprs[i] = `[^/]+`
				continue
			}
			if _, err := snapshot.CompileRegex(part.value); err != nil {
				c.fail(at(mp+"."+part.field, "invalid regex: %v", err))
				bad = true
				continue
			}
			exprs[i] = "(?:" + part.value + ")"
		}
		if bad {
			return nil, rank
		}
		return &snapshot.StringMatch{Regex: "/" + exprs[0] + "/" + exprs[1]}, rank
	}
	c.fail(at(mp+".type", "%q: want Exact or RegularExpression", kind))
	return nil, rank
}

// grpcFilters turns a GRPCRoute rule's filters into HTTPRoute filters, which gatewayFilters
// compiles: RequestHeaderModifier, ResponseHeaderModifier and RequestMirror mean the same in
// both. It reports the filters it cannot convert and returns false if there were any.
func (c *compiler) grpcFilters(at errorf, path string, fs []gatewayv1.GRPCRouteFilter) ([]gatewayv1.HTTPRouteFilter, bool) {
	out := make([]gatewayv1.HTTPRouteFilter, 0, len(fs))
	ok := true
	for i, f := range fs {
		fp := fmt.Sprintf("%s.filters[%d]", path, i)
		switch f.Type {
		case gatewayv1.GRPCRouteFilterRequestHeaderModifier:
			if f.RequestHeaderModifier == nil {
				c.fail(at(fp, "requestHeaderModifier is required"))
				ok = false
				continue
			}
			out = append(out, gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterRequestHeaderModifier, RequestHeaderModifier: f.RequestHeaderModifier})
		case gatewayv1.GRPCRouteFilterResponseHeaderModifier:
			if f.ResponseHeaderModifier == nil {
				c.fail(at(fp, "responseHeaderModifier is required"))
				ok = false
				continue
			}
			out = append(out, gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterResponseHeaderModifier, ResponseHeaderModifier: f.ResponseHeaderModifier})
		case gatewayv1.GRPCRouteFilterRequestMirror:
			out = append(out, gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterRequestMirror, RequestMirror: f.RequestMirror})
		default:
			c.fail(at(fp+".type", "filter %s is not supported yet", f.Type))
			ok = false
		}
	}
	return out, ok
}

// serviceParents returns the Services a route's parentRefs name, reporting parents that are
// not Services (only GAMMA, east-west routing, is supported).
func (c *compiler) serviceParents(at errorf, src config.Source, refs []gatewayv1.ParentReference) []*snapshot.Service {
	var targets []*snapshot.Service
	for i, p := range refs {
		path := fmt.Sprintf("spec.parentRefs[%d]", i)
		group, kind := "", "Gateway"
		if p.Group != nil {
			group = string(*p.Group)
		}
		if p.Kind != nil {
			kind = string(*p.Kind)
		}
		if kind != "Service" || (group != "" && group != "core") {
			c.fail(at(path, "parent %s %q is not supported yet; only a Service (GAMMA)", kind, p.Name))
			continue
		}
		if p.Port != nil || p.SectionName != nil {
			c.fail(at(path, "port and sectionName on a parentRef are not supported yet"))
		}
		if p.Namespace != nil && string(*p.Namespace) != c.meshCfg.Namespace {
			c.fail(at(path+".namespace", "a parent in namespace %q is not supported yet; the mesh is namespace %q", *p.Namespace, c.meshCfg.Namespace))
			continue
		}
		svc := c.service(string(p.Name))
		if svc == nil {
			c.warn("%s: %s: no service %q in the mesh; the route applies to nothing", src, path, p.Name)
			continue
		}
		targets = append(targets, svc)
	}
	return targets
}

// firstOfName reports whether src is the first object of its kind with its name, failing
// otherwise (as uniqueNames does for the other kinds): a second apply would replace the first.
func (c *compiler) firstOfName(seen map[string]config.Source, src config.Source, at errorf) bool {
	key := src.Namespace + "/" + src.Name
	if prev, dup := seen[key]; dup {
		c.fail(at("metadata.name", "%s/%s is declared twice; the other is %s", src.Kind, src.Name, prev))
		return false
	}
	seen[key] = src
	return true
}

// attachRoutes gives each target service its routes (set), unless another object already
// routes it: two objects routing one service is ambiguous.
func (c *compiler) attachRoutes(at errorf, src config.Source, targets []*snapshot.Service, set func(*snapshot.Service)) {
	for _, svc := range targets {
		if prev, dup := c.routedBy[svc.Name]; dup {
			c.fail(at("spec.parentRefs", "service %q is already routed by %s", svc.Name, prev))
			continue
		}
		c.routedBy[svc.Name] = src.String()
		set(svc)
	}
}

// gatewayBackend compiles one backendRef (a Service) into a weighted destination.
func (c *compiler) gatewayBackend(at errorf, bp string, b gatewayv1.BackendRef) (snapshot.Destination, bool) {
	kind, group := "Service", ""
	if b.Kind != nil {
		kind = string(*b.Kind)
	}
	if b.Group != nil {
		group = string(*b.Group)
	}
	if kind != "Service" || (group != "" && group != "core") {
		c.fail(at(bp, "backend %s in group %q is not supported; only a core Service", kind, group))
		return snapshot.Destination{}, false
	}
	if b.Namespace != nil && string(*b.Namespace) != c.meshCfg.Namespace {
		c.fail(at(bp+".namespace", "a backend in namespace %q is not supported yet; the mesh is namespace %q", *b.Namespace, c.meshCfg.Namespace))
		return snapshot.Destination{}, false
	}
	weight := 1 // the Gateway API default
	if b.Weight != nil {
		weight = int(*b.Weight)
	}
	if weight < 0 {
		c.fail(at(bp+".weight", "%d: must not be negative", weight))
		return snapshot.Destination{}, false
	}
	d := snapshot.Destination{Host: string(b.Name), Weight: weight}
	if b.Port != nil {
		d.Port = int(*b.Port)
	}
	if svc := c.service(d.Host); svc != nil {
		d.Host = svc.Name
	} else {
		c.warn("%s: no service %q in the mesh", bp, d.Host)
	}
	return d, true
}

package compile

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"swimlane.dev/swimlane/internal/snapshot"
)

// httpRoutes compiles Gateway API HTTPRoutes attached to a Service (GAMMA, east-west routing).
func (c *compiler) httpRoutes() {
	for _, o := range c.set.HTTPRoutes {
		spec := o.Spec
		var targets []*snapshot.Service
		for i, p := range spec.ParentRefs {
			path := fmt.Sprintf("spec.parentRefs[%d]", i)
			group, kind := "", "Gateway"
			if p.Group != nil {
				group = string(*p.Group)
			}
			if p.Kind != nil {
				kind = string(*p.Kind)
			}
			if kind != "Service" || (group != "" && group != "core") {
				c.fail(o.Errorf(path, "parent %s %q is not supported yet; only a Service (GAMMA)", kind, p.Name))
				continue
			}
			if p.Port != nil || p.SectionName != nil {
				c.fail(o.Errorf(path, "port and sectionName on a parentRef are not supported yet"))
			}
			svc := c.service(string(p.Name))
			if svc == nil {
				c.warn("%s: %s: no service %q in the mesh; the route applies to nothing", o.Source, path, p.Name)
				continue
			}
			targets = append(targets, svc)
		}

		var routes []*snapshot.HTTPRoute
		for i, rule := range spec.Rules {
			routes = append(routes, c.gatewayRule(o.Errorf, o.Name, i, rule)...)
		}
		// Gateway API orders matches by specificity, not by position (HTTPRoute spec, "rules").
		sort.SliceStable(routes, func(i, j int) bool { return moreSpecific(routes[i], routes[j]) })

		for _, svc := range targets {
			if prev, dup := c.routedBy[svc.Name]; dup {
				c.fail(o.Errorf("spec.parentRefs", "service %q is already routed by %s", svc.Name, prev))
				continue
			}
			c.routedBy[svc.Name] = o.Source.String()
			svc.HTTP = routes
		}
	}
}

// gatewayRule turns one rule into one route per match (matches are ORed; each keeps its own
// place in the specificity order).
func (c *compiler) gatewayRule(at errorf, name string, idx int, rule gatewayv1.HTTPRouteRule) []*snapshot.HTTPRoute {
	path := fmt.Sprintf("spec.rules[%d]", idx)
	if len(rule.Filters) > 0 {
		c.fail(at(path+".filters", "filters are not supported yet"))
	}
	if rule.Timeouts != nil {
		c.fail(at(path+".timeouts", "not supported yet"))
	}
	if rule.Retry != nil {
		c.fail(at(path+".retry", "not supported yet"))
	}
	if rule.SessionPersistence != nil {
		c.fail(at(path+".sessionPersistence", "not supported yet"))
	}
	var dests []snapshot.Destination
	for i, b := range rule.BackendRefs {
		bp := fmt.Sprintf("%s.backendRefs[%d]", path, i)
		if b.Kind != nil && *b.Kind != "Service" || b.Group != nil && *b.Group != "" {
			c.fail(at(bp, "backend kind %v is not supported; only Service", *b.Kind))
			continue
		}
		if len(b.Filters) > 0 {
			c.fail(at(bp+".filters", "not supported yet"))
		}
		weight := 1 // the Gateway API default
		if b.Weight != nil {
			weight = int(*b.Weight)
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
		dests = append(dests, d)
	}
	if len(dests) == 0 {
		c.fail(at(path+".backendRefs", "at least one backendRef is required"))
		return nil
	}

	matches := rule.Matches
	if len(matches) == 0 {
		matches = []gatewayv1.HTTPRouteMatch{{}} // no match: all requests, path prefix "/"
	}
	var out []*snapshot.HTTPRoute
	for i, m := range matches {
		mp := fmt.Sprintf("%s.matches[%d]", path, i)
		if len(m.QueryParams) > 0 {
			c.fail(at(mp+".queryParams", "not supported yet"))
		}
		var hm snapshot.HTTPMatch
		if m.Path != nil {
			hm.URI = c.gatewayPath(at, mp+".path", m.Path)
		}
		if m.Method != nil {
			hm.Method = &snapshot.StringMatch{Exact: string(*m.Method)}
		}
		for j, h := range m.Headers {
			hp := fmt.Sprintf("%s.headers[%d]", mp, j)
			sm := snapshot.StringMatch{Exact: h.Value}
			if h.Type != nil && *h.Type == gatewayv1.HeaderMatchRegularExpression {
				if _, err := snapshot.CompileRegex(h.Value); err != nil {
					c.fail(at(hp+".value", "invalid regex: %v", err))
					continue
				}
				sm = snapshot.StringMatch{Regex: h.Value}
			}
			hm.Headers = append(hm.Headers, snapshot.HeaderMatch{Name: http.CanonicalHeaderKey(string(h.Name)), Value: sm})
		}
		out = append(out, &snapshot.HTTPRoute{
			Name:         fmt.Sprintf("HTTPRoute/%s#%d.%d", name, idx, i),
			Match:        []snapshot.HTTPMatch{hm},
			Destinations: dests,
		})
	}
	return out
}

func (c *compiler) gatewayPath(at errorf, path string, m *gatewayv1.HTTPPathMatch) *snapshot.StringMatch {
	value := "/"
	if m.Value != nil {
		value = *m.Value
	}
	kind := gatewayv1.PathMatchPathPrefix
	if m.Type != nil {
		kind = *m.Type
	}
	switch kind {
	case gatewayv1.PathMatchExact:
		return &snapshot.StringMatch{Exact: value}
	case gatewayv1.PathMatchRegularExpression:
		if _, err := snapshot.CompileRegex(value); err != nil {
			c.fail(at(path+".value", "invalid regex: %v", err))
			return nil
		}
		return &snapshot.StringMatch{Regex: value}
	}
	if value == "/" {
		return nil // every path
	}
	// PathPrefix matches whole segments: /foo matches /foo and /foo/bar, not /foobar.
	value = strings.TrimSuffix(value, "/")
	return &snapshot.StringMatch{Regex: regexpQuote(value) + `(/.*)?`}
}

// moreSpecific orders Gateway API matches: exact path, then longer prefix, then method, then
// more headers.
func moreSpecific(a, b *snapshot.HTTPRoute) bool {
	ma, mb := a.Match[0], b.Match[0]
	ea, eb := ma.URI != nil && ma.URI.Exact != "", mb.URI != nil && mb.URI.Exact != ""
	if ea != eb {
		return ea
	}
	if la, lb := pathLen(ma.URI), pathLen(mb.URI); la != lb {
		return la > lb
	}
	if (ma.Method != nil) != (mb.Method != nil) {
		return ma.Method != nil
	}
	return len(ma.Headers) > len(mb.Headers)
}

func pathLen(m *snapshot.StringMatch) int {
	if m == nil {
		return 0
	}
	return len(m.Exact) + len(m.Prefix) + len(m.Regex)
}

func regexpQuote(s string) string { return regexp.QuoteMeta(s) }

package compile

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"swimlane.dev/swimlane/internal/snapshot"
)

// httpRoutes compiles Gateway API HTTPRoutes attached to a Service (GAMMA, east-west routing).
func (c *compiler) httpRoutes() {
	for _, o := range c.set.HTTPRoutes {
		spec := o.Spec
		targets := c.serviceParents(o.Errorf, o.Source, spec.ParentRefs)

		var routes []*snapshot.HTTPRoute
		for i, rule := range spec.Rules {
			routes = append(routes, c.gatewayRule(o.Errorf, o.Name, i, rule)...)
		}
		// Gateway API orders matches by specificity, not by position (HTTPRoute spec, "rules").
		sort.SliceStable(routes, func(i, j int) bool { return moreSpecific(routes[i], routes[j]) })

		c.attachRoutes(o.Errorf, o.Source, targets, func(svc *snapshot.Service) { svc.HTTP = routes })
	}
}

// gatewayRule turns one rule into one route per match (matches are ORed; each keeps its own
// place in the specificity order).
func (c *compiler) gatewayRule(at errorf, name string, idx int, rule gatewayv1.HTTPRouteRule) []*snapshot.HTTPRoute {
	path := fmt.Sprintf("spec.rules[%d]", idx)
	var timeout time.Duration
	if t := rule.Timeouts; t != nil {
		if t.BackendRequest != nil {
			c.fail(at(path+".timeouts.backendRequest", "not supported yet"))
		}
		if t.Request != nil {
			d, err := time.ParseDuration(string(*t.Request))
			if err != nil {
				c.fail(at(path+".timeouts.request", "%v", err))
			}
			timeout = d
		}
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
		if len(b.Filters) > 0 {
			c.fail(at(bp+".filters", "not supported yet"))
		}
		if d, ok := c.gatewayBackend(at, bp, b.BackendRef); ok {
			dests = append(dests, d)
		}
	}
	if len(dests) == 0 && !hasRedirect(rule.Filters) {
		c.fail(at(path+".backendRefs", "at least one backendRef is required (or a RequestRedirect filter)"))
		return nil
	}

	matches := rule.Matches
	if len(matches) == 0 {
		matches = []gatewayv1.HTTPRouteMatch{{}} // no match: all requests, path prefix "/"
	}
	var out []*snapshot.HTTPRoute
	for i, m := range matches {
		route := c.gatewayFilters(at, path, rule.Filters, m.Path)
		route.Timeout.Duration = timeout
		if route.Redirect == nil && len(dests) == 0 {
			continue
		}
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
		route.Name = fmt.Sprintf("HTTPRoute/%s#%d.%d", name, idx, i)
		route.Match = []snapshot.HTTPMatch{hm}
		if route.Redirect == nil {
			route.Destinations = dests
		}
		out = append(out, route)
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

func hasRedirect(fs []gatewayv1.HTTPRouteFilter) bool {
	for _, f := range fs {
		if f.Type == gatewayv1.HTTPRouteFilterRequestRedirect {
			return true
		}
	}
	return false
}

// gatewayFilters compiles a rule's filters into a route's edits, for the match whose path is
// pathMatch (ReplacePrefixMatch replaces that prefix).
func (c *compiler) gatewayFilters(at errorf, path string, fs []gatewayv1.HTTPRouteFilter, pathMatch *gatewayv1.HTTPPathMatch) *snapshot.HTTPRoute {
	r := &snapshot.HTTPRoute{}
	headerOps := func(h *gatewayv1.HTTPHeaderFilter) *snapshot.HeaderOps {
		if h == nil {
			return nil
		}
		ops := &snapshot.HeaderOps{Set: map[string]string{}, Add: map[string]string{}, Remove: h.Remove}
		for _, x := range h.Set {
			ops.Set[string(x.Name)] = x.Value
		}
		for _, x := range h.Add {
			ops.Add[string(x.Name)] = x.Value
		}
		return ops
	}
	pathRewrite := func(fp string, m *gatewayv1.HTTPPathModifier) (uri, prefix string, full bool) {
		if m == nil {
			return "", "", false
		}
		switch m.Type {
		case gatewayv1.FullPathHTTPPathModifier:
			if m.ReplaceFullPath != nil {
				return *m.ReplaceFullPath, "", true
			}
		case gatewayv1.PrefixMatchHTTPPathModifier:
			if pathMatch == nil || pathMatch.Type == nil || *pathMatch.Type != gatewayv1.PathMatchPathPrefix || pathMatch.Value == nil {
				c.fail(at(fp, "ReplacePrefixMatch needs a PathPrefix match"))
				return "", "", false
			}
			if m.ReplacePrefixMatch != nil {
				return *m.ReplacePrefixMatch, *pathMatch.Value, false
			}
		}
		c.fail(at(fp, "path modifier %q without its value", m.Type))
		return "", "", false
	}
	for i, f := range fs {
		fp := fmt.Sprintf("%s.filters[%d]", path, i)
		switch f.Type {
		case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
			r.RequestHeaders = headerOps(f.RequestHeaderModifier)
		case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
			r.ResponseHeaders = headerOps(f.ResponseHeaderModifier)
		case gatewayv1.HTTPRouteFilterURLRewrite:
			rw := &snapshot.Rewrite{}
			if u := f.URLRewrite; u != nil {
				if u.Hostname != nil {
					rw.Authority = string(*u.Hostname)
				}
				rw.URI, rw.Prefix, rw.FullPath = pathRewrite(fp+".urlRewrite.path", u.Path)
			}
			r.Rewrite = rw
		case gatewayv1.HTTPRouteFilterRequestRedirect:
			rd := &snapshot.Redirect{Code: 302} // the Gateway API default
			if u := f.RequestRedirect; u != nil {
				if u.Scheme != nil {
					rd.Scheme = *u.Scheme
				}
				if u.Hostname != nil {
					rd.Authority = string(*u.Hostname)
				}
				if u.Port != nil {
					rd.Port = int(*u.Port)
				}
				if u.StatusCode != nil {
					rd.Code = *u.StatusCode
				}
				if u.Path != nil {
					uri, prefix, full := pathRewrite(fp+".requestRedirect.path", u.Path)
					if !full && prefix != "" {
						c.fail(at(fp+".requestRedirect.path", "ReplacePrefixMatch in a redirect is not supported yet"))
					}
					rd.URI = uri
				}
			}
			r.Redirect = rd
		case gatewayv1.HTTPRouteFilterRequestMirror:
			m := f.RequestMirror
			if m == nil {
				c.fail(at(fp, "requestMirror is required"))
				continue
			}
			share := 100.0
			switch {
			case m.Percent != nil:
				share = float64(*m.Percent)
			case m.Fraction != nil && m.Fraction.Denominator != nil && *m.Fraction.Denominator > 0:
				share = 100 * float64(m.Fraction.Numerator) / float64(*m.Fraction.Denominator)
			}
			d := snapshot.Destination{Host: string(m.BackendRef.Name)}
			if m.BackendRef.Port != nil {
				d.Port = int(*m.BackendRef.Port)
			}
			if svc := c.service(d.Host); svc != nil {
				d.Host = svc.Name
			} else {
				c.warn("%s: no service %q in the mesh; nothing will be mirrored", fp, d.Host)
			}
			r.Mirrors = append(r.Mirrors, snapshot.Mirror{Destination: d, Percent: share})
		default:
			c.fail(at(fp+".type", "filter %s is not supported yet", f.Type))
		}
	}
	return r
}

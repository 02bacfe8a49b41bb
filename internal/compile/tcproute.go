package compile

import (
	"fmt"

	"swimlane.dev/swimlane/internal/config"
	"swimlane.dev/swimlane/internal/snapshot"
)

// tcpRoutes compiles TCPRoutes (gateway.networking.k8s.io/v1alpha2) attached to a Service:
// connections to the Service go to one of the rule's backendRefs by weight, as a
// VirtualService tcp rule without a port match does. A TCPRoute has no matches, so with a
// Service parent (no listeners or ports to tell rules apart) only one rule makes sense.
func (c *compiler) tcpRoutes() {
	seen := map[string]config.Source{}
	for _, o := range c.set.TCPRoutes {
		if !c.firstOfName(seen, o.Source, o.Errorf) {
			continue
		}
		spec := o.Spec
		targets := c.serviceParents(o.Errorf, o.Source, spec.ParentRefs)
		if len(spec.Rules) == 0 {
			c.fail(o.Errorf("spec.rules", "at least one rule is required"))
			continue
		}
		if len(spec.Rules) > 1 {
			c.fail(o.Errorf("spec.rules[1]", "more than one rule is not supported yet (a TCPRoute has no matches to choose a rule by)"))
			continue
		}
		rule := spec.Rules[0]
		var dests []snapshot.Destination
		for i, b := range rule.BackendRefs {
			if d, ok := c.gatewayBackend(o.Errorf, fmt.Sprintf("spec.rules[0].backendRefs[%d]", i), b); ok {
				dests = append(dests, d)
			}
		}
		switch {
		case rule.BackendRefs == nil: // not written: point at the rule
			c.fail(o.Errorf("spec.rules[0]", "backendRefs: at least one backendRef is required"))
			continue
		case len(dests) == 0: // each bad one is reported
			if len(rule.BackendRefs) == 0 {
				c.fail(o.Errorf("spec.rules[0].backendRefs", "at least one backendRef is required"))
			}
			continue
		}
		route := &snapshot.TCPRoute{Name: fmt.Sprintf("TCPRoute/%s#0", o.Name), Destinations: dests}
		if rule.Name != nil && *rule.Name != "" {
			route.Name += "(" + string(*rule.Name) + ")"
		}
		c.attachRoutes(o.Errorf, o.Source, targets, func(svc *snapshot.Service) { svc.TCP = []*snapshot.TCPRoute{route} })
	}
}

package compile

import (
	"swimlane.dev/swimlane/internal/config"
)

// uniqueNames rejects two objects of one kind with one name: in Kubernetes a second apply
// replaces the first, so two files both declaring VirtualService/web-api say two different
// things and one of them would be silently dropped.
func (c *compiler) uniqueNames() {
	seen := map[string]config.Source{}
	check := func(src config.Source, errorf errorf) {
		key := src.Kind + "/" + src.Namespace + "/" + src.Name
		if prev, dup := seen[key]; dup {
			c.fail(errorf("metadata.name", "%s/%s is declared twice; the other is %s", src.Kind, src.Name, prev))
			return
		}
		seen[key] = src
	}
	for _, o := range c.set.VirtualServices {
		check(o.Source, o.Errorf)
	}
	for _, o := range c.set.DestinationRules {
		check(o.Source, o.Errorf)
	}
	for _, o := range c.set.ServiceEntries {
		check(o.Source, o.Errorf)
	}
	for _, o := range c.set.Gateways {
		check(o.Source, o.Errorf)
	}
	for _, o := range c.set.HTTPRoutes {
		check(o.Source, o.Errorf)
	}
	for _, o := range c.set.LaneEntries {
		check(o.Source, o.Errorf)
	}
}

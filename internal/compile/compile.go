// Package compile turns loaded config and the registry's workloads into one snapshot.
//
// Compile is a pure function: same input, same snapshot. It is the only place that knows both
// the users' config dialects (Istio, Gateway API, Kubernetes Services, the Mesh file) and the
// snapshot's own model, so the proxy never sees an Istio type. Every problem it finds is a
// *config.Error naming file, line, object and field; any error rejects the whole input.
package compile

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"swimlane.dev/swimlane/internal/config"
	"swimlane.dev/swimlane/internal/lane"
	"swimlane.dev/swimlane/internal/registry"
	"swimlane.dev/swimlane/internal/snapshot"
)

// Defaults for the mesh-wide lane settings (see PRODUCT.md, names on the wire).
const (
	DefaultLaneLabel = "swimlane"
	DefaultBaseline  = "main"
	DefaultNamespace = "default"
)

// Compiled is a compiled snapshot and the warnings about config that is valid but suspicious
// (a route to a host the mesh does not know, for example).
type Compiled struct {
	Snapshot *snapshot.Snapshot
	Warnings []string
	// NextExpiry is when the next declared lane expires (zero for none): the snapshot must be
	// compiled again then.
	NextExpiry time.Time
}

// Compile builds an unversioned, unprepared snapshot from set and workloads as of now (which
// decides which lanes have expired).
func Compile(set *config.Set, workloads []registry.Workload, now time.Time) (*Compiled, error) {
	c := &compiler{set: set, now: now, services: map[string]*snapshot.Service{}, routedBy: map[string]string{}}
	c.mesh()
	c.uniqueNames()
	c.servicesFromMesh()
	c.servicesFromKubernetes()
	c.endpoints(workloads)
	c.serviceEntries()
	c.gateways()
	c.istioGateways()
	c.destinationRules()
	c.virtualServices()
	c.httpRoutes()
	c.gatewayRouteKinds()
	c.lanes()
	c.laneEntries()
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	snap := &snapshot.Snapshot{Mesh: c.meshCfg, Gateways: c.gws, Lanes: c.laneInfos, LaneEntries: c.entries}
	for _, name := range sortedKeys(c.services) {
		snap.Services = append(snap.Services, c.services[name])
	}
	return &Compiled{Snapshot: snap, Warnings: c.warnings, NextExpiry: c.nextExpiry}, nil
}

type compiler struct {
	set      *config.Set
	now      time.Time
	meshCfg  snapshot.Mesh
	services map[string]*snapshot.Service
	// selectors holds each service's label selector, for matching workloads.
	selectors map[string]map[string]string
	// routedBy records which object gave a service its routes: two objects routing one host
	// is ambiguous, and Istio's answer (the older wins) depends on creation time we lack.
	routedBy map[string]string
	gws      []*snapshot.Gateway
	// laneInfos and entries are the compiled Lane and LaneEntry objects.
	laneInfos  []*snapshot.LaneInfo
	entries    []*snapshot.LaneEntry
	nextExpiry time.Time
	// gatewayServers are the listeners each Istio Gateway opened, by Gateway name.
	gatewayServers    map[string][]*snapshot.GatewayServer
	istioGatewayNames map[string]bool
	errs              []error
	warnings          []string
}

func (c *compiler) fail(err error) { c.errs = append(c.errs, err) }

func (c *compiler) warn(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

func (c *compiler) mesh() {
	names := lane.Default()
	c.meshCfg = snapshot.Mesh{
		LaneHeader: names.Header, BaggageKey: names.BaggageKey,
		LaneLabel: DefaultLaneLabel, Baseline: DefaultBaseline, Namespace: DefaultNamespace,
	}
	for i, m := range c.set.Meshes {
		if i > 0 {
			c.fail(m.Errorf("", "a second Mesh; %s is already the mesh", c.set.Meshes[0].Source))
			continue
		}
		spec := m.Spec
		if spec.LaneHeader != "" {
			c.meshCfg.LaneHeader = strings.ToLower(spec.LaneHeader)
		}
		if spec.BaggageKey != "" {
			c.meshCfg.BaggageKey = spec.BaggageKey
		}
		if spec.LaneLabel != "" {
			c.meshCfg.LaneLabel = spec.LaneLabel
		}
		if spec.Baseline != "" {
			if !lane.Valid(spec.Baseline) {
				c.fail(m.Errorf("spec.baseline", "%q is not a lane name ([A-Za-z0-9._-]{1,63})", spec.Baseline))
			}
			c.meshCfg.Baseline = lane.Lane(spec.Baseline)
		}
		if m.Namespace != "" {
			c.meshCfg.Namespace = m.Namespace
		}
		if p := spec.OutboundTrafficPolicy; p != nil {
			switch p.Mode {
			case "", "ALLOW_ANY":
			case "REGISTRY_ONLY":
				c.meshCfg.RegistryOnly = true
			default:
				c.fail(m.Errorf("spec.outboundTrafficPolicy.mode", "%q: want ALLOW_ANY or REGISTRY_ONLY", p.Mode))
			}
		}
	}
}

func (c *compiler) addService(name string, port int, selector map[string]string, where func(string, string, ...any) error) {
	if _, dup := c.services[name]; dup {
		c.fail(where("metadata.name", "service %q is declared twice", name))
		return
	}
	c.services[name] = &snapshot.Service{Name: name, Port: port}
	if c.selectors == nil {
		c.selectors = map[string]map[string]string{}
	}
	c.selectors[name] = selector
}

func (c *compiler) servicesFromMesh() {
	for _, m := range c.set.Meshes {
		for i, s := range m.Spec.Services {
			field := fmt.Sprintf("spec.services[%d]", i)
			if s.Name == "" {
				c.fail(m.Errorf(field, "name is required"))
				continue
			}
			if s.Port <= 0 || s.Port > 65535 {
				c.fail(m.Errorf(field+".port", "port %d is not in 1..65535", s.Port))
			}
			c.addService(s.Name, s.Port, s.Selector, func(_ string, f string, a ...any) error {
				return m.Errorf(field+".name", f, a...)
			})
		}
	}
}

func (c *compiler) servicesFromKubernetes() {
	for _, o := range c.set.Services {
		port := 0
		if len(o.Spec.Ports) > 0 {
			port = int(o.Spec.Ports[0].Port)
		}
		if len(o.Spec.Ports) > 1 {
			c.fail(o.Errorf("spec.ports[1]", "services with more than one port are not supported yet"))
		}
		c.addService(o.Name, port, o.Spec.Selector, o.Errorf)
	}
}

// endpoints gives each service the workloads its selector matches, as Kubernetes does. A
// service without a selector has no endpoints. Workloads are indexed by label pair, so each
// service checks only the workloads that carry one of its selector's pairs: checking every
// workload against every selector took minutes at 10,000 services and 100,000 workloads.
func (c *compiler) endpoints(workloads []registry.Workload) {
	byPair := map[string][]int{}
	for i, w := range workloads {
		for k, v := range w.Labels {
			byPair[k+"="+v] = append(byPair[k+"="+v], i)
		}
	}
	for name, svc := range c.services {
		sel := c.selectors[name]
		if len(sel) == 0 {
			continue
		}
		svc.Lane = lane.Lane(sel[c.meshCfg.LaneLabel])
		// The rarest pair of the selector gives the fewest candidates.
		var candidates []int
		first := true
		for k, v := range sel {
			if list := byPair[k+"="+v]; first || len(list) < len(candidates) {
				candidates, first = list, false
			}
		}
		for _, i := range candidates {
			w := workloads[i]
			if matches(w.Labels, sel) {
				svc.Endpoints = append(svc.Endpoints, snapshot.Endpoint{
					Address: w.Address, Protocol: w.Protocol, Workload: w.Name, Labels: w.Labels, Health: w.Health,
				})
			}
		}
	}
}

func matches(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// service finds the service a config host names: short, namespaced or fully qualified.
func (c *compiler) service(host string) *snapshot.Service {
	return snapshot.LookupHost(c.services, host, c.meshCfg.Namespace)
}

func (c *compiler) gateways() {
	for _, m := range c.set.Meshes {
		for i, g := range m.Spec.Gateways {
			field := fmt.Sprintf("spec.gateways[%d]", i)
			if g.Name == "" {
				c.fail(m.Errorf(field, "name is required"))
			}
			if g.Port < 0 || g.Port > 65535 { // 0 picks a free port
				c.fail(m.Errorf(field+".port", "port %d is not in 0..65535", g.Port))
			}
			if g.Service != "" && c.service(g.Service) == nil {
				c.fail(m.Errorf(field+".service", "no service %q in the mesh", g.Service))
			}
			labels := g.Labels
			if len(labels) == 0 {
				labels = map[string]string{"istio": "ingressgateway"}
			}
			c.gws = append(c.gws, &snapshot.Gateway{Name: g.Name, Port: g.Port, DefaultService: g.Service, Labels: labels})
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

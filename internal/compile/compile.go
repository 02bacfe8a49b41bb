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
	"slices"
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
	// Membership is how the snapshot's services took their endpoints from the workloads.
	Membership *Membership
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
	return &Compiled{Snapshot: snap, Warnings: c.warnings, NextExpiry: c.nextExpiry, Membership: c.membership}, nil
}

type compiler struct {
	set      *config.Set
	now      time.Time
	meshCfg  snapshot.Mesh
	services map[string]*snapshot.Service
	// selectors holds each service's label selector, for matching workloads.
	selectors  map[string]map[string]string
	membership *Membership
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

// endpoints gives each service the workloads its selector matches, in workload order.
func (c *compiler) endpoints(workloads []registry.Workload) {
	for name, svc := range c.services {
		svc.Lane = lane.Lane(c.selectors[name][c.meshCfg.LaneLabel])
	}
	c.membership = newMembership(c.selectors)
	for i := range workloads {
		for _, name := range c.membership.Services(workloads[i].Labels) {
			svc := c.services[name]
			svc.Endpoints = append(svc.Endpoints, workloads[i].Endpoint())
		}
	}
}

// Membership decides which services a workload is an endpoint of: every service whose
// selector its labels match, as Kubernetes does; a service without a selector has none.
// Compile places every workload with it, and the control plane keeps the last compile's to
// place a workload that comes, goes or changes labels without compiling again.
type Membership struct {
	selectors map[string]map[string]string
	// byPair lists each service under one pair of its selector, the one the fewest selectors
	// share: labels that match the selector carry that pair, so the services listed under
	// the labels' pairs are the only candidates, each listed once. (Checking every workload
	// against every selector took minutes at 10,000 services and 100,000 workloads.)
	byPair map[labelPair][]string
}

type labelPair struct{ key, value string }

func newMembership(selectors map[string]map[string]string) *Membership {
	shared := map[labelPair]int{}
	for _, sel := range selectors {
		for k, v := range sel {
			shared[labelPair{k, v}]++
		}
	}
	m := &Membership{selectors: selectors, byPair: make(map[labelPair][]string, len(selectors))}
	for name, sel := range selectors {
		var best labelPair
		for k, v := range sel {
			p := labelPair{k, v}
			// Ties go to the smaller key, so the index does not depend on map order.
			if best.key == "" || shared[p] < shared[best] || shared[p] == shared[best] && k < best.key {
				best = p
			}
		}
		if best.key != "" {
			m.byPair[best] = append(m.byPair[best], name)
		}
	}
	return m
}

// Services returns the names of the services whose selectors labels match, sorted.
func (m *Membership) Services(labels map[string]string) []string {
	var out []string
	for k, v := range labels {
		for _, name := range m.byPair[labelPair{k, v}] {
			if matches(labels, m.selectors[name]) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
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

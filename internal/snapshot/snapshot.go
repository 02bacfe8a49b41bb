// Package snapshot is the compiled, immutable view of the mesh that every proxy runs on:
// services, their endpoints and subsets, and their ordered HTTP and TCP routes.
//
// The control plane compiles one Snapshot from config and registry (package compile), encodes
// it once, and streams it to all proxies; a proxy decodes it, calls Prepare to build its
// lookup indexes, and swaps it in atomically. A prepared Snapshot is never mutated, so the
// request path reads it without locks.
//
// This package is deliberately free of Istio, Gateway API and Kubernetes types: the sidecar
// links it, and every package linked there costs memory in every pod.
package snapshot

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"swimlane.dev/swimlane/internal/lane"
)

// Snapshot is one version of the whole mesh configuration.
type Snapshot struct {
	Version  uint64     `json:"version"`
	Mesh     Mesh       `json:"mesh"`
	Services []*Service `json:"services"`
	Gateways []*Gateway `json:"gateways,omitempty"`
	// Lanes are the declared lanes (Lane objects); LaneEntries the gateways' lane policies.
	Lanes       []*LaneInfo  `json:"lanes,omitempty"`
	LaneEntries []*LaneEntry `json:"laneEntries,omitempty"`

	// byName is the position of each service in Services. Versions that change services but
	// add or remove none share it.
	byName   map[string]int
	laneInfo map[lane.Lane]*LaneInfo
	// knownLanes holds every known lane with its resolution order, built once so that routing
	// a request allocates nothing (only lanes the mesh has never heard of build one per
	// request), and with its declaration: one lookup tells whether a request's lane is known,
	// its chain and its declaration, which took three lookups in three maps.
	knownLanes    map[lane.Lane]knownLane
	baselineChain []lane.Lane
	// laneServices counts, per lane, the services with healthy endpoints in it: Apply keeps
	// the known lanes right without visiting every service.
	laneServices map[lane.Lane]int
	// sorted is true when Services are in strictly increasing name order (as compiled), so
	// Apply finds a service by binary search and inserts new ones in order.
	sorted bool
}

// Mesh holds the mesh-wide lane settings.
type Mesh struct {
	// LaneHeader and BaggageKey name the lane on the wire (x-swimlane, swimlane).
	LaneHeader string `json:"laneHeader"`
	BaggageKey string `json:"baggageKey"`
	// LaneLabel is the workload label that says which lane an endpoint serves (swimlane).
	LaneLabel string `json:"laneLabel"`
	// Baseline is the lane every other lane falls back to (main).
	Baseline lane.Lane `json:"baseline"`
	// Namespace is the namespace short host names are qualified with (default).
	Namespace string `json:"namespace"`
	// RegistryOnly refuses outbound requests for hosts the mesh does not know (Istio's
	// REGISTRY_ONLY); otherwise they pass through to the host as addressed (ALLOW_ANY).
	RegistryOnly bool `json:"registryOnly,omitempty"`
	// names is LaneNames compiled, set by Prepare.
	names lane.Names
}

// LaneNames returns the wire names of the lane: Prepare's compiled copy (lane.Names.Compiled),
// which every request uses twice, while it still matches the fields.
func (m Mesh) LaneNames() lane.Names {
	if n := m.names; n.Header == m.LaneHeader && n.BaggageKey == m.BaggageKey && n.Header != "" {
		return n
	}
	return lane.Names{Header: m.LaneHeader, BaggageKey: m.BaggageKey}
}

// Protocol is what an endpoint or port speaks.
type Protocol string

const (
	HTTP  Protocol = "http"  // HTTP/1.1
	HTTP2 Protocol = "http2" // HTTP/2 cleartext (h2c)
	GRPC  Protocol = "grpc"  // gRPC over h2c
	TCP   Protocol = "tcp"   // opaque bytes
)

// IsHTTP2 reports whether the protocol is carried over HTTP/2.
func (p Protocol) IsHTTP2() bool { return p == HTTP2 || p == GRPC }

// ParseProtocol accepts the protocol names of the mesh file and Istio's port-name prefixes.
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToLower(s) {
	case "http", "http1", "http/1.1":
		return HTTP, nil
	case "http2", "h2c":
		return HTTP2, nil
	case "grpc":
		return GRPC, nil
	case "tcp":
		return TCP, nil
	}
	return "", fmt.Errorf("unknown protocol %q (want http, http2, grpc or tcp)", s)
}

// Service is one routable host, like a Kubernetes Service.
type Service struct {
	Name string `json:"name"`
	// Port is the port clients use ("goods-service:50051"); 0 accepts any port.
	Port int `json:"port,omitempty"`
	// Lane, when set, pins the service to one lane: its selector names the lane, so all its
	// endpoints serve whatever lane a request carries, as an explicit subset would (the seed's
	// Gateway API routing has one such Service per lane).
	Lane lane.Lane `json:"lane,omitempty"`
	// External marks a ServiceEntry host outside the mesh (MESH_EXTERNAL).
	External  bool       `json:"external,omitempty"`
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	Subsets   []Subset   `json:"subsets,omitempty"`
	// Policy is the service's DestinationRule traffic policy (subsets may override it).
	Policy *TrafficPolicy `json:"policy,omitempty"`
	// HTTP holds the service's HTTP routes in match order. Empty means the default route: all
	// traffic to this service, resolved by lane.
	HTTP []*HTTPRoute `json:"http,omitempty"`
	// TCP holds the service's TCP routes (VirtualService tcp), for opaque connections.
	TCP []*TCPRoute `json:"tcp,omitempty"`

	laneSets   map[lane.Lane]*EndpointSet
	subsetSets map[string]*EndpointSet
}

// Endpoint is one reachable instance of a service.
type Endpoint struct {
	// Address is host:port to connect to (in local mode, the workload's inbound sidecar).
	Address  string            `json:"address"`
	Protocol Protocol          `json:"protocol"`
	Workload string            `json:"workload"`
	Labels   map[string]string `json:"labels,omitempty"`
	// Health is "" for healthy, or why the endpoint takes no new requests ("unhealthy":
	// failed health checks; "draining": being removed). Such endpoints stay listed for
	// status but are left out of every lane and subset, so traffic falls back past them.
	Health string `json:"health,omitempty"`
}

// Healthy reports whether the endpoint may take new requests.
func (e *Endpoint) Healthy() bool { return e.Health == "" }

// Subset is a DestinationRule subset: the endpoints whose labels include Labels.
type Subset struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	// Policy overrides the service's traffic policy for this subset.
	Policy *TrafficPolicy `json:"policy,omitempty"`
}

// Gateway is an ingress proxy. Its main listener (Port) sends everything to DefaultService;
// the Istio Gateways that select it add Servers, more listeners whose traffic the
// VirtualServices bound to those Gateways route.
type Gateway struct {
	Name           string            `json:"name"`
	Port           int               `json:"port"`
	DefaultService string            `json:"defaultService,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	Servers        []*GatewayServer  `json:"servers,omitempty"`
}

// GatewayServer is one listener opened by an Istio Gateway.
type GatewayServer struct {
	// Source names the Istio Gateway ("Gateway/bookinfo-gateway").
	Source   string   `json:"source"`
	Port     int      `json:"port"`
	Protocol Protocol `json:"protocol"`
	// Hosts this server accepts ("*" for any), for HTTP.
	Hosts []string `json:"hosts,omitempty"`
	// VirtualHosts route HTTP by Host, in VirtualService order; TCP routes TCP by port.
	VirtualHosts []*VirtualHost `json:"virtualHosts,omitempty"`
	TCP          []*TCPRoute    `json:"tcp,omitempty"`
}

// VirtualHost is one gateway-bound VirtualService: its hosts and its HTTP routes.
type VirtualHost struct {
	Source string       `json:"source"`
	Hosts  []string     `json:"hosts"`
	HTTP   []*HTTPRoute `json:"http"`
}

// TCPRoute is a VirtualService tcp rule: connections to Port (0: any) go to one of
// Destinations by weight.
type TCPRoute struct {
	Name         string        `json:"name"`
	Port         int           `json:"port,omitempty"`
	Destinations []Destination `json:"destinations"`
}

// VirtualHostFor returns the virtual host of s that serves host (port ignored), or nil.
func (s *GatewayServer) VirtualHostFor(host string) *VirtualHost {
	host = strings.ToLower(stripPort(host))
	for _, vh := range s.VirtualHosts {
		for _, h := range vh.Hosts {
			if h == "*" || h == host || strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]) {
				return vh
			}
		}
	}
	return nil
}

// TCPFor returns the TCP route for connections to port, or nil.
func (s *GatewayServer) TCPFor(port int) *TCPRoute {
	for _, r := range s.TCP {
		if r.Port == 0 || r.Port == port {
			return r
		}
	}
	return nil
}

// Pick chooses a destination by weight (no weights: the first).
func (r *TCPRoute) Pick() *Destination {
	total := 0
	for _, d := range r.Destinations {
		total += d.Weight
	}
	return pickWeighted(r.Destinations, total)
}

// Prepare builds the lookup indexes. It must be called once, before the snapshot is shared.
func (s *Snapshot) Prepare() error {
	s.Mesh.names = lane.Names{Header: s.Mesh.LaneHeader, BaggageKey: s.Mesh.BaggageKey}.Compiled()
	s.laneInfo = make(map[lane.Lane]*LaneInfo, len(s.Lanes))
	for _, l := range s.Lanes {
		s.laneInfo[l.Name] = l
	}
	s.baselineChain = []lane.Lane{s.Mesh.Baseline}
	s.byName = make(map[string]int, len(s.Services))
	s.laneServices = map[lane.Lane]int{}
	s.sorted = true
	for i, svc := range s.Services {
		if _, dup := s.byName[svc.Name]; dup {
			return fmt.Errorf("snapshot: duplicate service %q", svc.Name)
		}
		s.byName[svc.Name] = i
		if err := svc.prepare(s.Mesh); err != nil {
			return err
		}
		s.countLanes(svc, 1)
		if i > 0 && s.Services[i-1].Name >= svc.Name {
			s.sorted = false
		}
	}
	for _, g := range s.Gateways {
		for _, srv := range g.Servers {
			for _, vh := range srv.VirtualHosts {
				for _, r := range vh.HTTP {
					if err := r.prepare(); err != nil {
						return fmt.Errorf("snapshot: gateway %s: route %s: %w", g.Name, r.Name, err)
					}
				}
			}
		}
	}
	s.indexLanes()
	return nil
}

// prepare indexes the service's endpoints and compiles its routes.
func (svc *Service) prepare(m Mesh) error {
	svc.index(m)
	for _, r := range svc.HTTP {
		if err := r.prepare(); err != nil {
			return fmt.Errorf("snapshot: service %s: route %s: %w", svc.Name, r.Name, err)
		}
	}
	return nil
}

// countLanes adds n (1 or -1) to the count of every lane svc has healthy endpoints in. It
// reports whether a lane appeared or disappeared.
func (s *Snapshot) countLanes(svc *Service, n int) (lanesChanged bool) {
	for l := range svc.laneSets {
		c := s.laneServices[l] + n
		if c == 0 {
			delete(s.laneServices, l)
		} else {
			s.laneServices[l] = c
		}
		if c == 0 || n == 1 && c == 1 {
			lanesChanged = true
		}
	}
	return lanesChanged
}

// indexLanes builds the known lanes (the baseline, the declared ones, and those with
// endpoints) and their chains.
func (s *Snapshot) indexLanes() {
	s.knownLanes = make(map[lane.Lane]knownLane, len(s.Lanes)+len(s.laneServices)+1)
	add := func(l lane.Lane) {
		k := knownLane{chain: s.baselineChain, info: s.laneInfo[l]}
		switch {
		case l == s.Mesh.Baseline: // the baseline's chain is itself, declared or not
		case k.info != nil:
			k.chain = k.info.Chain
		default:
			k.chain = []lane.Lane{l, s.Mesh.Baseline}
		}
		s.knownLanes[l] = k
	}
	add(s.Mesh.Baseline)
	for _, l := range s.Lanes {
		add(l.Name)
	}
	for l := range s.laneServices {
		if _, ok := s.knownLanes[l]; !ok {
			add(l)
		}
	}
}

// knownLane is what routing needs of a known lane: the lanes a request asking for it tries, in
// order, and its declaration (nil for a lane known only by its endpoints).
type knownLane struct {
	chain []lane.Lane
	info  *LaneInfo
}

// Decode parses a snapshot from its JSON encoding and prepares it.
func Decode(body []byte) (*Snapshot, error) {
	s := new(Snapshot)
	if err := json.Unmarshal(body, s); err != nil {
		return nil, fmt.Errorf("snapshot: decode: %w", err)
	}
	if err := s.Prepare(); err != nil {
		return nil, err
	}
	return s, nil
}

// Service returns the service a request host names, or nil. host may carry a port and may be
// qualified with the mesh namespace (goods-service, goods-service.default,
// goods-service.default.svc.cluster.local).
func (s *Snapshot) Service(host string) *Service {
	host = stripPort(host)
	i, ok := s.byName[host]
	if !ok {
		if name, qualified := unqualified(host, s.Mesh.Namespace); qualified {
			i, ok = s.byName[name]
		}
	}
	if !ok {
		return nil
	}
	return s.Services[i]
}

// LookupHost finds the entry of byName that host names: the name itself, or the name
// qualified with namespace ns (name.ns, name.ns.svc, name.ns.svc.cluster.local), as
// Kubernetes DNS resolves them. Compiler and proxy share it so config and traffic agree.
func LookupHost[V any](byName map[string]*V, host, ns string) *V {
	if v := byName[host]; v != nil {
		return v
	}
	if name, ok := unqualified(host, ns); ok {
		return byName[name]
	}
	return nil
}

// unqualified returns the service name of host when host qualifies it with namespace ns.
func unqualified(host, ns string) (name string, ok bool) {
	name, rest, ok := strings.Cut(host, ".")
	if !ok {
		return "", false
	}
	switch rest {
	case ns, ns + ".svc", ns + ".svc.cluster.local":
		return name, true
	}
	return "", false
}

// Gateway returns the gateway named name, or nil.
func (s *Snapshot) Gateway(name string) *Gateway {
	for _, g := range s.Gateways {
		if g.Name == name {
			return g
		}
	}
	return nil
}

func stripPort(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		return host[:i]
	}
	return host
}

// index groups endpoints by lane and by subset. Endpoints without a lane label belong to the
// baseline: a service that knows nothing of lanes is the baseline everywhere.
func (svc *Service) index(m Mesh) {
	svc.laneSets = make(map[lane.Lane]*EndpointSet)
	for _, ep := range svc.Endpoints {
		if !ep.Healthy() {
			continue
		}
		l := lane.Lane(ep.Labels[m.LaneLabel])
		if l == "" {
			l = m.Baseline
		}
		set := svc.laneSets[l]
		if set == nil {
			set = &EndpointSet{Lane: l, Policy: svc.Policy}
			svc.laneSets[l] = set
		}
		set.Endpoints = append(set.Endpoints, ep)
	}
	svc.subsetSets = make(map[string]*EndpointSet, len(svc.Subsets))
	for _, sub := range svc.Subsets {
		set := &EndpointSet{Subset: sub.Name, Policy: svc.Policy}
		if sub.Policy != nil {
			set.Policy = sub.Policy
		}
		for _, ep := range svc.Endpoints {
			if ep.Healthy() && labelsMatch(ep.Labels, sub.Labels) {
				set.Endpoints = append(set.Endpoints, ep)
			}
		}
		svc.subsetSets[sub.Name] = set
	}
}

func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// SubsetSet returns the healthy endpoints of subset name, or nil.
func (svc *Service) SubsetSet(name string) *EndpointSet { return svc.subsetSets[name] }

// LaneSet returns the healthy endpoints of lane l, or nil.
func (svc *Service) LaneSet(l lane.Lane) *EndpointSet { return svc.laneSets[l] }

// KnownLane reports whether l is declared or has endpoints somewhere. Metrics label only known
// lanes, so made-up lanes from clients cannot grow the number of series without bound.
func (s *Snapshot) KnownLane(l lane.Lane) bool {
	_, ok := s.knownLanes[l]
	return ok
}

// LaneInfo returns the declared lane l, or nil.
func (s *Snapshot) LaneInfo(l lane.Lane) *LaneInfo { return s.laneInfo[l] }

// Chain returns the lanes a request asking for lane asked tries, in order. expired reports
// that asked is a declared lane past its expiry, resolved as the baseline.
func (s *Snapshot) Chain(asked lane.Lane) (chain []lane.Lane, expired bool) {
	chain, _, expired = s.chain(asked)
	return chain, expired
}

// chain is Chain with the declaration of asked, nil when it is undeclared or expired.
func (s *Snapshot) chain(asked lane.Lane) (chain []lane.Lane, info *LaneInfo, expired bool) {
	if asked == "" {
		return s.baselineChain, nil, false
	}
	k, ok := s.knownLanes[asked]
	switch {
	case !ok:
		return []lane.Lane{asked, s.Mesh.Baseline}, nil, false
	case k.info != nil && k.info.Expired && asked != s.Mesh.Baseline:
		return s.baselineChain, nil, true
	}
	return k.chain, k.info, false
}

// Lanes returns the lanes this service has healthy endpoints in, sorted.
func (svc *Service) Lanes() []lane.Lane {
	out := make([]lane.Lane, 0, len(svc.laneSets))
	for l := range svc.laneSets {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Package config reads the YAML users already have (Istio networking, Gateway API, Kubernetes
// Services) and Swimlane's own kinds into typed objects that remember where they came from,
// so every later error can name file, line, object and field.
//
// Loading is strict: malformed YAML, unknown kinds and unknown fields are errors, and a Set is
// returned only when every document of every file is valid.
package config

import (
	"fmt"

	"gopkg.in/yaml.v3"
	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1alpha2 "sigs.k8s.io/gateway-api/apis/v1alpha2"

	"swimlane.dev/swimlane/internal/snapshot"
)

// Source is where an object was read from.
type Source struct {
	File string // path as given to the loader
	Line int    // line of the document's first key, 1-based
	Kind string // e.g. "VirtualService"
	Name string // metadata.name
	// Namespace is metadata.namespace, "" when unset.
	Namespace string
}

// String names the object for messages: "routing.yaml:12: VirtualService/goods".
func (s Source) String() string {
	return fmt.Sprintf("%s:%d: %s/%s", s.File, s.Line, s.Kind, s.Name)
}

// Object is one loaded document: its typed spec and its YAML tree, kept so that errors found
// after loading (in compile) can still point at the line of a field.
type Object[T any] struct {
	Source
	Spec T
	Node *yaml.Node // the document's root mapping node
}

// Errorf returns an error naming file, the line of field (a path like
// "spec.http[0].route[0].destination.subset"; the object's line if not found), the object and
// the field: "routing.yaml:17: VirtualService/goods: spec.http[0]...: <message>".
func (o *Object[T]) Errorf(field, format string, args ...any) error {
	line := o.Line
	if n := FindPath(o.Node, field); n != nil {
		line = n.Line
	}
	return &Error{File: o.File, Line: line, Object: o.Kind + "/" + o.Name, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Error is a config error with its position. Loader and compiler return it (possibly joined
// with others via errors.Join).
type Error struct {
	File   string
	Line   int
	Object string // "Kind/name", "" when the document has none yet
	Field  string // dotted path, "" when the error is about the whole document
	Msg    string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s:%d:", e.File, e.Line)
	if e.Object != "" {
		s += " " + e.Object + ":"
	}
	if e.Field != "" {
		s += " " + e.Field + ":"
	}
	return s + " " + e.Msg
}

// Set is every object of one load, in file order.
type Set struct {
	Meshes           []*Object[*Mesh]
	VirtualServices  []*Object[*networking.VirtualService]
	DestinationRules []*Object[*networking.DestinationRule]
	ServiceEntries   []*Object[*networking.ServiceEntry]
	Gateways         []*Object[*networking.Gateway]
	HTTPRoutes       []*Object[*gatewayv1.HTTPRouteSpec]
	GRPCRoutes       []*Object[*gatewayv1.GRPCRouteSpec]
	TCPRoutes        []*Object[*gatewayv1alpha2.TCPRouteSpec]
	Services         []*Object[*corev1.ServiceSpec]
	Lanes            []*Object[*Lane]
	LaneEntries      []*Object[*LaneEntry]
}

// Lane (swimlane.dev/v1alpha1) declares a lane; metadata.name is the lane. Lanes that are
// not declared but appear in workload labels work with the default chain: lane -> baseline.
type Lane struct {
	// Fallback lists the lanes to try, in order, after this one; the baseline is always the
	// last resort and may be omitted (dev-feature2 with [dev-feature1] resolves
	// dev-feature2 -> dev-feature1 -> main).
	Fallback []string `json:"fallback,omitempty"`
	// Mode is "fallback" (default) or "strict": no fallback at all, a 503 naming the
	// missing service and lane instead.
	Mode        string `json:"mode,omitempty"`
	Owner       string `json:"owner,omitempty"`
	Description string `json:"description,omitempty"`
	// Expires is an RFC 3339 time after which the lane stops routing: its requests are
	// served as if they had no lane, and it is reported expired.
	Expires string `json:"expires,omitempty"`
}

// LaneEntry (swimlane.dev/v1alpha1) is a gateway's lane policy: whether a lane sent from
// outside is trusted, stripped, or accepted from an allow-list, and rules that assign a lane
// to requests that have none. The rules' YAML is the snapshot's own form (snapshot.EntryRule),
// documented there and in README.md.
type LaneEntry struct {
	// Gateway names the Mesh gateway the policy applies to.
	Gateway string `json:"gateway"`
	// Incoming is trust (default), strip or allowList.
	Incoming string               `json:"incoming,omitempty"`
	Allow    []string             `json:"allow,omitempty"`
	Rules    []snapshot.EntryRule `json:"rules,omitempty"`
}

// Mesh is Swimlane's local-mode file (apiVersion swimlane.dev/v1alpha1, kind Mesh): lane
// settings, the ingress gateways, the services and the workloads to run.
type Mesh struct {
	// LaneHeader is the plain lane header; default x-swimlane.
	LaneHeader string `json:"laneHeader,omitempty"`
	// BaggageKey is the W3C baggage member carrying the lane; default swimlane.
	BaggageKey string `json:"baggageKey,omitempty"`
	// LaneLabel is the workload label naming its lane; default swimlane.
	LaneLabel string `json:"laneLabel,omitempty"`
	// Baseline is the lane others fall back to; default main.
	Baseline string `json:"baseline,omitempty"`
	// OutboundTrafficPolicy says what sidecars do with a request for a host the mesh does not
	// know: ALLOW_ANY (default, as in Istio) passes it through; REGISTRY_ONLY refuses it
	// unless a ServiceEntry opens the host.
	OutboundTrafficPolicy *OutboundTrafficPolicy `json:"outboundTrafficPolicy,omitempty"`
	// Config lists more config files or folders (Istio, Gateway API, Services), relative to
	// the mesh file. They are watched: edits apply live.
	Config []string `json:"config,omitempty"`
	// Gateways are ingress listeners.
	Gateways []MeshGateway `json:"gateways,omitempty"`
	// Services are routable hosts, selecting workloads by label like Kubernetes Services.
	Services []MeshService `json:"services,omitempty"`
	// Workloads are the processes local mode starts, each behind its own sidecar.
	Workloads []MeshWorkload `json:"workloads,omitempty"`
}

// OutboundTrafficPolicy is Istio's meshConfig.outboundTrafficPolicy.
type OutboundTrafficPolicy struct {
	Mode string `json:"mode"` // ALLOW_ANY or REGISTRY_ONLY
}

// MeshGateway is an ingress listener on Port (all interfaces of 127.0.0.1 unless Address is
// set) whose traffic goes to Service unless a route says otherwise.
type MeshGateway struct {
	Name    string `json:"name"`
	Address string `json:"address,omitempty"`
	Port    int    `json:"port"`
	Service string `json:"service,omitempty"`
	// Labels are what Istio Gateways select (default {istio: ingressgateway}, Istio's own
	// ingress label); their servers become more listeners of this gateway.
	Labels map[string]string `json:"labels,omitempty"`
	// Ports remaps Istio Gateway server ports to local ports (e.g. {80: 8081}); 0 picks a
	// free one. Unmapped ports are bound as numbered.
	Ports map[string]int `json:"ports,omitempty"`
}

// MeshService is a host name with a port, selecting workloads by labels.
type MeshService struct {
	Name     string            `json:"name"`
	Port     int               `json:"port"`
	Selector map[string]string `json:"selector"`
}

// MeshWorkload is one instance, carrying Labels (the lane label among them) and speaking
// Protocol (http, http2, grpc or tcp; default http). Local mode starts Command with Env,
// listening on the port it gives in $PORT, behind a sidecar of its own. A workload with an
// Address instead is already running there: nothing is started and traffic goes straight to it
// (how `swimlane control` learns endpoints without Kubernetes).
type MeshWorkload struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels,omitempty"`
	Command  []string          `json:"command,omitempty"`
	Env      map[string]string `json:"env,omitempty"`
	Protocol string            `json:"protocol,omitempty"`
	Address  string            `json:"address,omitempty"`
	// Health, if set, is checked periodically once the workload is ready; while it fails,
	// the workload takes no new requests and its lane falls back.
	Health *MeshHealth `json:"health,omitempty"`
}

// MeshHealth is a workload's health check: an HTTP GET of Path (2xx is healthy), the gRPC
// health service (GRPC: true; SERVING is healthy), or, with neither, a TCP connect.
type MeshHealth struct {
	Path string `json:"path,omitempty"`
	GRPC bool   `json:"grpc,omitempty"`
	// Interval between checks (default 1s); Failures in a row make it unhealthy (default 2);
	// one success makes it healthy again.
	Interval string `json:"interval,omitempty"`
	Failures int    `json:"failures,omitempty"`
}

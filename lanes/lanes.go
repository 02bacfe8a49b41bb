// Package lanes keeps a request's Swimlane lane on the calls an app makes while serving it,
// so that every next hop is routed in the same lane.
//
// The mesh's sidecar tags each request that enters an app with its lane, in two forms:
//
//	x-swimlane: dev-feature1
//	baggage: swimlane=dev-feature1[,other=members]
//
// The sidecar cannot tell which outgoing call belongs to which incoming request, so the app
// must copy the lane onto its own outgoing calls. Apps instrumented with OpenTelemetry (W3C
// baggage propagation, e.g. otelhttp or otelgrpc) already do, and do not need this package.
// Apps that forward no context at all adopt it with a few lines:
//
//	handler = lanes.Middleware(handler)                     // server: remember the request's lane
//	client := &http.Client{Transport: lanes.Transport(nil)} // client: send it on (nil = http.DefaultTransport)
//
// and for gRPC:
//
//	grpc.NewServer(
//		grpc.ChainUnaryInterceptor(lanes.UnaryServerInterceptor()),
//		grpc.ChainStreamInterceptor(lanes.StreamServerInterceptor()))
//	grpc.NewClient(target,
//		grpc.WithChainUnaryInterceptor(lanes.UnaryClientInterceptor()),
//		grpc.WithChainStreamInterceptor(lanes.StreamClientInterceptor()))
//
// The server side reads the lane from the [Header] header, else from the [BaggageKey] member of
// the W3C baggage header (gRPC: the metadata of the same names), and stores it in the request's
// context. Outgoing calls must be made with that context (or one derived from it). The client
// side then writes both forms on each outgoing call whose context has a lane: it sets the
// [Header] header and sets the [BaggageKey] member in the baggage header, keeping the call's
// other baggage members and replacing any stale lane member. A call that already carries a
// [Header] header is left exactly as the app built it, so an app can still pick a lane
// explicitly. A malformed baggage header is left as it is; the [Header] header is still set.
//
// A lane is 1 to 63 characters of [A-Za-z0-9._-]. Anything else is ignored on the way in and
// never written on the way out.
package lanes

import (
	"context"
	"strings"

	"swimlane.dev/swimlane/internal/lane"
)

// The names that carry the lane. They match the mesh's defaults; a mesh configured with other
// names cannot use this package.
const (
	// Header is the plain lane header (HTTP) or metadata key (gRPC).
	Header = "x-swimlane"
	// BaggageKey is the W3C baggage member that carries the lane.
	BaggageKey = "swimlane"
)

// baggageHeader is the W3C baggage header, in canonical form; gRPC metadata uses "baggage".
const baggageHeader = "Baggage"

var names = lane.Names{Header: Header, BaggageKey: BaggageKey}

type ctxKey struct{}

// NewContext returns a copy of ctx that carries lane, for outgoing calls made with it. If lane
// is not a valid lane (1 to 63 characters of [A-Za-z0-9._-]) it returns ctx unchanged.
func NewContext(ctx context.Context, lane string) context.Context {
	if !Valid(lane) {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{}, lane)
}

// FromContext returns the lane carried by ctx, as stored by [NewContext], [Middleware] or the
// server interceptors. ok is false when ctx carries no lane.
func FromContext(ctx context.Context) (lane string, ok bool) {
	lane, ok = ctx.Value(ctxKey{}).(string)
	return lane, ok && lane != ""
}

// Valid reports whether s is a well-formed lane: 1 to 63 characters of [A-Za-z0-9._-].
func Valid(s string) bool { return lane.Valid(s) }

// fromValues returns the lane carried by a request's x-swimlane values and baggage values:
// the first x-swimlane value if it is a valid lane, else the first valid swimlane member of a
// well-formed baggage value, else "". The header wins because it is the explicit form.
//
// Only these two forms are read, on purpose: they are the ones the sidecar writes on every
// request into an app, and the ones this package documents.
func fromValues(header, baggage []string) string {
	if len(header) > 0 {
		if v := strings.TrimSpace(header[0]); Valid(v) {
			return v
		}
	}
	for _, b := range baggage {
		if v, ok := lane.BaggageMember(b, BaggageKey); ok && Valid(v) {
			return v
		}
	}
	return ""
}

package lanes

import (
	"context"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"swimlane.dev/swimlane/internal/lane"
)

// baggageMD is the gRPC metadata key of the W3C baggage header.
const baggageMD = "baggage"

// UnaryServerInterceptor returns an interceptor that reads the lane of each unary call from
// its incoming metadata (x-swimlane, else the swimlane member of baggage) and stores it in
// the handler's context.
func UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return handler(incoming(ctx), req)
	}
}

// StreamServerInterceptor returns an interceptor that reads the lane of each streaming call
// from its incoming metadata, like [UnaryServerInterceptor], and stores it in the context
// returned by the stream's Context method.
func StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		if lctx := incoming(ctx); lctx != ctx {
			ss = &serverStream{ServerStream: ss, ctx: lctx}
		}
		return handler(srv, ss)
	}
}

// UnaryClientInterceptor returns an interceptor that adds the lane of the call's context to
// its outgoing metadata (x-swimlane, and the swimlane member of baggage) unless the metadata
// already has an x-swimlane key.
func UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(outgoing(ctx), method, req, reply, cc, opts...)
	}
}

// StreamClientInterceptor returns an interceptor that adds the lane of the stream's context to
// its outgoing metadata, like [UnaryClientInterceptor].
func StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(outgoing(ctx), desc, cc, method, opts...)
	}
}

// serverStream is a grpc.ServerStream whose Context carries the lane.
type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

var _ grpc.ServerStream = (*serverStream)(nil)

func (s *serverStream) Context() context.Context { return s.ctx }

// incoming returns ctx with the lane of its incoming metadata, or ctx itself if it has none.
func incoming(ctx context.Context) context.Context {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ctx
	}
	if l := fromValues(md.Get(Header), md.Get(baggageMD)); l != "" {
		return NewContext(ctx, l)
	}
	return ctx
}

// outgoing returns ctx with its lane written into its outgoing metadata, or ctx itself if it
// has no lane or the metadata already names one in x-swimlane.
func outgoing(ctx context.Context) context.Context {
	l, ok := FromContext(ctx)
	if !ok {
		return ctx
	}
	if len(metadata.ValueFromOutgoingContext(ctx, Header)) > 0 {
		return ctx // the app chose a lane itself
	}
	md, _ := metadata.FromOutgoingContext(ctx) // a copy, safe to modify
	if md == nil {
		md = metadata.MD{}
	}
	h := http.Header{baggageHeader: md.Get(baggageMD)}
	names.Write(h, lane.Lane(l)) // replaces h's slice, never md's
	md.Set(Header, l)
	md.Set(baggageMD, h.Values(baggageHeader)...)
	return metadata.NewOutgoingContext(ctx, md)
}

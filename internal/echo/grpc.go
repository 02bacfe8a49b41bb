package echo

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"swimlane.dev/swimlane/internal/echo/echopb"
)

// InjectedFailure is the status message of a gRPC call failed on demand (codes.Internal).
const InjectedFailure = "injected failure"

// serveGRPC serves the echo service and the standard health service on the listener.
func serveGRPC(ctx context.Context, cfg Config) error {
	e := &grpcEcho{cfg: cfg}
	if cfg.Upstream != "" {
		// grpc-go honours HTTPS_PROXY (the sidecar) and then leaves the name unresolved for the
		// proxy to route, as the HTTP client does.
		conn, err := grpc.NewClient(cfg.Upstream, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			cfg.Listener.Close()
			return fmt.Errorf("echo: upstream %q: %w", cfg.Upstream, err)
		}
		defer conn.Close()
		e.upstream = echopb.NewEchoClient(conn)
	}
	srv := grpc.NewServer()
	echopb.RegisterEchoServer(srv, e)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(echopb.Echo_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)

	done := make(chan struct{})
	defer close(done)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		hs.Shutdown() // NOT_SERVING while draining
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			srv.Stop()
		}
	}()
	if err := srv.Serve(cfg.Listener); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	if ctx.Err() != nil {
		<-drained // Serve returns as the stop begins: the calls in flight finish first
	}
	return nil
}

type grpcEcho struct {
	echopb.UnimplementedEchoServer
	cfg      Config
	upstream echopb.EchoClient
}

func (e *grpcEcho) Echo(ctx context.Context, req *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if d, err := time.ParseDuration(first(md, "delay")); err == nil && d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if p, err := strconv.ParseFloat(first(md, "fail"), 64); err == nil && rand.Float64() < p {
		return nil, status.Error(codes.Internal, InjectedFailure)
	}
	resp := &echopb.EchoResponse{
		Message:  req.GetMessage(),
		Service:  e.cfg.Service,
		Version:  e.cfg.Version,
		Lane:     e.cfg.Lane,
		Metadata: map[string]string{},
	}
	for k, vs := range md {
		if strings.HasSuffix(k, "-bin") { // binary values: shown base64, as on the wire
			enc := make([]string, len(vs))
			for i, v := range vs {
				enc[i] = base64.RawStdEncoding.EncodeToString([]byte(v))
			}
			vs = enc
		}
		resp.Metadata[k] = strings.ToValidUTF8(strings.Join(vs, ","), "\uFFFD")
	}
	if e.upstream != nil {
		resp.Upstream, resp.UpstreamError = e.callUpstream(ctx, md, req)
	}
	return resp, nil
}

// callUpstream calls Echo on the next hop, forwarding the Forward keys and the faults.
func (e *grpcEcho) callUpstream(ctx context.Context, in metadata.MD, req *echopb.EchoRequest) (*echopb.EchoResponse, string) {
	out := metadata.MD{}
	for _, k := range append(append([]string(nil), e.cfg.Forward...), faultHeaders...) {
		k = strings.ToLower(k)
		if vs := in.Get(k); len(vs) > 0 && out.Get(k) == nil {
			out.Append(k, vs...)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second) // the caller's deadline, if sooner, wins
	defer cancel()
	a, err := e.upstream.Echo(metadata.NewOutgoingContext(ctx, out), &echopb.EchoRequest{Message: req.GetMessage()})
	if err != nil {
		st := status.Convert(err)
		return nil, fmt.Sprintf("%s: %s", st.Code(), st.Message())
	}
	return a, ""
}

func first(md metadata.MD, k string) string {
	if vs := md.Get(k); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

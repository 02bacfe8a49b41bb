// Package rpc holds the gRPC client and server plumbing shared by the demo services.
package rpc

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
)

// GracePeriod bounds how long Serve waits for in-flight RPCs (and long-lived streams such as
// health watches) before closing them.
const GracePeriod = 5 * time.Second

// NewClient returns a lazily connecting, OpenTelemetry-instrumented client for target
// ("host:port", e.g. "pricing-service:50052").
//
// Inside the mesh the service names are not resolvable by local DNS: the app reaches them
// through its sidecar, named by HTTPS_PROXY. grpc.NewClient handles that as-is (grpc-go
// v1.85, internal/resolver/delegatingresolver): with the default "dns" scheme and a proxy for
// the target in the environment, the target is NOT resolved locally (unless
// grpc.WithLocalDNSResolution is given); only the proxy address is, and the transport
// (internal/transport/proxy.go) sends "CONNECT pricing-service:50052" with the name verbatim.
// So the target is passed without a scheme prefix ("passthrough:///" would work too but is not
// needed) and without grpc.WithContextDialer or grpc.WithNoProxy, both of which disable the
// proxy. Note that grpc-go reads only HTTPS_PROXY/https_proxy (and NO_PROXY), never
// HTTP_PROXY, and, like net/http, skips the proxy for localhost and loopback addresses.
func NewClient(target string) (*grpc.ClientConn, error) {
	return grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
	)
}

// NewServer returns a gRPC server instrumented with otelgrpc, with opts appended.
func NewServer(opts ...grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append([]grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler())}, opts...)...)
}

// Listen returns lis if non-nil, else a listener on 127.0.0.1:port (port must be set).
func Listen(lis net.Listener, port string) (net.Listener, error) {
	if lis != nil {
		return lis, nil
	}
	if port == "" {
		return nil, fmt.Errorf("PORT is required")
	}
	return net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
}

// Serve serves srv on lis until ctx is cancelled, then marks hs NOT_SERVING, stops gracefully
// (forcibly after GracePeriod) and returns nil. It returns an error only if serving fails.
func Serve(ctx context.Context, log *slog.Logger, lis net.Listener, srv *grpc.Server, hs *health.Server) error {
	log.Info("listening", "addr", lis.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		log.Error("serve failed", "err", err)
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	hs.Shutdown()
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(GracePeriod)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		srv.Stop()
		<-stopped
	}
	<-errc
	log.Info("stopped")
	return nil
}

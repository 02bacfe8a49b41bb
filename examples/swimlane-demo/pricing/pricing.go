// Package pricing is the demo's PricingService, the last service of the seed demo's chain
// gateway -> goods -> pricing: it answers GetPrice with a fixed price per goods id and the
// swimlane (lane) it is deployed on.
//
// Like the other demo services it holds no swimlane logic: the lane is just a deployment label
// (env SWIMLANE) echoed back, and the mesh decides which lane's instance serves a request.
package pricing

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"swimlane.dev/swimlane/examples/swimlane-demo/internal/rpc"
	"swimlane.dev/swimlane/examples/swimlane-demo/internal/telemetry"
	demopb "swimlane.dev/swimlane/examples/swimlane-demo/proto"
)

// Config configures the pricing service.
type Config struct {
	// Port is the TCP port to listen on, on 127.0.0.1 (env PORT, required unless Listener is set).
	Port string
	// Swimlane is the lane this instance is deployed on, returned in every answer (env SWIMLANE).
	Swimlane string
	// Listener, if non-nil, is served instead of listening on Port (tests use 127.0.0.1:0).
	Listener net.Listener
	// ServerOptions are appended to the gRPC server's options; tests use them to add
	// interceptors that observe the propagated context.
	ServerOptions []grpc.ServerOption
}

// ConfigFromEnv reads the Config from PORT and SWIMLANE.
func ConfigFromEnv() Config {
	return Config{Port: os.Getenv("PORT"), Swimlane: os.Getenv("SWIMLANE")}
}

// Run serves the pricing service configured from the environment until ctx is cancelled.
func Run(ctx context.Context) error { return RunWith(ctx, ConfigFromEnv()) }

// RunWith serves the pricing service until ctx is cancelled, then shuts down gracefully and
// returns nil.
func RunWith(ctx context.Context, cfg Config) error {
	telemetry.Setup()
	log := telemetry.Logger("pricing").With("swimlane", cfg.Swimlane)
	lis, err := rpc.Listen(cfg.Listener, cfg.Port)
	if err != nil {
		log.Error("listen failed", "err", err)
		return fmt.Errorf("pricing: %w", err)
	}
	srv := rpc.NewServer(cfg.ServerOptions...)
	demopb.RegisterPricingServiceServer(srv, &server{swimlane: cfg.Swimlane, log: log})
	hs := health.NewServer()
	hs.SetServingStatus(demopb.PricingService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	if err := rpc.Serve(ctx, log, lis, srv, hs); err != nil {
		return fmt.Errorf("pricing: %w", err)
	}
	return nil
}

// prices is the fixed price list, by goods id.
var prices = map[string]int64{"1": 100, "2": 200, "3": 300}

type server struct {
	demopb.UnimplementedPricingServiceServer
	swimlane string
	log      *slog.Logger
}

func (s *server) GetPrice(_ context.Context, req *demopb.GetPriceRequest) (*demopb.GetPriceResponse, error) {
	price, ok := prices[req.GetGoodsId()]
	if !ok {
		s.log.Error("unknown goods id", "goods_id", req.GetGoodsId())
		return nil, status.Errorf(codes.NotFound, "pricing: unknown goods id %q", req.GetGoodsId())
	}
	return &demopb.GetPriceResponse{Price: price, Swimlane: s.swimlane}, nil
}

// Package goods is the demo's GoodsService, the middle service of the seed demo's chain
// gateway -> goods -> pricing: GetGoods lists a fixed catalogue, priced by calling
// PricingService.GetPrice for each item, and reports its own swimlane and pricing's.
//
// Like the other demo services it holds no swimlane logic: it calls pricing by service name
// with the incoming request's context, so the standard OpenTelemetry instrumentation forwards
// the W3C baggage/traceparent, and the mesh (through the sidecar named by HTTPS_PROXY) picks
// the pricing lane.
package goods

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"swimlane.dev/swimlane/examples/swimlane-demo/internal/rpc"
	"swimlane.dev/swimlane/examples/swimlane-demo/internal/telemetry"
	demopb "swimlane.dev/swimlane/examples/swimlane-demo/proto"
)

// DefaultPricingService is the pricing target used when PRICING_SERVICE is unset.
const DefaultPricingService = "pricing-service:50052"

// Config configures the goods service.
type Config struct {
	// Port is the TCP port to listen on, on 127.0.0.1 (env PORT, required unless Listener is set).
	Port string
	// Swimlane is the lane this instance is deployed on (env SWIMLANE).
	Swimlane string
	// PricingService is the pricing target, host:port (env PRICING_SERVICE).
	PricingService string
	// Listener, if non-nil, is served instead of listening on Port (tests use 127.0.0.1:0).
	Listener net.Listener
	// ServerOptions are appended to the gRPC server's options (tests).
	ServerOptions []grpc.ServerOption
}

// ConfigFromEnv reads the Config from PORT, SWIMLANE and PRICING_SERVICE.
func ConfigFromEnv() Config {
	return Config{
		Port:           os.Getenv("PORT"),
		Swimlane:       os.Getenv("SWIMLANE"),
		PricingService: cmp.Or(os.Getenv("PRICING_SERVICE"), DefaultPricingService),
	}
}

// Run serves the goods service configured from the environment until ctx is cancelled.
func Run(ctx context.Context) error { return RunWith(ctx, ConfigFromEnv()) }

// RunWith serves the goods service until ctx is cancelled, then shuts down gracefully and
// returns nil.
func RunWith(ctx context.Context, cfg Config) error {
	telemetry.Setup()
	log := telemetry.Logger("goods").With("swimlane", cfg.Swimlane)
	cfg.PricingService = cmp.Or(cfg.PricingService, DefaultPricingService)
	lis, err := rpc.Listen(cfg.Listener, cfg.Port)
	if err != nil {
		log.Error("listen failed", "err", err)
		return fmt.Errorf("goods: %w", err)
	}
	conn, err := rpc.NewClient(cfg.PricingService)
	if err != nil {
		lis.Close()
		log.Error("pricing client failed", "target", cfg.PricingService, "err", err)
		return fmt.Errorf("goods: pricing client: %w", err)
	}
	defer conn.Close()

	srv := rpc.NewServer(cfg.ServerOptions...)
	demopb.RegisterGoodsServiceServer(srv, &server{
		swimlane: cfg.Swimlane,
		pricing:  demopb.NewPricingServiceClient(conn),
		log:      log,
	})
	hs := health.NewServer()
	hs.SetServingStatus(demopb.GoodsService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	if err := rpc.Serve(ctx, log, lis, srv, hs); err != nil {
		return fmt.Errorf("goods: %w", err)
	}
	return nil
}

// catalogue is the fixed list of goods: id and name.
var catalogue = []struct{ id, name string }{
	{"1", "Apple"},
	{"2", "Banana"},
	{"3", "Cherry"},
}

type server struct {
	demopb.UnimplementedGoodsServiceServer
	swimlane string
	pricing  demopb.PricingServiceClient
	log      *slog.Logger
}

func (s *server) GetGoods(ctx context.Context, _ *demopb.GetGoodsRequest) (*demopb.GetGoodsResponse, error) {
	resp := &demopb.GetGoodsResponse{GoodsSwimlane: s.swimlane}
	for _, g := range catalogue {
		// ctx is the incoming request's: otelgrpc propagates its baggage and trace context.
		p, err := s.pricing.GetPrice(ctx, &demopb.GetPriceRequest{GoodsId: g.id})
		if err != nil {
			// Keep the code and the message: the mesh explains routing failures in it.
			st := status.Convert(err)
			s.log.Error("pricing-service call failed", "goods_id", g.id, "code", st.Code(), "err", st.Message())
			return nil, status.Errorf(st.Code(), "pricing-service: %s", st.Message())
		}
		resp.GoodsInfoList = append(resp.GoodsInfoList, &demopb.GetGoodsResponse_GoodsInfo{
			GoodsId:   g.id,
			GoodsName: g.name,
			Price:     p.GetPrice(),
		})
		resp.PricingSwimlane = p.GetSwimlane()
	}
	return resp, nil
}

// Package gateway is the demo's HTTP entry point, the first service of the seed demo's chain
// gateway -> goods -> pricing: GET /goods calls GoodsService.GetGoods and renders the answer
// as text, showing which goods and pricing swimlanes served the request.
//
// Like the other demo services it holds no swimlane logic: otelhttp extracts the incoming W3C
// baggage/traceparent, otelgrpc forwards them to goods, and the mesh (through the sidecar
// named by HTTPS_PROXY) picks the lanes.
package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"google.golang.org/grpc/status"

	"swimlane.dev/swimlane/examples/swimlane-demo/internal/rpc"
	"swimlane.dev/swimlane/examples/swimlane-demo/internal/telemetry"
	demopb "swimlane.dev/swimlane/examples/swimlane-demo/proto"
)

// Defaults used when the environment leaves them unset.
const (
	DefaultPort         = "8080"
	DefaultGoodsService = "goods-service:50051"
)

// Config configures the gateway.
type Config struct {
	// Port is the TCP port to listen on, on 127.0.0.1 (env PORT, default 8080).
	Port string
	// GoodsService is the goods target, host:port (env GOODS_SERVICE).
	GoodsService string
	// Listener, if non-nil, is served instead of listening on Port (tests use 127.0.0.1:0).
	Listener net.Listener
}

// ConfigFromEnv reads the Config from PORT and GOODS_SERVICE, applying the defaults.
func ConfigFromEnv() Config {
	return Config{
		Port:         cmp.Or(os.Getenv("PORT"), DefaultPort),
		GoodsService: cmp.Or(os.Getenv("GOODS_SERVICE"), DefaultGoodsService),
	}
}

// Run serves the gateway configured from the environment until ctx is cancelled.
func Run(ctx context.Context) error { return RunWith(ctx, ConfigFromEnv()) }

// RunWith serves the gateway until ctx is cancelled, then shuts down gracefully and returns nil.
func RunWith(ctx context.Context, cfg Config) error {
	telemetry.Setup()
	log := telemetry.Logger("gateway")
	cfg.Port = cmp.Or(cfg.Port, DefaultPort)
	cfg.GoodsService = cmp.Or(cfg.GoodsService, DefaultGoodsService)
	lis, err := rpc.Listen(cfg.Listener, cfg.Port)
	if err != nil {
		log.Error("listen failed", "err", err)
		return fmt.Errorf("gateway: %w", err)
	}
	conn, err := rpc.NewClient(cfg.GoodsService)
	if err != nil {
		lis.Close()
		log.Error("goods client failed", "target", cfg.GoodsService, "err", err)
		return fmt.Errorf("gateway: goods client: %w", err)
	}
	defer conn.Close()
	goods := demopb.NewGoodsServiceClient(conn)

	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "ok")
	}
	mux.HandleFunc("GET /health", ok)
	mux.HandleFunc("GET /ready", ok) // the seed's readiness probe path
	mux.HandleFunc("GET /goods", func(w http.ResponseWriter, r *http.Request) {
		// r.Context() carries the baggage and trace context otelhttp extracted.
		resp, err := goods.GetGoods(r.Context(), &demopb.GetGoodsRequest{})
		if err != nil {
			st := status.Convert(err)
			log.Error("goods-service call failed", "code", st.Code(), "err", st.Message())
			http.Error(w, "gateway: goods-service: "+st.Message(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, Render(resp))
	})

	srv := &http.Server{
		Handler:           otelhttp.NewHandler(mux, "gateway"),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Info("listening", "addr", lis.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		log.Error("serve failed", "err", err)
		return fmt.Errorf("gateway: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rpc.GracePeriod)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve failed", "err", err)
	}
	log.Info("stopped")
	return nil
}

// Render formats a GetGoods answer as the seed demo's gateway does.
func Render(resp *demopb.GetGoodsResponse) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Goods Swimlane: %s\n", resp.GetGoodsSwimlane())
	fmt.Fprintf(&b, "Pricing Swimlane: %s\n", resp.GetPricingSwimlane())
	for _, g := range resp.GetGoodsInfoList() {
		fmt.Fprintf(&b, "GoodsID: %s, GoodsName: %s, Price: %d\n", g.GetGoodsId(), g.GetGoodsName(), g.GetPrice())
	}
	return b.String()
}

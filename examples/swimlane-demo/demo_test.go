// Tests of the three demo services chained in-process on 127.0.0.1 (no mesh): gateway ->
// goods -> pricing.
package swimlanedemo_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"swimlane.dev/swimlane/examples/swimlane-demo/gateway"
	"swimlane.dev/swimlane/examples/swimlane-demo/goods"
	"swimlane.dev/swimlane/examples/swimlane-demo/internal/demotest"
	"swimlane.dev/swimlane/examples/swimlane-demo/pricing"
	demopb "swimlane.dev/swimlane/examples/swimlane-demo/proto"
)

type demo struct {
	pricingAddr, goodsAddr, gatewayURL string
}

// startDemo starts pricing (lane p-lane), goods (lane g-lane) and the gateway, wired to each
// other by 127.0.0.1 addresses. pricingOpts are added to pricing's gRPC server.
func startDemo(t *testing.T, pricingOpts ...grpc.ServerOption) demo {
	t.Helper()
	pl, gl, wl := demotest.Listen(t), demotest.Listen(t), demotest.Listen(t)
	d := demo{pl.Addr().String(), gl.Addr().String(), "http://" + wl.Addr().String()}
	demotest.Start(t, func(ctx context.Context) error {
		return pricing.RunWith(ctx, pricing.Config{Swimlane: "p-lane", Listener: pl, ServerOptions: pricingOpts})
	})
	demotest.Start(t, func(ctx context.Context) error {
		return goods.RunWith(ctx, goods.Config{Swimlane: "g-lane", PricingService: d.pricingAddr, Listener: gl})
	})
	demotest.Start(t, func(ctx context.Context) error {
		return gateway.RunWith(ctx, gateway.Config{GoodsService: d.goodsAddr, Listener: wl})
	})
	return d
}

// get sends GET url with the given headers and returns the status, content type and body.
func get(t *testing.T, url string, header http.Header) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

func TestGoods(t *testing.T) {
	d := startDemo(t)
	code, ctype, body := get(t, d.gatewayURL+"/goods", nil)
	want := "Goods Swimlane: g-lane\n" +
		"Pricing Swimlane: p-lane\n" +
		"GoodsID: 1, GoodsName: Apple, Price: 100\n" +
		"GoodsID: 2, GoodsName: Banana, Price: 200\n" +
		"GoodsID: 3, GoodsName: Cherry, Price: 300\n"
	if code != http.StatusOK || body != want {
		t.Errorf("GET /goods = %d %q, want 200 %q", code, body, want)
	}
	if !strings.HasPrefix(ctype, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", ctype)
	}
}

func TestHealth(t *testing.T) {
	d := startDemo(t)
	for _, path := range []string{"/health", "/ready"} {
		if code, _, body := get(t, d.gatewayURL+path, nil); code != http.StatusOK || body != "ok" {
			t.Errorf("GET %s = %d %q, want 200 ok", path, code, body)
		}
	}
	for addr, service := range map[string]string{
		d.pricingAddr: demopb.PricingService_ServiceDesc.ServiceName,
		d.goodsAddr:   demopb.GoodsService_ServiceDesc.ServiceName,
	} {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, name := range []string{"", service} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: name})
			cancel()
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("health %s %q = %v, %v; want SERVING", addr, name, resp.GetStatus(), err)
			}
		}
	}
}

// TestContextPropagation checks that the W3C baggage and trace context sent to the gateway
// reach pricing's request headers, two hops away, as the mesh's lane routing needs.
func TestContextPropagation(t *testing.T) {
	type seen struct{ baggage, traceparent []string }
	var (
		mu    sync.Mutex
		calls []seen
	)
	record := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		mu.Lock()
		calls = append(calls, seen{md.Get("baggage"), md.Get("traceparent")})
		mu.Unlock()
		return handler(ctx, req)
	}
	d := startDemo(t, grpc.UnaryInterceptor(record))

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	code, _, body := get(t, d.gatewayURL+"/goods", http.Header{
		"Baggage":     {"swimlane=dev-feature1"},
		"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-01"},
	})
	if code != http.StatusOK {
		t.Fatalf("GET /goods = %d %q", code, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 3 {
		t.Fatalf("pricing got %d calls, want 3", len(calls))
	}
	for i, c := range calls {
		if len(c.baggage) != 1 || !strings.Contains(c.baggage[0], "swimlane=dev-feature1") {
			t.Errorf("call %d: baggage = %q, want swimlane=dev-feature1", i, c.baggage)
		}
		if len(c.traceparent) != 1 || !strings.HasPrefix(c.traceparent[0], "00-"+traceID+"-") {
			t.Errorf("call %d: traceparent = %q, want trace id %s", i, c.traceparent, traceID)
		}
	}
}

// TestPricingDown checks that an upstream failure surfaces as a 502 carrying the gRPC status
// message, which is where the mesh explains routing failures.
func TestPricingDown(t *testing.T) {
	gl, wl, deadPricing := demotest.Listen(t), demotest.Listen(t), demotest.FreeAddr(t)
	demotest.Start(t, func(ctx context.Context) error {
		return goods.RunWith(ctx, goods.Config{Swimlane: "g-lane", PricingService: deadPricing, Listener: gl})
	})
	demotest.Start(t, func(ctx context.Context) error {
		return gateway.RunWith(ctx, gateway.Config{GoodsService: gl.Addr().String(), Listener: wl})
	})
	code, _, body := get(t, "http://"+wl.Addr().String()+"/goods", nil)
	if want := "gateway: goods-service: pricing-service: "; code != http.StatusBadGateway || !strings.HasPrefix(body, want) {
		t.Errorf("GET /goods = %d %q, want 502 %q...", code, body, want)
	}
}

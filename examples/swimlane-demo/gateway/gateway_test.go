package gateway_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"swimlane.dev/swimlane/examples/swimlane-demo/gateway"
	"swimlane.dev/swimlane/examples/swimlane-demo/internal/demotest"
	demopb "swimlane.dev/swimlane/examples/swimlane-demo/proto"
)

// failingGoods answers GetGoods with the kind of status the mesh returns when a lane has no
// endpoint.
type failingGoods struct {
	demopb.UnimplementedGoodsServiceServer
}

const meshMessage = "swimlane: no endpoint for pricing-service in lane dev-feature9"

func (failingGoods) GetGoods(context.Context, *demopb.GetGoodsRequest) (*demopb.GetGoodsResponse, error) {
	return nil, status.Error(codes.Unavailable, meshMessage)
}

func TestGoodsErrorIs502WithStatusMessage(t *testing.T) {
	gl, wl := demotest.Listen(t), demotest.Listen(t)
	srv := grpc.NewServer()
	demopb.RegisterGoodsServiceServer(srv, failingGoods{})
	go srv.Serve(gl)
	t.Cleanup(srv.Stop)
	demotest.Start(t, func(ctx context.Context) error {
		return gateway.RunWith(ctx, gateway.Config{GoodsService: gl.Addr().String(), Listener: wl})
	})

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+wl.Addr().String()+"/goods", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	want := "gateway: goods-service: " + meshMessage + "\n"
	if resp.StatusCode != http.StatusBadGateway || string(body) != want {
		t.Errorf("GET /goods = %d %q, want 502 %q", resp.StatusCode, body, want)
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("PORT", "")
	t.Setenv("GOODS_SERVICE", "")
	if got, want := gateway.ConfigFromEnv(), (gateway.Config{Port: "8080", GoodsService: "goods-service:50051"}); got != want {
		t.Errorf("ConfigFromEnv() = %+v, want defaults %+v", got, want)
	}
	t.Setenv("PORT", "9090")
	t.Setenv("GOODS_SERVICE", "goods:1")
	if got, want := gateway.ConfigFromEnv(), (gateway.Config{Port: "9090", GoodsService: "goods:1"}); got != want {
		t.Errorf("ConfigFromEnv() = %+v, want %+v", got, want)
	}
}

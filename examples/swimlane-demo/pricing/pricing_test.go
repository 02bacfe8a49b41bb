package pricing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"swimlane.dev/swimlane/examples/swimlane-demo/internal/demotest"
	"swimlane.dev/swimlane/examples/swimlane-demo/pricing"
	demopb "swimlane.dev/swimlane/examples/swimlane-demo/proto"
)

func TestGetPrice(t *testing.T) {
	lis := demotest.Listen(t)
	demotest.Start(t, func(ctx context.Context) error {
		return pricing.RunWith(ctx, pricing.Config{Swimlane: "p-lane", Listener: lis})
	})
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := demopb.NewPricingServiceClient(conn)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	for id, want := range map[string]int64{"1": 100, "2": 200, "3": 300} {
		resp, err := client.GetPrice(ctx, &demopb.GetPriceRequest{GoodsId: id})
		if err != nil || resp.GetPrice() != want || resp.GetSwimlane() != "p-lane" {
			t.Errorf("GetPrice(%s) = %v, %v; want price %d, swimlane p-lane", id, resp, err, want)
		}
	}
	if _, err := client.GetPrice(ctx, &demopb.GetPriceRequest{GoodsId: "42"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetPrice(42) error = %v, want NotFound", err)
	}
}

func TestPortRequired(t *testing.T) {
	err := pricing.RunWith(t.Context(), pricing.Config{})
	if err == nil || !strings.Contains(err.Error(), "PORT is required") {
		t.Errorf("RunWith without port = %v, want PORT is required", err)
	}
}

package lanes_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"swimlane.dev/swimlane/lanes"
)

// report is what the gRPC chain sends back to the test, as JSON in a response payload.
type report struct {
	ALane    string   // lane server A found in its handler's context
	BLane    []string // x-swimlane metadata server B received
	BBaggage []string // baggage metadata server B received
}

// serverB reports the lane metadata of each call it receives. It uses no lanes interceptors.
type serverB struct {
	testpb.UnimplementedTestServiceServer
}

func reportMD(ctx context.Context) []byte {
	md, _ := metadata.FromIncomingContext(ctx)
	b, _ := json.Marshal(report{BLane: md.Get("x-swimlane"), BBaggage: md.Get("baggage")})
	return b
}

func (serverB) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: reportMD(ctx)}}, nil
}

func (serverB) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	for {
		if _, err := stream.Recv(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: reportMD(stream.Context())}}); err != nil {
			return err
		}
	}
}

// serverA serves behind the lanes server interceptors and calls B through the lanes client
// interceptors, adding the outgoing metadata its caller asks for in "out-*" keys (as A's own
// code would set it).
type serverA struct {
	testpb.UnimplementedTestServiceServer
	b testpb.TestServiceClient
}

// appContext returns ctx with the outgoing metadata A's own code sets on its call to B.
func appContext(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, k := range []string{"x-swimlane", "baggage"} {
		for _, v := range md.Get("out-" + k) {
			ctx = metadata.AppendToOutgoingContext(ctx, k, v)
		}
	}
	return ctx
}

// withALane adds A's own view of the lane to B's report.
func withALane(ctx context.Context, body []byte) ([]byte, error) {
	var r report
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	r.ALane, _ = lanes.FromContext(ctx)
	return json.Marshal(r)
}

func (a *serverA) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	resp, err := a.b.UnaryCall(appContext(ctx), req)
	if err != nil {
		return nil, err
	}
	body, err := withALane(ctx, resp.GetPayload().GetBody())
	if err != nil {
		return nil, err
	}
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: body}}, nil
}

func (a *serverA) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	ctx := stream.Context()
	down, err := a.b.FullDuplexCall(appContext(ctx))
	if err != nil {
		return err
	}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return down.CloseSend()
		}
		if err != nil {
			return err
		}
		if err := down.Send(req); err != nil {
			return err
		}
		resp, err := down.Recv()
		if err != nil {
			return err
		}
		body, err := withALane(ctx, resp.GetPayload().GetBody())
		if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
}

// serve starts srv on a free port of 127.0.0.1 and returns its address; it is stopped, and
// its Serve goroutine waited for, when the test ends.
func serve(t *testing.T, srv *grpc.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(lis); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	t.Cleanup(func() { srv.Stop(); wg.Wait() })
	return lis.Addr().String()
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// startGRPCChain starts B, then A (with all four lanes interceptors) calling B, and returns a
// plain client of A.
func startGRPCChain(t *testing.T) testpb.TestServiceClient {
	t.Helper()
	b := grpc.NewServer()
	testpb.RegisterTestServiceServer(b, serverB{})
	bAddr := serve(t, b)

	toB := dial(t, bAddr,
		grpc.WithChainUnaryInterceptor(lanes.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(lanes.StreamClientInterceptor()))
	a := grpc.NewServer(
		grpc.ChainUnaryInterceptor(lanes.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(lanes.StreamServerInterceptor()))
	testpb.RegisterTestServiceServer(a, &serverA{b: testpb.NewTestServiceClient(toB)})
	aAddr := serve(t, a)

	// Servers stop (cleanups run last-in first-out) after the clients are closed.
	return testpb.NewTestServiceClient(dial(t, aAddr))
}

func TestGRPCChain(t *testing.T) {
	client := startGRPCChain(t)

	tests := []struct {
		name        string
		in          []string // metadata pairs of the call to A (as the sidecar delivers it)
		out         []string // metadata pairs A's own code sets on its call to B
		wantALane   string
		wantBLane   []string
		wantBaggage []string
	}{
		{
			name:        "header only",
			in:          []string{"x-swimlane", "dev-feature1"},
			wantALane:   "dev-feature1",
			wantBLane:   []string{"dev-feature1"},
			wantBaggage: []string{"swimlane=dev-feature1"},
		},
		{
			name:        "both forms, app baggage kept and stale lane member replaced",
			in:          []string{"x-swimlane", "dev-feature1", "baggage", "swimlane=dev-feature1,user=7"},
			out:         []string{"baggage", "app=a,swimlane=old", "baggage", "tenant=t1"},
			wantALane:   "dev-feature1",
			wantBLane:   []string{"dev-feature1"},
			wantBaggage: []string{"app=a,swimlane=dev-feature1,tenant=t1"},
		},
		{
			name:        "baggage only at A",
			in:          []string{"baggage", "k=v,swimlane=dev-b"},
			out:         []string{"baggage", "app=a"},
			wantALane:   "dev-b",
			wantBLane:   []string{"dev-b"},
			wantBaggage: []string{"app=a,swimlane=dev-b"},
		},
		{
			name: "invalid lane",
			in:   []string{"x-swimlane", "a b"},
		},
		{
			name:        "no lane",
			out:         []string{"baggage", "app=a"},
			wantBaggage: []string{"app=a"},
		},
		{
			name:      "explicit x-swimlane from the app is kept",
			in:        []string{"x-swimlane", "dev-feature1"},
			out:       []string{"x-swimlane", "dev-explicit"},
			wantALane: "dev-feature1",
			wantBLane: []string{"dev-explicit"},
		},
	}
	calls := []struct {
		name string
		call func(ctx context.Context) ([]byte, error)
	}{
		{
			name: "unary",
			call: func(ctx context.Context) ([]byte, error) {
				resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
				return resp.GetPayload().GetBody(), err
			},
		},
		{
			name: "stream",
			call: func(ctx context.Context) ([]byte, error) {
				stream, err := client.FullDuplexCall(ctx)
				if err != nil {
					return nil, err
				}
				if err := stream.Send(&testpb.StreamingOutputCallRequest{}); err != nil {
					return nil, err
				}
				resp, err := stream.Recv()
				if err != nil {
					return nil, err
				}
				if err := stream.CloseSend(); err != nil {
					return nil, err
				}
				if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
					return nil, fmt.Errorf("stream end: got %v, want io.EOF", err)
				}
				return resp.GetPayload().GetBody(), nil
			},
		},
	}
	for _, c := range calls {
		for _, tt := range tests {
			t.Run(c.name+"/"+tt.name, func(t *testing.T) {
				pairs := append([]string(nil), tt.in...)
				for i := 0; i < len(tt.out); i += 2 {
					pairs = append(pairs, "out-"+tt.out[i], tt.out[i+1])
				}
				ctx := metadata.AppendToOutgoingContext(t.Context(), pairs...)
				body, err := c.call(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var got report
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatal(err)
				}
				if got.ALane != tt.wantALane {
					t.Errorf("lane at A = %q, want %q", got.ALane, tt.wantALane)
				}
				if !reflect.DeepEqual(got.BLane, tt.wantBLane) {
					t.Errorf("x-swimlane at B = %q, want %q", got.BLane, tt.wantBLane)
				}
				if !reflect.DeepEqual(got.BBaggage, tt.wantBaggage) {
					t.Errorf("baggage at B = %q, want %q", got.BBaggage, tt.wantBaggage)
				}
			})
		}
	}
}

package proxy_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"swimlane.dev/swimlane/internal/snapshot"
)

// flakyGRPC fails every other UnaryCall with UNAVAILABLE.
type flakyGRPC struct {
	testpb.UnimplementedTestServiceServer
	calls atomic.Int64
}

func (f *flakyGRPC) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if f.calls.Add(1)%2 == 1 {
		return nil, status.Error(codes.Unavailable, "flaky")
	}
	return &testpb.SimpleResponse{}, nil
}

func startFlakyGRPC(t *testing.T) (string, *flakyGRPC) {
	f := &flakyGRPC{}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, f)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), f
}

func grpcMesh(t *testing.T, http string) testpb.TestServiceClient {
	m := newMesh(t, `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: test}
spec:
  services: [{name: rpc, port: 9000, selector: {app: rpc}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: rpc}
spec:
  hosts: [rpc]
  http:
`+http)
	addr, _ := startFlakyGRPC(t)
	m.register(workload("rpc-1", "rpc", "", addr, snapshot.GRPC))
	return testpb.NewTestServiceClient(grpcViaConnect(t, outbound(t, m.newProxy("sidecar~client")), "rpc:9000"))
}

// TestGRPCRetryOn checks retries on gRPC status codes: Istio's default policy retries
// UNAVAILABLE, so does an explicit retryOn: unavailable, and retryOn: internal does not.
func TestGRPCRetryOn(t *testing.T) {
	for _, tt := range []struct {
		name       string
		http       string
		wantFailed bool
	}{
		{name: "Istio's default", http: "  - route: [{destination: {host: rpc}}]\n", wantFailed: false},
		{name: "retryOn unavailable", http: "  - route: [{destination: {host: rpc}}]\n    retries: {attempts: 2, retryOn: unavailable}\n", wantFailed: false},
		{name: "retryOn internal only", http: "  - route: [{destination: {host: rpc}}]\n    retries: {attempts: 2, retryOn: internal}\n", wantFailed: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := grpcMesh(t, tt.http)
			failed := 0
			for range 20 {
				if _, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{}); err != nil {
					if status.Code(err) != codes.Unavailable {
						t.Fatalf("unexpected error %v", err)
					}
					failed++
				}
			}
			if (failed > 0) != tt.wantFailed {
				t.Errorf("%d of 20 calls failed; want failures: %v", failed, tt.wantFailed)
			}
		})
	}
}

// TestGRPCFaultAbort checks an abort with a gRPC status reaches gRPC callers as that status.
func TestGRPCFaultAbort(t *testing.T) {
	client := grpcMesh(t, "  - route: [{destination: {host: rpc}}]\n    fault: {abort: {grpcStatus: RESOURCE_EXHAUSTED, percentage: {value: 100}}}\n")
	_, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{})
	if status.Code(err) != codes.ResourceExhausted || status.Convert(err).Message() != "fault filter abort" {
		t.Errorf("got %v, want RESOURCE_EXHAUSTED 'fault filter abort'", err)
	}
}

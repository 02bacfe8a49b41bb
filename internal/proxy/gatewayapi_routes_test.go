package proxy_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"swimlane.dev/swimlane/internal/snapshot"
)

// methodServer is the interop TestService of grpc_test.go with EmptyCall answered too, so
// that a split by method can tell who served each method.
type methodServer struct{ *testServer }

func (s methodServer) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	if err := grpc.SetHeader(ctx, metadata.Pairs("served-by", s.name)); err != nil {
		return nil, err
	}
	return &testpb.Empty{}, nil
}

// startMethodApp starts a gRPC server (methodServer, h2c) named name.
func startMethodApp(t testing.TB, name string) string {
	t.Helper()
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, methodServer{&testServer{name: name}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

// grpcRouteMesh has a Service goods whose workloads are two gRPC servers, a and b, and a
// Service for each of them, which backendRefs name; routes is appended as more documents.
func grpcRouteMesh(routes string) string {
	return `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: test}
spec:
  services:
  - {name: goods, port: 50051, selector: {app: goods}}
  - {name: goods-a, port: 50051, selector: {app: goods, backend: a}}
  - {name: goods-b, port: 50051, selector: {app: goods, backend: b}}
---
` + routes
}

// byMethod sends UnaryCall and EmptyCall (and its canary) to different backends; the
// service-wide rule comes first in the file, and must still lose to the exact methods.
const byMethod = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: goods}
spec:
  parentRefs: [{group: "", kind: Service, name: goods}]
  rules:
  - matches:
    - method: {service: grpc.testing.TestService}
    backendRefs: [{name: goods-b, port: 50051}]
  - matches:
    - method: {service: grpc.testing.TestService, method: UnaryCall}
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-route, value: unary}]}
    backendRefs: [{name: goods-a, port: 50051}]
  - matches:
    - method: {service: grpc.testing.TestService, method: EmptyCall}
    backendRefs: [{name: goods-b, port: 50051}]
  - matches:
    - method: {service: grpc.testing.TestService, method: EmptyCall}
      headers: [{name: x-canary, value: "true"}]
    backendRefs: [{name: goods-a, port: 50051}]
`

// TestGRPCRoute checks a GRPCRoute attached to a Service through a real proxy and real gRPC
// servers: calls split by method (exact methods before the service-wide rule whatever the
// file order, a header match before the same method without), response header filters, a
// method no rule matches answered UNIMPLEMENTED; then a 50/50 split by backendRef weight,
// decided per call on one connection.
func TestGRPCRoute(t *testing.T) {
	t.Parallel()
	m := newMesh(t, grpcRouteMesh(byMethod))
	a := m.sidecarWorkload("goods-a-1", "goods", "", startMethodApp(t, "a"), snapshot.GRPC)
	a.Labels["backend"] = "a"
	b := m.sidecarWorkload("goods-b-1", "goods", "", startMethodApp(t, "b"), snapshot.GRPC)
	b.Labels["backend"] = "b"
	m.register(a, b)
	out := outbound(t, m.newProxy("sidecar~client"))
	cc := grpcViaConnect(t, out, "goods:50051")
	client := testpb.NewTestServiceClient(cc)

	servedBy := func(md metadata.MD) string { return strings.Join(md.Get("served-by"), ",") }
	t.Run("by method", func(t *testing.T) {
		tests := []struct {
			name      string
			call      func(ctx context.Context) (metadata.MD, error)
			wantBy    string
			wantRoute string // x-route set by the rule's ResponseHeaderModifier
		}{
			{
				name: "UnaryCall: exact method to a",
				call: func(ctx context.Context) (md metadata.MD, err error) {
					_, err = client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&md))
					return md, err
				},
				wantBy: "a", wantRoute: "unary",
			},
			{
				name: "EmptyCall: exact method to b",
				call: func(ctx context.Context) (md metadata.MD, err error) {
					_, err = client.EmptyCall(ctx, &testpb.Empty{}, grpc.Header(&md))
					return md, err
				},
				wantBy: "b",
			},
			{
				name: "EmptyCall with the canary header to a",
				call: func(ctx context.Context) (md metadata.MD, err error) {
					ctx = metadata.AppendToOutgoingContext(ctx, "x-canary", "true")
					_, err = client.EmptyCall(ctx, &testpb.Empty{}, grpc.Header(&md))
					return md, err
				},
				wantBy: "a",
			},
			{
				name: "StreamingOutputCall: the service-wide rule to b",
				call: func(ctx context.Context) (metadata.MD, error) {
					stream, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
						ResponseParameters: []*testpb.ResponseParameters{{Size: 3}},
					})
					if err != nil {
						return nil, err
					}
					md, err := stream.Header()
					if err != nil {
						return nil, err
					}
					for {
						if _, err := stream.Recv(); err == io.EOF {
							return md, nil
						} else if err != nil {
							return md, err
						}
					}
				},
				wantBy: "b",
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				for range 5 {
					md, err := tt.call(ctxWith(t))
					if err != nil {
						t.Fatal(err)
					}
					if got := servedBy(md); got != tt.wantBy {
						t.Fatalf("served by %q, want %q", got, tt.wantBy)
					}
					if got := strings.Join(md.Get("x-route"), ","); got != tt.wantRoute {
						t.Errorf("x-route %q, want %q", got, tt.wantRoute)
					}
				}
			})
		}

		t.Run("a method no rule matches is UNIMPLEMENTED", func(t *testing.T) {
			_, err := healthpb.NewHealthClient(cc).Check(ctxWith(t), &healthpb.HealthCheckRequest{})
			if st := status.Convert(err); st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), "no route of goods matches") {
				t.Errorf("got %v, want UNIMPLEMENTED saying no route matches", err)
			}
		})
	})

	t.Run("50/50 by backendRef weight", func(t *testing.T) {
		m.setConfig(grpcRouteMesh(`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: goods}
spec:
  parentRefs: [{kind: Service, name: goods}]
  rules:
  - backendRefs:
    - {name: goods-a, port: 50051, weight: 50}
    - {name: goods-b, port: 50051, weight: 50}
`))
		const n = 400
		counts := map[string]int{}
		for range n {
			var md metadata.MD
			if _, err := client.UnaryCall(ctxWith(t), &testpb.SimpleRequest{}, grpc.Header(&md)); err != nil {
				t.Fatal(err)
			}
			counts[servedBy(md)]++
		}
		if counts["a"]+counts["b"] != n {
			t.Fatalf("answers %v, want %d from a and b only", counts, n)
		}
		mean, sd := 0.5*n, math.Sqrt(n*0.5*0.5)
		if got := float64(counts["a"]); math.Abs(got-mean) > 5*sd {
			t.Errorf("a served %v of %d, want %v ± %.0f (5σ)", got, n, mean, 5*sd)
		}
		t.Logf("split: %v", counts)
	})
}

// TestTCPRoute checks a TCPRoute attached to a Service through a real proxy: raw TCP
// connections, each a CONNECT tunnel to the Service on the outbound listener, split 80/20
// between two version echoes by backendRef weight.
func TestTCPRoute(t *testing.T) {
	t.Parallel()
	m := newMesh(t, `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: test}
spec:
  services:
  - {name: tcp-echo, port: 9000, selector: {app: tcp-echo}}
  - {name: tcp-echo-v1, port: 9000, selector: {app: tcp-echo, version: v1}}
  - {name: tcp-echo-v2, port: 9000, selector: {app: tcp-echo, version: v2}}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: tcp-echo}
spec:
  parentRefs: [{group: "", kind: Service, name: tcp-echo}]
  rules:
  - backendRefs:
    - {name: tcp-echo-v1, port: 9000, weight: 80}
    - {name: tcp-echo-v2, port: 9000, weight: 20}
`)
	v1 := workload("tcp-echo-v1", "tcp-echo", "", startVersionEcho(t, "one"), snapshot.TCP)
	v1.Labels["version"] = "v1"
	v2 := workload("tcp-echo-v2", "tcp-echo", "", startVersionEcho(t, "two"), snapshot.TCP)
	v2.Labels["version"] = "v2"
	m.register(v1, v2)
	out := outbound(t, m.newProxy("sidecar~client"))

	const n = 500
	counts := map[string]int{}
	for range n {
		counts[tcpVersionVia(t, out, "tcp-echo:9000")]++
	}
	if counts["one"]+counts["two"] != n {
		t.Fatalf("answers %v, want %d from one and two only", counts, n)
	}
	got := float64(counts["one"]) / n
	if sd := math.Sqrt(0.8 * 0.2 / n); math.Abs(got-0.8) > 5*sd {
		t.Errorf("80/20: v1 answered %.3f, want 0.8 ± %.3f (5σ)", got, 5*sd)
	}
	t.Logf("split: %v", counts)
}

// tcpVersionVia opens a CONNECT tunnel to target through the outbound listener, sends a line
// to the version echo behind it and returns the version that answered.
func tcpVersionVia(t *testing.T, outboundAddr, target string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := dialConnect(ctx, outboundAddr, target, nil)
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	fmt.Fprintf(c, "hello\n")
	reply, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the echo through %s: %v", target, err)
	}
	version, rest, _ := strings.Cut(string(reply), " ")
	if rest != "hello\n" {
		t.Fatalf("echo %q, want \"<version> hello\\n\"", reply)
	}
	return version
}

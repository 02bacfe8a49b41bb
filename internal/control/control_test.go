package control

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"swimlane.dev/swimlane/internal/config"
	"swimlane.dev/swimlane/internal/controlapi"
	"swimlane.dev/swimlane/internal/registry"
	"swimlane.dev/swimlane/internal/snapshot"
)

const mesh = `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: m}
spec:
  services:
  - {name: svc, port: 80, selector: {app: a}}
`

func parse(t *testing.T, text string) *config.Set {
	t.Helper()
	set, err := config.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func serve(t *testing.T, s *Server) controlapi.SnapshotServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); cancel(); <-done })
	return controlapi.NewSnapshotServiceClient(conn)
}

func TestBadConfigRejectedWhole(t *testing.T) {
	reg := registry.New()
	s, err := New(reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetConfig(parse(t, mesh)); err != nil {
		t.Fatal(err)
	}
	good, _ := s.Current()

	// A valid service plus a VirtualService with a dangling subset: nothing of it applies.
	bad := parse(t, strings.Replace(mesh, "svc, port: 80", "svc2, port: 80", 1)+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: [svc2]
  http:
  - route:
    - destination: {host: svc2, subset: nope}
`)
	err = s.SetConfig(bad)
	if err == nil || !strings.Contains(err.Error(), "spec.http[0].route[0].destination.subset") {
		t.Fatalf("err = %v, want the dangling subset named", err)
	}
	if s.LastError() == nil {
		t.Error("LastError is nil after a rejected config")
	}
	now, _ := s.Current()
	if now.Version != good.Version || now.Snapshot.Service("svc2") != nil || now.Snapshot.Service("svc") == nil {
		t.Errorf("a rejected config changed the snapshot: version %d -> %d", good.Version, now.Version)
	}
}

// TestWatchLatestWins checks a proxy gets the current snapshot at once and, after many
// changes it did not read in time, the newest one rather than a backlog.
func TestWatchLatestWins(t *testing.T) {
	reg := registry.New()
	s, err := New(reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetConfig(parse(t, mesh)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	client := serve(t, s)
	stream, err := client.Watch(ctx, &controlapi.WatchRequest{Node: "test", Version: 999})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := s.Current()
	if first.GetVersion() != cur.Version {
		t.Fatalf("first snapshot version %d, want current %d (even though the proxy claimed 999)", first.GetVersion(), cur.Version)
	}

	// 50 registry changes while the proxy does not read.
	for i := 0; i < 50; i++ {
		reg.Upsert(registry.Workload{Name: "w", Address: "127.0.0.1:" + string(rune('0'+i%10)), Protocol: snapshot.HTTP, Labels: map[string]string{"app": "a"}})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cur, _ = s.Current()
		if len(cur.Snapshot.Service("svc").Endpoints) == 1 && cur.Snapshot.Service("svc").Endpoints[0].Address == "127.0.0.1:9" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("control plane never compiled the last registry change")
		}
		time.Sleep(10 * time.Millisecond)
	}
	received := 0
	for {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		received++
		if msg.GetVersion() == cur.Version {
			break
		}
	}
	if received >= 50 {
		t.Errorf("received %d snapshots for 50 changes; a slow proxy should skip to the newest", received)
	}
	body, err := mustLast(t, s).Body()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Decode(body)
	if err != nil || snap.Service("svc").Endpoints[0].Address != "127.0.0.1:9" {
		t.Errorf("newest snapshot does not hold the last change: %v", err)
	}
}

func mustLast(t *testing.T, s *Server) *Published {
	cur, _ := s.Current()
	return cur
}

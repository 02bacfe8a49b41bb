package proxy

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"swimlane.dev/swimlane/internal/controlapi"
	"swimlane.dev/swimlane/internal/snapshot"
)

// Backoff bounds for reconnecting to the control plane.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Subscribe keeps the proxy's snapshot current from the control plane at addr until ctx
// ends. While the control plane is away the last good snapshot keeps serving, and Subscribe
// reconnects with exponential backoff. onUpdate, if not nil, is called after each swap.
func (p *Proxy) Subscribe(ctx context.Context, addr string, onUpdate func(version uint64)) error {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithNoProxy(), // the proxy's own env may carry the app's proxy settings
	)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := controlapi.NewSnapshotServiceClient(conn)
	backoff := minBackoff
	for ctx.Err() == nil {
		received, err := p.watch(ctx, client, onUpdate)
		if ctx.Err() != nil {
			break
		}
		if received {
			backoff = minBackoff
		}
		p.log.Warn("control plane stream ended; keeping the last snapshot", "version", p.Snapshot().Version, "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
	return nil
}

// watch runs one stream; received reports whether any snapshot arrived on it.
func (p *Proxy) watch(ctx context.Context, client controlapi.SnapshotServiceClient, onUpdate func(uint64)) (received bool, err error) {
	stream, err := client.Watch(ctx, &controlapi.WatchRequest{Node: p.Node, Version: p.Snapshot().Version}, grpc.WaitForReady(false))
	if err != nil {
		return false, err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return received, err
		}
		received = true
		snap, err := snapshot.Decode(msg.GetBody())
		if err != nil {
			// A snapshot the proxy cannot use is skipped; the one in force stays.
			p.log.Error("bad snapshot from control plane; keeping the last one", "version", msg.GetVersion(), "err", err)
			continue
		}
		p.SetSnapshot(snap)
		p.log.Debug("snapshot applied", "version", snap.Version)
		if onUpdate != nil {
			onUpdate(snap.Version)
		}
	}
}

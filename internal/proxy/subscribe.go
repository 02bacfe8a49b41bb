package proxy

import (
	"context"
	"fmt"
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

// maxSnapshotBytes bounds one message from the control plane. gRPC's default, 4 MiB, is a
// full snapshot of about 3,000 services (10,000 encode to 12 MB); a proxy that cannot receive
// the full snapshot never gets any.
const maxSnapshotBytes = 256 << 20

// Subscribe keeps the proxy's snapshot current from the control plane at addr until ctx
// ends. A stream starts with the whole snapshot, then mostly brings deltas (the services that
// changed), each applied only to the version it was made from; a delta that does not apply
// ends the stream, and the next one starts in full again. While the control plane is away the
// last good snapshot keeps serving, and Subscribe reconnects with exponential backoff.
// onUpdate, if not nil, is called after each swap.
func (p *Proxy) Subscribe(ctx context.Context, addr string, onUpdate func(version uint64)) error {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithNoProxy(), // the proxy's own env may carry the app's proxy settings
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxSnapshotBytes)),
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
	stream, err := client.Watch(ctx, &controlapi.WatchRequest{Node: p.Node, Version: p.Snapshot().Version, AcceptDeltas: true}, grpc.WaitForReady(false))
	if err != nil {
		return false, err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return received, err
		}
		received = true
		var snap *snapshot.Snapshot
		if d := msg.GetDelta(); d != nil {
			snap, err = p.Snapshot().Apply(snapshot.Delta{BaseVersion: d.GetBaseVersion(), Version: msg.GetVersion(), Services: d.GetServices(), Removed: d.GetRemoved()})
			if err != nil {
				// Running on a snapshot that is not the control plane's would route wrongly
				// without telling anyone: resync instead, since a new stream starts in full.
				p.log.Error("snapshot delta from control plane does not apply; resyncing", "version", msg.GetVersion(), "err", err)
				return received, fmt.Errorf("resync: %w", err)
			}
		} else if snap, err = snapshot.Decode(msg.GetBody()); err != nil {
			// A snapshot the proxy cannot use is skipped; the one in force stays.
			p.log.Error("bad snapshot from control plane; keeping the last one", "version", msg.GetVersion(), "err", err)
			continue
		}
		p.SetSnapshot(snap)
		p.log.Debug("snapshot applied", "version", snap.Version, "delta", msg.GetDelta() != nil)
		if onUpdate != nil {
			onUpdate(snap.Version)
		}
	}
}

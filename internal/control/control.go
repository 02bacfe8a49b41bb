// Package control is the control plane: it keeps the last good config and the registry's
// workloads, compiles them into a versioned snapshot whenever either changes, and streams the
// newest snapshot to every connected proxy.
//
//  1. config source (files, later Kubernetes) -> SetConfig: compile; reject whole or adopt
//  2. registry change (workloads added, removed, moved, marked, relabelled) -> patch the
//     current snapshot's endpoints without compiling: the last compile's Membership says
//     which services a workload's labels put it in (no registry change alters a selector);
//     compile again only when a lane expired or the registry's changes are too many to list
//  3. publish: encode each service once, bump version, wake all watchers; when only services
//     changed, the version is also a delta (the services that changed, those removed)
//  4. Watch (gRPC): send current in full, then after each wake the recent deltas in order or,
//     for a watcher too far behind, the newest in full ("latest wins": a slow proxy skips
//     versions instead of queueing them)
package control

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"

	"swimlane.dev/swimlane/internal/compile"
	"swimlane.dev/swimlane/internal/config"
	"swimlane.dev/swimlane/internal/controlapi"
	"swimlane.dev/swimlane/internal/registry"
)

// Server is the control plane. The zero value is not usable; call New.
type Server struct {
	controlapi.UnimplementedSnapshotServiceServer

	reg *registry.Registry
	log *slog.Logger

	mu      sync.Mutex
	cfg     *config.Set // last good config; never nil after New
	current *Published  // never nil after the first publish
	changed chan struct{}
	version uint64
	// recent holds the latest deltas in version order, the last one turning the version
	// before current into current; empty when current was published in full.
	recent []*controlapi.Snapshot
	// workloads are the registry's workloads (sorted by name) the last compile used, and
	// patched those endpoint patches changed since (nil: removed): together, the workloads
	// current was built from. membership is that compile's: which services a workload's
	// labels put it in.
	workloads  []registry.Workload
	patched    map[string]*registry.Workload
	membership *compile.Membership
	// compiles counts the compiles that went on to be published, so tests can tell a
	// compile from a patch.
	compiles  int
	lastError error // the last rejected config's error, nil once a config is accepted
	// nextExpiry is when the next declared lane expires; Run recompiles then.
	nextExpiry time.Time
	// compiledRegistry is the registry version of the last compile.
	compiledRegistry uint64
	// kick wakes Run when nextExpiry changes.
	kick chan struct{}
	now  func() time.Time
	// sent, if set (by tests), sees every message sent on the stream req opened.
	sent func(req *controlapi.WatchRequest, msg *controlapi.Snapshot)
}

// New returns a control plane over reg with an empty config, and publishes its first
// snapshot (no routes, endpoints from reg).
func New(reg *registry.Registry, log *slog.Logger) (*Server, error) {
	s := &Server{reg: reg, log: log, cfg: &config.Set{}, changed: make(chan struct{}), kick: make(chan struct{}, 1), now: time.Now}
	if err := s.SetConfig(&config.Set{}); err != nil {
		return nil, err
	}
	return s, nil
}

// SetConfig compiles set with the current workloads. On success it becomes the config and a
// new snapshot is published; on failure nothing changes and the error (naming file, line,
// object and field) is returned and kept for status.
func (s *Server) SetConfig(set *config.Set) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws, regVersion, _ := s.reg.List()
	res, err := compile.Compile(set, ws, s.now())
	if err != nil {
		s.lastError = err
		return fmt.Errorf("config rejected:\n%w", err)
	}
	for _, w := range res.Warnings {
		s.log.Warn("config", "warning", w)
	}
	s.cfg = set
	s.lastError = nil
	s.setNextExpiry(res.NextExpiry)
	s.compiledRegistry = regVersion
	return s.publishCompiled(res, ws)
}

// setNextExpiry must be called with s.mu held.
func (s *Server) setNextExpiry(t time.Time) {
	if t.Equal(s.nextExpiry) {
		return
	}
	s.nextExpiry = t
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// LastError returns why the newest config was rejected, or nil.
func (s *Server) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastError
}

// Run recompiles on every registry change, and when a lane expires, until ctx ends.
func (s *Server) Run(ctx context.Context) {
	for {
		regVersion, changed := s.reg.Version()
		s.mu.Lock()
		next, compiled := s.nextExpiry, s.compiledRegistry
		s.mu.Unlock()
		// A change may have landed before Run started or while it compiled: compile it now,
		// rather than wait for the next one.
		if regVersion != compiled {
			s.recompile()
			continue
		}
		var expiry <-chan time.Time
		var timer *time.Timer
		if !next.IsZero() {
			timer = time.NewTimer(next.Sub(s.now()))
			expiry = timer.C
		}
		recompile := true
		select {
		case <-ctx.Done():
			recompile = false
		case <-s.kick:
			recompile = false // a new config moved the next expiry: wait again
		case <-changed:
		case <-expiry:
			s.log.Info("control: a lane expired; recompiling")
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		if recompile {
			s.recompile()
		}
	}
}

func (s *Server) recompile() {
	s.mu.Lock()
	defer s.mu.Unlock()
	lanesExpired := !s.nextExpiry.IsZero() && !s.now().Before(s.nextExpiry)
	if !lanesExpired && s.patchEndpoints() {
		return
	}
	ws, v, _ := s.reg.List()
	s.compiledRegistry = v // even on failure: retrying the same input cannot succeed
	res, err := compile.Compile(s.cfg, ws, s.now())
	if err != nil {
		// The config compiled before; a registry change alone should not break it.
		s.log.Error("control: recompile failed; keeping the last snapshot", "registry_version", v, "err", err)
		return
	}
	s.setNextExpiry(res.NextExpiry)
	if err := s.publishCompiled(res, ws); err != nil {
		s.log.Error("control: publish", "err", err)
	}
}

// Current returns the newest snapshot and a channel closed when a newer one is published.
func (s *Server) Current() (*Published, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current, s.changed
}

// Watch implements the streaming API: the current snapshot in full, then each newer version,
// as deltas when the proxy accepts them and is recent enough, else in full.
func (s *Server) Watch(req *controlapi.WatchRequest, stream grpc.ServerStreamingServer[controlapi.Snapshot]) error {
	node := req.GetNode()
	s.log.Info("control: proxy connected", "node", node, "has_version", req.GetVersion(), "deltas", req.GetAcceptDeltas())
	defer s.log.Info("control: proxy disconnected", "node", node)
	// A new stream always starts with the current snapshot in full, whatever version the
	// proxy holds: versions are per control-plane process, and a restarted one counts from 1
	// again.
	var sent uint64
	for {
		msgs, full, changed := s.updates(sent, req.GetAcceptDeltas())
		if full != nil {
			msg, err := full.fullMessage()
			if err != nil {
				s.log.Error("control: cannot send snapshot", "node", node, "err", err)
				return err
			}
			msgs = append(msgs, msg)
		}
		for _, msg := range msgs {
			if err := stream.Send(msg); err != nil {
				return err
			}
			sent = msg.GetVersion()
			if s.sent != nil {
				s.sent(req, msg)
			}
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-changed:
		}
	}
}

// Serve runs the gRPC API on lis until ctx ends.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	gs := grpc.NewServer()
	controlapi.RegisterSnapshotServiceServer(gs, s)
	go func() {
		<-ctx.Done()
		gs.Stop() // Watch streams never end on their own, so GracefulStop would wait forever
	}()
	return gs.Serve(lis)
}

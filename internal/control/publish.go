package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"

	"swimlane.dev/swimlane/internal/compile"
	"swimlane.dev/swimlane/internal/controlapi"
	"swimlane.dev/swimlane/internal/registry"
	"swimlane.dev/swimlane/internal/snapshot"
)

// recentDeltas is how many versions back a watcher may be and still catch up with deltas;
// further behind, it gets the current snapshot in full.
const recentDeltas = 16

// Published is one snapshot as proxies receive it.
type Published struct {
	Version uint64
	// RegistryVersion is the registry version the snapshot was compiled from.
	RegistryVersion uint64
	// Snapshot is prepared. It shares unchanged services with earlier versions, so nothing
	// may modify it.
	Snapshot *snapshot.Snapshot

	// services holds each service's JSON encoding by name: the next version's services are
	// compared with them, and the full body is assembled from them.
	services map[string][]byte
	// shell encodes everything but the version and the services; when it changes, the next
	// version cannot be told as a delta.
	shell []byte

	fullOnce sync.Once
	full     *controlapi.Snapshot
	fullErr  error
}

// Body returns the JSON encoding of Snapshot (what snapshot.Decode reads). It is assembled
// on first use, since at 10,000 services that costs real time and most versions reach every
// proxy as a delta.
func (p *Published) Body() ([]byte, error) {
	msg, err := p.fullMessage()
	return msg.GetBody(), err
}

func (p *Published) fullMessage() (*controlapi.Snapshot, error) {
	p.fullOnce.Do(func() {
		services := make([]json.RawMessage, len(p.Snapshot.Services))
		for i, svc := range p.Snapshot.Services {
			services[i] = p.services[svc.Name]
		}
		// The outer Services field hides the embedded snapshot's: the already encoded services
		// go in as they are.
		body, err := json.Marshal(struct {
			*snapshot.Snapshot
			Services []json.RawMessage `json:"services"`
		}{p.Snapshot, services})
		if err != nil {
			p.fullErr = fmt.Errorf("control: encode snapshot %d: %w", p.Version, err)
			return
		}
		p.full = &controlapi.Snapshot{Version: p.Version, Kind: &controlapi.Snapshot_Body{Body: body}}
	})
	return p.full, p.fullErr
}

// encodeShell encodes snap without its version and services.
func encodeShell(snap *snapshot.Snapshot) ([]byte, error) {
	shell := *snap
	shell.Version, shell.Services = 0, nil
	b, err := json.Marshal(&shell)
	if err != nil {
		return nil, fmt.Errorf("control: encode snapshot: %w", err)
	}
	return b, nil
}

func encodeService(svc *snapshot.Service) ([]byte, error) {
	b, err := json.Marshal(svc)
	if err != nil {
		return nil, fmt.Errorf("control: encode service %s: %w", svc.Name, err)
	}
	return b, nil
}

// encodeServices encodes each service, on every core: at 10,000 services this is most of
// what a compile costs the control plane besides the compile itself.
func encodeServices(services []*snapshot.Service) ([][]byte, error) {
	encoded := make([][]byte, len(services))
	workers := min(runtime.GOMAXPROCS(0), len(services))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(services) && errs[w] == nil; i += workers {
				encoded[i], errs[w] = encodeService(services[i])
			}
		})
	}
	wg.Wait()
	return encoded, errors.Join(errs...)
}

// publishCompiled publishes a fresh compile of workloads, whose snapshot is unprepared. When
// only services changed, it is published as a delta of those, and only those are prepared:
// the others are the previous version's, which encode the same. It must be called with s.mu
// held.
func (s *Server) publishCompiled(res *compile.Compiled, workloads []registry.Workload) error {
	s.compiles++
	snap := res.Snapshot
	snap.Version = s.version + 1
	// Encoded as compiled, before Prepare (which normalises a few fields, such as header name
	// case), so that every compile of an unchanged service encodes the same.
	shell, err := encodeShell(snap)
	if err != nil {
		return err
	}
	encoded, err := encodeServices(snap.Services)
	if err != nil {
		return err
	}
	pub := &Published{Version: snap.Version, RegistryVersion: s.compiledRegistry, Snapshot: snap, shell: shell,
		services: make(map[string][]byte, len(snap.Services))}
	for i, svc := range snap.Services {
		pub.services[svc.Name] = encoded[i]
	}
	prev := s.current
	if prev == nil || !bytes.Equal(prev.shell, shell) {
		if err := snap.Prepare(); err != nil {
			return err
		}
		s.commit(pub, nil)
		s.workloads, s.patched, s.membership = workloads, nil, res.Membership
		return nil
	}
	delta := &controlapi.Delta{BaseVersion: prev.Version}
	var changed []*snapshot.Service
	for i, svc := range snap.Services {
		if !bytes.Equal(prev.services[svc.Name], encoded[i]) {
			changed = append(changed, svc)
			delta.Services = append(delta.Services, encoded[i])
		}
	}
	for _, svc := range prev.Snapshot.Services {
		if _, ok := pub.services[svc.Name]; !ok {
			delta.Removed = append(delta.Removed, svc.Name)
		}
	}
	if pub.Snapshot, err = prev.Snapshot.WithServices(snap.Version, changed, delta.Removed); err != nil {
		return err
	}
	s.commit(pub, delta)
	s.workloads, s.patched, s.membership = workloads, nil, res.Membership
	return nil
}

// patchEndpoints publishes the registry's changes since the current snapshot (workloads
// added, removed, moved, marked or relabelled) by patching the endpoints of the services they
// leave and join, without compiling: which services a workload belongs to is the last
// compile's Membership, since a registry change alters no selector. It reports whether it
// did. It must be called with s.mu held.
func (s *Server) patchEndpoints() bool {
	changed, removed, version, ok := s.reg.ChangedSince(s.current.RegistryVersion)
	if !ok {
		return false
	}
	s.compiledRegistry = version
	if err := s.publishEndpoints(s.endpointChanges(changed, removed)); err != nil {
		s.log.Error("control: endpoint patch failed; compiling instead", "err", err)
		return false
	}
	if s.patched == nil {
		s.patched = map[string]*registry.Workload{}
	}
	for _, name := range removed {
		if _, ok := s.compiledWorkload(name); ok {
			s.patched[name] = nil
		} else {
			delete(s.patched, name) // added since the compile: forget it, so churn stays bounded
		}
	}
	for i := range changed {
		s.patched[changed[i].Name] = &changed[i]
	}
	return true
}

// endpointChanges turns the registry's changes since the current snapshot (changed: the
// workloads as they are now; removed: names) into endpoint changes of the services each
// workload leaves, stays in and joins. It must be called with s.mu held.
func (s *Server) endpointChanges(changed []registry.Workload, removed []string) []snapshot.EndpointChange {
	var changes []snapshot.EndpointChange
	for _, name := range removed {
		if was, ok := s.workload(name); ok { // else added and removed again
			changes = s.moveWorkload(changes, &was, nil)
		}
	}
	for i := range changed {
		if was, ok := s.workload(changed[i].Name); !ok {
			changes = s.moveWorkload(changes, nil, &changed[i])
		} else if !sameWorkload(&was, &changed[i]) {
			changes = s.moveWorkload(changes, &was, &changed[i])
		}
	}
	return changes
}

// moveWorkload appends the endpoint changes that take workload was (nil: none) to now (nil:
// gone) in every service either belongs to.
func (s *Server) moveWorkload(changes []snapshot.EndpointChange, was, now *registry.Workload) []snapshot.EndpointChange {
	var before, after []string
	var from, to *snapshot.Endpoint
	if was != nil {
		before = s.membership.Services(was.Labels)
		ep := was.Endpoint()
		from = &ep
	}
	if now != nil {
		after = s.membership.Services(now.Labels)
		ep := now.Endpoint()
		to = &ep
	}
	for _, name := range before {
		if slices.Contains(after, name) {
			changes = append(changes, snapshot.EndpointChange{Service: name, From: from, To: to})
		} else {
			changes = append(changes, snapshot.EndpointChange{Service: name, From: from})
		}
	}
	for _, name := range after {
		if !slices.Contains(before, name) {
			changes = append(changes, snapshot.EndpointChange{Service: name, To: to})
		}
	}
	return changes
}

func sameWorkload(a, b *registry.Workload) bool {
	return a.Address == b.Address && a.Protocol == b.Protocol && a.Health == b.Health && maps.Equal(a.Labels, b.Labels)
}

// publishEndpoints publishes the current snapshot with changes applied to its endpoints,
// without compiling: only the services holding those endpoints are copied, indexed and
// encoded. It must be called with s.mu held.
func (s *Server) publishEndpoints(changes []snapshot.EndpointChange) error {
	prev := s.current
	snap, copied, err := prev.Snapshot.PatchEndpoints(s.version+1, changes)
	if err != nil {
		return err
	}
	pub := &Published{Version: snap.Version, RegistryVersion: s.compiledRegistry, Snapshot: snap, shell: prev.shell,
		services: maps.Clone(prev.services)}
	delta := &controlapi.Delta{BaseVersion: prev.Version}
	for _, svc := range copied {
		// Encoded prepared, unlike a compile's services: where Prepare normalised a field, the
		// next compile finds the service changed and sends it once more, which is harmless.
		body, err := encodeService(svc)
		if err != nil {
			return err
		}
		pub.services[svc.Name] = body
		delta.Services = append(delta.Services, body)
	}
	s.commit(pub, delta)
	return nil
}

// commit makes pub current and wakes every watcher; delta, if not nil, turns the previous
// version into pub. It must be called with s.mu held.
func (s *Server) commit(pub *Published, delta *controlapi.Delta) {
	s.version = pub.Version
	s.current = pub
	if delta == nil {
		s.recent = nil // a watcher behind this version needs it in full
	} else {
		s.recent = append(s.recent, &controlapi.Snapshot{Version: pub.Version, Kind: &controlapi.Snapshot_Delta{Delta: delta}})
		if len(s.recent) > recentDeltas {
			s.recent = slices.Delete(s.recent, 0, 1)
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.log.Debug("control: published snapshot", "version", pub.Version, "services", len(pub.Snapshot.Services),
		"delta", delta != nil, "changed", len(delta.GetServices()), "removed", len(delta.GetRemoved()))
}

// updates returns what a watcher holding version has needs to reach the current version:
// nothing, the deltas from has on (when it accepts deltas and has is recent enough), or the
// current snapshot in full; and a channel closed when a newer version is published. has is 0
// for a watcher that holds nothing yet.
func (s *Server) updates(has uint64, deltas bool) (msgs []*controlapi.Snapshot, full *Published, changed <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case has == s.current.Version:
		return nil, nil, s.changed
	case deltas && has != 0:
		for i, d := range s.recent {
			if d.GetDelta().GetBaseVersion() == has {
				// Cloned: commit shifts s.recent in place.
				return slices.Clone(s.recent[i:]), nil, s.changed
			}
		}
	}
	return nil, s.current, s.changed
}

// workload returns the workload named name as the current snapshot knows it. It must be
// called with s.mu held.
func (s *Server) workload(name string) (registry.Workload, bool) {
	if w, ok := s.patched[name]; ok {
		if w == nil {
			return registry.Workload{}, false // removed since the compile
		}
		return *w, true
	}
	return s.compiledWorkload(name)
}

// compiledWorkload returns the workload named name as the last compile saw it. It must be
// called with s.mu held.
func (s *Server) compiledWorkload(name string) (registry.Workload, bool) {
	i, ok := slices.BinarySearchFunc(s.workloads, name, func(w registry.Workload, name string) int { return strings.Compare(w.Name, name) })
	if !ok {
		return registry.Workload{}, false
	}
	return s.workloads[i], true
}

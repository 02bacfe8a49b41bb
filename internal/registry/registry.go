// Package registry holds the live workloads of the mesh: which instances run, where their
// proxies listen, and their labels. Sources (local mode's process supervisor, later the
// Kubernetes watcher) write to it; the control plane reads a consistent copy whenever it
// compiles a snapshot.
package registry

import (
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"swimlane.dev/swimlane/internal/snapshot"
)

// Workload is one running, reachable instance.
type Workload struct {
	Name string
	// Address is where the mesh sends its traffic: the workload's inbound sidecar.
	Address  string
	Protocol snapshot.Protocol
	Labels   map[string]string
	// Health is "" when healthy, else why it takes no new requests ("unhealthy",
	// "draining"); see snapshot.Endpoint.Health.
	Health string
}

// Endpoint is the snapshot endpoint of w.
func (w *Workload) Endpoint() snapshot.Endpoint {
	return snapshot.Endpoint{Address: w.Address, Protocol: w.Protocol, Workload: w.Name, Labels: w.Labels, Health: w.Health}
}

// Registry is a concurrency-safe set of workloads keyed by name. Every change bumps Version
// and wakes the Changed channel.
type Registry struct {
	mu        sync.Mutex
	workloads map[string]Workload
	version   uint64
	changed   chan struct{}
	// sorted is the workloads sorted by name as List last returned them, never modified
	// after; dirty names the workloads changed since. List patches sorted with the dirty ones
	// rather than sort again: at 100,000 workloads a sort costs more than a whole endpoint
	// change is allowed to.
	sorted []Workload
	dirty  map[string]bool
	// changes names the workload each of the latest versions changed, oldest first: every
	// version changes exactly one.
	changes []string
}

// recentChanges is how many versions back ChangedSince can answer.
const recentChanges = 4096

// New returns an empty registry.
func New() *Registry {
	return &Registry{workloads: map[string]Workload{}, changed: make(chan struct{}), dirty: map[string]bool{}}
}

// Upsert adds or replaces a workload.
func (r *Registry) Upsert(w Workload) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w.Labels = maps.Clone(w.Labels)
	r.workloads[w.Name] = w
	r.bump(w.Name)
}

// Remove deletes a workload; it reports whether it was present.
func (r *Registry) Remove(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.workloads[name]; !ok {
		return false
	}
	delete(r.workloads, name)
	r.bump(name)
	return true
}

// bump records a change of workload name.
func (r *Registry) bump(name string) {
	r.dirty[name] = true
	r.changes = append(r.changes, name)
	if len(r.changes) > 2*recentChanges {
		r.changes = slices.Clone(r.changes[len(r.changes)-recentChanges:])
	}
	r.version++
	close(r.changed)
	r.changed = make(chan struct{})
}

// SetHealth sets a workload's health; it reports whether the workload exists. An unchanged
// health is not a change.
func (r *Registry) SetHealth(name, health string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.workloads[name]
	if !ok {
		return false
	}
	if w.Health != health {
		w.Health = health
		r.workloads[name] = w
		r.bump(name)
	}
	return true
}

// List returns the workloads sorted by name, with the version they belong to, and a channel
// that is closed at the next change. The slice is shared with other callers: do not modify it.
func (r *Registry) List() (ws []Workload, version uint64, changed <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.dirty) > 0 || r.sorted == nil {
		r.sorted = r.resort()
		clear(r.dirty)
	}
	return r.sorted, r.version, r.changed
}

// ChangedSince returns the workloads changed after version since as they are now (sorted by
// name), the names of those removed since, and the version that state belongs to; or false
// when since is older than the registry remembers. It costs what changed, not what is listed.
func (r *Registry) ChangedSince(since uint64) (changed []Workload, removed []string, version uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if since > r.version || r.version-since > uint64(len(r.changes)) {
		return nil, nil, r.version, false
	}
	seen := map[string]bool{}
	for _, name := range r.changes[uint64(len(r.changes))-(r.version-since):] {
		if seen[name] {
			continue
		}
		seen[name] = true
		if w, ok := r.workloads[name]; ok {
			changed = append(changed, w)
		} else {
			removed = append(removed, name)
		}
	}
	sort.Slice(changed, func(i, j int) bool { return changed[i].Name < changed[j].Name })
	sort.Strings(removed)
	return changed, removed, r.version, true
}

// Version returns the registry's version and a channel closed at its next change.
func (r *Registry) Version() (version uint64, changed <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.version, r.changed
}

// resort returns the workloads sorted by name: r.sorted with the dirty workloads merged in
// when they are few, else sorted from scratch.
func (r *Registry) resort() []Workload {
	if r.sorted == nil || len(r.dirty) > len(r.workloads)/8 {
		ws := slices.Collect(maps.Values(r.workloads))
		sort.Slice(ws, func(i, j int) bool { return ws[i].Name < ws[j].Name })
		return ws
	}
	names := slices.Sorted(maps.Keys(r.dirty))
	old := r.sorted
	ws := make([]Workload, 0, len(r.workloads))
	for _, name := range names {
		// Copy the unchanged run before name, drop name's old entry, add its new one.
		i, found := slices.BinarySearchFunc(old, name, func(w Workload, name string) int { return strings.Compare(w.Name, name) })
		ws = append(ws, old[:i]...)
		if found {
			i++
		}
		old = old[i:]
		if w, ok := r.workloads[name]; ok {
			ws = append(ws, w)
		}
	}
	return append(ws, old...)
}

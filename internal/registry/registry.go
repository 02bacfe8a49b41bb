// Package registry holds the live workloads of the mesh: which instances run, where their
// proxies listen, and their labels. Sources (local mode's process supervisor, later the
// Kubernetes watcher) write to it; the control plane reads a consistent copy whenever it
// compiles a snapshot.
package registry

import (
	"maps"
	"slices"
	"sort"
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

// Registry is a concurrency-safe set of workloads keyed by name. Every change bumps Version
// and wakes the Changed channel.
type Registry struct {
	mu        sync.Mutex
	workloads map[string]Workload
	version   uint64
	changed   chan struct{}
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{workloads: map[string]Workload{}, changed: make(chan struct{})}
}

// Upsert adds or replaces a workload.
func (r *Registry) Upsert(w Workload) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w.Labels = maps.Clone(w.Labels)
	r.workloads[w.Name] = w
	r.bump()
}

// Remove deletes a workload; it reports whether it was present.
func (r *Registry) Remove(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.workloads[name]; !ok {
		return false
	}
	delete(r.workloads, name)
	r.bump()
	return true
}

func (r *Registry) bump() {
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
		r.bump()
	}
	return true
}

// List returns the workloads sorted by name, with the version they belong to, and a channel
// that is closed at the next change.
func (r *Registry) List() (ws []Workload, version uint64, changed <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ws = slices.Collect(maps.Values(r.workloads))
	sort.Slice(ws, func(i, j int) bool { return ws[i].Name < ws[j].Name })
	return ws, r.version, r.changed
}

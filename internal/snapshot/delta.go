package snapshot

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Delta changes a snapshot's services only, as the control plane streams it when nothing else
// (mesh settings, gateways, lanes, lane entries) changed.
type Delta struct {
	// BaseVersion is the only version the delta applies to; Version is the result's.
	BaseVersion, Version uint64
	// Services holds each added or changed service, JSON-encoded on its own.
	Services [][]byte
	// Removed names the services that are gone.
	Removed []string
}

// Apply returns a new prepared snapshot: s with d applied. s is not modified, and the result
// shares every unchanged *Service with it (a prepared Service is immutable), so only the
// changed services are decoded and indexed. It fails when s is not d's base version or d does
// not fit s (it removes a service s lacks, or a service does not decode or prepare); the
// caller must then get a full snapshot rather than run on a wrong one.
func (s *Snapshot) Apply(d Delta) (*Snapshot, error) {
	if s.Version != d.BaseVersion {
		return nil, fmt.Errorf("snapshot: delta from version %d to %d does not apply to version %d", d.BaseVersion, d.Version, s.Version)
	}
	changed := make([]*Service, len(d.Services))
	for i, body := range d.Services {
		svc := new(Service)
		if err := json.Unmarshal(body, svc); err != nil {
			return nil, fmt.Errorf("snapshot: delta to version %d: decode service %d: %w", d.Version, i, err)
		}
		changed[i] = svc
	}
	return s.WithServices(d.Version, changed, d.Removed)
}

// WithServices returns a new prepared snapshot at version: s with the services changed added
// or replacing those of the same name, and the services named in removed dropped. The changed
// services must be new (not part of any snapshot yet): they are prepared here. s is not
// modified; the result shares all other services with it.
func (s *Snapshot) WithServices(version uint64, changed []*Service, removed []string) (*Snapshot, error) {
	if s.byName == nil {
		return nil, fmt.Errorf("snapshot: version %d is not prepared", s.Version)
	}
	for _, svc := range changed {
		if err := svc.prepare(s.Mesh); err != nil {
			return nil, err
		}
	}
	return s.withServices(version, changed, removed)
}

// EndpointChange is one workload's change in one service: its endpoint From becomes To. A nil
// From adds To; a nil To removes From.
type EndpointChange struct {
	Service  string
	From, To *Endpoint
}

// PatchEndpoints returns a new prepared snapshot at version: s with the endpoint changes
// applied, and the services it copied for them (all others are shared with s, which is not
// modified). It lets the control plane add, move, mark and remove workloads without
// compiling: routes and policies do not depend on endpoints, so only the changed services'
// lane and subset sets are built again. It fails, changing nothing, when a change does not
// fit s: a service s lacks, a From it does not hold, or a second endpoint for one workload.
func (s *Snapshot) PatchEndpoints(version uint64, changes []EndpointChange) (*Snapshot, []*Service, error) {
	if s.byName == nil {
		return nil, nil, fmt.Errorf("snapshot: version %d is not prepared", s.Version)
	}
	copies := map[string]*Service{}
	var copied []*Service
	for _, c := range changes {
		cp := copies[c.Service]
		if cp == nil {
			i, ok := s.byName[c.Service]
			if !ok {
				return nil, nil, fmt.Errorf("snapshot: version %d patches service %q, which version %d lacks", version, c.Service, s.Version)
			}
			dup := *s.Services[i]
			dup.Endpoints = slices.Clone(dup.Endpoints)
			cp = &dup
			copies[c.Service] = cp
			copied = append(copied, cp)
		}
		if err := cp.patchEndpoint(c.From, c.To); err != nil {
			return nil, nil, fmt.Errorf("snapshot: version %d: %w", version, err)
		}
	}
	for _, svc := range copied {
		if len(svc.Endpoints) == 0 {
			svc.Endpoints = nil // as compiled: no endpoints, no field
		}
		svc.index(s.Mesh)
	}
	next, err := s.withServices(version, copied, nil)
	if err != nil {
		return nil, nil, err
	}
	return next, copied, nil
}

// patchEndpoint replaces from with to in svc's endpoints (a copy); see EndpointChange. An
// added endpoint goes in workload-name order, where a compile puts it.
func (svc *Service) patchEndpoint(from, to *Endpoint) error {
	at := -1
	if from != nil {
		at = slices.IndexFunc(svc.Endpoints, func(e Endpoint) bool { return e.equal(from) })
		if at < 0 {
			return fmt.Errorf("service %q has no endpoint %s of workload %q to change", svc.Name, from.Address, from.Workload)
		}
	}
	switch {
	case to == nil && at >= 0:
		svc.Endpoints = slices.Delete(svc.Endpoints, at, at+1)
	case to != nil && at >= 0:
		svc.Endpoints[at] = *to
	case to != nil:
		if slices.ContainsFunc(svc.Endpoints, func(e Endpoint) bool { return e.Workload == to.Workload }) {
			return fmt.Errorf("service %q already has an endpoint of workload %q", svc.Name, to.Workload)
		}
		i, _ := slices.BinarySearchFunc(svc.Endpoints, to.Workload, func(e Endpoint, name string) int { return strings.Compare(e.Workload, name) })
		svc.Endpoints = slices.Insert(svc.Endpoints, i, *to)
	}
	return nil
}

func (e *Endpoint) equal(o *Endpoint) bool {
	return e.Workload == o.Workload && e.Address == o.Address && e.Protocol == o.Protocol &&
		e.Health == o.Health && maps.Equal(e.Labels, o.Labels)
}

// withServices is WithServices for services already prepared. Only the indexes that span
// services are rebuilt, and of those only what changed: when no service is added or removed,
// the name index is shared with s.
func (s *Snapshot) withServices(version uint64, changed []*Service, removed []string) (*Snapshot, error) {
	next := *s
	next.Version = version
	next.Services = slices.Clone(s.Services)
	next.laneServices = maps.Clone(s.laneServices)
	lanesChanged := false
	gone := make(map[int]bool, len(removed))
	for _, name := range removed {
		i, ok := s.byName[name]
		if !ok || gone[i] {
			return nil, fmt.Errorf("snapshot: version %d removes service %q, which version %d lacks", version, name, s.Version)
		}
		gone[i] = true
		lanesChanged = next.countLanes(s.Services[i], -1) || lanesChanged
	}
	var added []*Service
	seen := make(map[string]bool, len(changed))
	for _, svc := range changed {
		if seen[svc.Name] {
			return nil, fmt.Errorf("snapshot: version %d changes service %q twice", version, svc.Name)
		}
		seen[svc.Name] = true
		if i, ok := s.byName[svc.Name]; ok && !gone[i] {
			lanesChanged = next.countLanes(s.Services[i], -1) || lanesChanged
			next.Services[i] = svc
		} else {
			added = append(added, svc)
		}
		lanesChanged = next.countLanes(svc, 1) || lanesChanged
	}
	if len(gone) > 0 || len(added) > 0 {
		next.restructure(gone, added)
	}
	if lanesChanged {
		next.indexLanes()
	}
	return &next, nil
}

// restructure drops the services at the positions in gone and adds added (in name order when
// the services are sorted), then indexes the names again.
func (s *Snapshot) restructure(gone map[int]bool, added []*Service) {
	kept := make([]*Service, 0, len(s.Services)-len(gone)+len(added))
	for i, svc := range s.Services {
		if !gone[i] {
			kept = append(kept, svc)
		}
	}
	if s.sorted {
		byName := func(a, b *Service) int { return strings.Compare(a.Name, b.Name) }
		slices.SortFunc(added, byName)
		merged := make([]*Service, 0, len(kept)+len(added))
		for len(kept) > 0 && len(added) > 0 {
			if kept[0].Name < added[0].Name {
				merged, kept = append(merged, kept[0]), kept[1:]
			} else {
				merged, added = append(merged, added[0]), added[1:]
			}
		}
		kept = append(append(merged, kept...), added...)
	} else {
		kept = append(kept, added...)
	}
	if len(kept) == 0 {
		kept = nil // as compiled and decoded: "services":null
	}
	s.Services = kept
	s.byName = make(map[string]int, len(kept))
	for i, svc := range kept {
		s.byName[svc.Name] = i
	}
}

// Package inspect explains a snapshot to people: which lane each service resolves to
// (`swimlane lanes`), and the decision path of one request (`swimlane explain`). It runs the
// proxy's own resolution code on the snapshot the control plane serves, so what it says is
// what the proxies do.
package inspect

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"swimlane.dev/swimlane/internal/controlapi"
	"swimlane.dev/swimlane/internal/lane"
	"swimlane.dev/swimlane/internal/snapshot"
)

// Fetch returns the control plane's current snapshot, read over the proxies' Watch API.
func Fetch(ctx context.Context, addr string) (*snapshot.Snapshot, error) {
	// A 10,000-service snapshot is about 12 MB, past gRPC's 4 MiB default.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithNoProxy(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := controlapi.NewSnapshotServiceClient(conn).Watch(ctx, &controlapi.WatchRequest{Node: "swimlane-cli"})
	if err != nil {
		return nil, fmt.Errorf("control plane %s: %w", addr, err)
	}
	msg, err := stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("control plane %s: %w", addr, err)
	}
	return snapshot.Decode(msg.GetBody())
}

// LaneRow describes one lane.
type LaneRow struct {
	Name        lane.Lane   `json:"name"`
	Declared    bool        `json:"declared"` // a Lane object exists (else: only in workload labels)
	Baseline    bool        `json:"baseline,omitempty"`
	Chain       []lane.Lane `json:"chain"`
	Mode        string      `json:"mode"`
	Owner       string      `json:"owner,omitempty"`
	Description string      `json:"description,omitempty"`
	Expires     *time.Time  `json:"expires,omitempty"`
	Expired     bool        `json:"expired,omitempty"`
}

// Cell is how one service resolves for one lane.
type Cell struct {
	// ServedBy is the lane whose endpoints serve; "" when nothing does.
	ServedBy lane.Lane `json:"servedBy"`
	// Own is true when the lane has its own healthy deployment of the service.
	Own bool `json:"own"`
	// Endpoints and Healthy count the endpoints of ServedBy (of the lane itself when ServedBy
	// is "").
	Endpoints int    `json:"endpoints"`
	Healthy   int    `json:"healthy"`
	Note      string `json:"note,omitempty"` // why nothing serves, or the pin
}

// ServiceRow is one service across all lanes.
type ServiceRow struct {
	Name  string             `json:"name"`
	Lanes map[lane.Lane]Cell `json:"lanes"`
}

// Matrix is the answer of `swimlane lanes`.
type Matrix struct {
	Version  uint64       `json:"snapshotVersion"`
	Baseline lane.Lane    `json:"baseline"`
	Lanes    []LaneRow    `json:"lanes"`
	Services []ServiceRow `json:"services"`
}

// Lanes builds the lane matrix of snap: every declared lane and every lane some endpoint
// carries, and for each service where a request in that lane goes (without routing rules).
func Lanes(snap *snapshot.Snapshot) Matrix {
	m := Matrix{Version: snap.Version, Baseline: snap.Mesh.Baseline}
	names := map[lane.Lane]bool{snap.Mesh.Baseline: true}
	for _, l := range snap.Lanes {
		names[l.Name] = true
	}
	for _, svc := range snap.Services {
		for _, ep := range svc.Endpoints {
			if l := lane.Lane(ep.Labels[snap.Mesh.LaneLabel]); l != "" {
				names[l] = true
			}
		}
	}
	sorted := make([]lane.Lane, 0, len(names))
	for l := range names {
		sorted = append(sorted, l)
	}
	sort.Slice(sorted, func(i, j int) bool {
		// the baseline first, then by name
		if (sorted[i] == snap.Mesh.Baseline) != (sorted[j] == snap.Mesh.Baseline) {
			return sorted[i] == snap.Mesh.Baseline
		}
		return sorted[i] < sorted[j]
	})
	for _, l := range sorted {
		row := LaneRow{Name: l, Baseline: l == snap.Mesh.Baseline, Mode: string(snapshot.ModeFallback)}
		row.Chain, row.Expired = snap.Chain(l)
		if info := snap.LaneInfo(l); info != nil {
			row.Declared, row.Mode, row.Owner, row.Description = true, string(info.Mode), info.Owner, info.Description
			row.Chain = info.Chain
			if !info.Expires.IsZero() {
				t := info.Expires
				row.Expires = &t
			}
		}
		m.Lanes = append(m.Lanes, row)
	}
	for _, svc := range snap.Services {
		row := ServiceRow{Name: svc.Name, Lanes: map[lane.Lane]Cell{}}
		for _, l := range sorted {
			asked := l
			if l == snap.Mesh.Baseline {
				asked = ""
			}
			d := snapshot.Decision{Service: svc, Host: svc.Name, Asked: asked}
			snap.Resolve(&d, nil)
			cell := Cell{ServedBy: d.Served}
			count := d.Served
			if d.Endpoint == nil {
				cell.ServedBy = ""
				cell.Note = d.NoEndpointReason()
				count = l
			}
			cell.Own = d.Endpoint != nil && d.Served == l && svc.Lane == ""
			if svc.Lane != "" && d.Endpoint != nil {
				cell.Note = "pinned to lane " + string(svc.Lane) + " by its selector"
			}
			cell.Endpoints, cell.Healthy = countEndpoints(snap, svc, count)
			row.Lanes[l] = cell
		}
		m.Services = append(m.Services, row)
	}
	return m
}

func countEndpoints(snap *snapshot.Snapshot, svc *snapshot.Service, l lane.Lane) (all, healthy int) {
	for i := range svc.Endpoints {
		ep := &svc.Endpoints[i]
		epLane := lane.Lane(ep.Labels[snap.Mesh.LaneLabel])
		if epLane == "" {
			epLane = snap.Mesh.Baseline
		}
		if svc.Lane != "" {
			epLane = svc.Lane
		}
		if epLane != l {
			continue
		}
		all++
		if ep.Healthy() {
			healthy++
		}
	}
	return all, healthy
}

// Request is the request explain follows.
type Request struct {
	Service string      // host the request is sent to (a service name, may carry a port)
	Gateway string      // if set, the request enters through this gateway (Service is then its service)
	Method  string      // default GET
	Path    string      // default /
	Lane    lane.Lane   // sent as x-swimlane when set
	Header  http.Header // more headers (cookies as Cookie)
	Query   string      // raw query
}

// Step is one stage of the decision.
type Step struct {
	Stage  string `json:"stage"`
	Result string `json:"result"`
	Why    string `json:"why,omitempty"`
}

// LaneStep is one lane of the chain, tried in order.
type LaneStep struct {
	Lane      lane.Lane `json:"lane"`
	Endpoints int       `json:"endpoints"`
	Healthy   int       `json:"healthy"`
	Outcome   string    `json:"outcome"` // "serves", "no endpoints: next", "all unhealthy: next", "not tried"
}

// Explanation is the answer of `swimlane explain`.
type Explanation struct {
	Version   uint64     `json:"snapshotVersion"`
	Steps     []Step     `json:"steps"`
	Chain     []LaneStep `json:"chain,omitempty"`
	Endpoints []string   `json:"endpoints,omitempty"` // the endpoints the request may go to
	Status    int        `json:"status"`              // 0 when forwarded, else the error status
	Error     string     `json:"error,omitempty"`
}

// Package proxy is the data plane: the sidecar's outbound and inbound listeners and the
// ingress gateway. Every listener reads the same atomically swapped snapshot.
//
// The order in which a request is handled (outbound and gateway):
//
//  1. lane: read from x-swimlane, else from the baggage member; written back in both forms so
//     the next hop and the app see it however they forward context
//  2. service: the destination host (CONNECT target, absolute URL or Host) names a service
//  3. route: the service's HTTP routes, first match wins, weighted destination
//  4. endpoints: pinned subset, or the lane's endpoints with fallback to the baseline
//  5. forward: round-robin endpoint, HTTP/1.1 or h2c by the endpoint's protocol
//
// Lane normalisation (1) comes before matching (3) so rules written against baggage (as the
// seed's Istio YAML is) also match callers that only sent x-swimlane.
package proxy

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"swimlane.dev/swimlane/internal/snapshot"
	"swimlane.dev/swimlane/internal/tracelane"
)

// Proxy is one proxy instance: a sidecar or a gateway. Its listeners are started with
// ServeOutbound, ServeInbound and ServeGateway.
type Proxy struct {
	// Node names the proxy in logs and to the control plane ("sidecar~goods-main").
	Node string
	log  *slog.Logger
	// snap is the snapshot in force. It must never be nil: New stores an empty one.
	snap atomic.Pointer[snapshot.Snapshot]
	fwd  *forwarder
	// ejector holds the endpoints this proxy saw refuse connections or fail (outliers).
	ejector *ejector
	// inflight counts requests in flight per endpoint and per service; tcpPicker picks for
	// connections, which have no request.
	inflight  *inflight
	tcpPicker *snapshot.Picker
	outliers  outliers

	// metrics, if set (UseMetrics), receives every request's metrics; collectors are this
	// proxy's own series, unregistered when it goes (Admin.Remove).
	metrics    *Metrics
	collectors []prometheus.Collector
	series     sync.Map                    // seriesKey -> *seriesEntry, this proxy's metrics by label values
	lastSeries atomic.Pointer[seriesEntry] // the last one found: most requests repeat it
	// Labels are the labels of the workload this proxy serves (none for a gateway), matched by
	// VirtualService sourceLabels. Set before serving.
	Labels map[string]string
	// AccessLog, if set before serving, logs one line per request (lane asked, served,
	// fallback, endpoint, status) at info level.
	AccessLog bool
	// traces remembers the lane of each trace seen inbound, to restore it on outbound
	// requests of apps that forward only trace context. Never nil.
	traces *tracelane.Memory
	// entry caches the gateway lane policy compiled for the snapshot in force.
	entry atomic.Pointer[entryCache]
	// changed is closed and replaced at every snapshot swap.
	changedMu sync.Mutex
	changed   chan struct{}

	// GatewayListen, if set before ServeGateway, opens the listener of an Istio Gateway
	// server port (local mode remaps ports); by default the port is bound on the main
	// listener's host.
	GatewayListen func(port int) (net.Listener, error)
}

// Trace memory bounds: about 115 bytes an entry, so the default costs a sidecar under 0.5 MB.
const (
	traceMemoryEntries = 4096
	traceMemoryTTL     = 2 * time.Minute
)

// New returns a proxy with an empty snapshot: until the first one arrives, every request
// gets a 503 naming the missing service.
func New(node string, log *slog.Logger) *Proxy {
	p := &Proxy{Node: node, log: log.With("proxy", node)}
	empty := &snapshot.Snapshot{Mesh: snapshot.Mesh{LaneHeader: "x-swimlane", BaggageKey: "swimlane", LaneLabel: "swimlane", Baseline: "main", Namespace: "default"}}
	_ = empty.Prepare()
	p.snap.Store(empty)
	p.fwd = newForwarder(p.log)
	p.ejector = newEjector()
	p.inflight = &inflight{}
	p.tcpPicker = &snapshot.Picker{Usable: p.ejector.usable, Load: p.inflight.load}
	p.traces = tracelane.New(traceMemoryEntries, traceMemoryTTL)
	return p
}

// Snapshot returns the snapshot in force; never nil.
func (p *Proxy) Snapshot() *snapshot.Snapshot { return p.snap.Load() }

// SetSnapshot swaps in a prepared snapshot. Requests already routed finish on the old one.
func (p *Proxy) SetSnapshot(s *snapshot.Snapshot) {
	p.snap.Store(s)
	p.changedMu.Lock()
	if p.changed != nil {
		close(p.changed)
	}
	p.changed = make(chan struct{})
	p.changedMu.Unlock()
}

// snapshotChanged returns the snapshot in force and a channel closed at the next swap.
func (p *Proxy) snapshotChanged() (*snapshot.Snapshot, <-chan struct{}) {
	p.changedMu.Lock()
	defer p.changedMu.Unlock()
	if p.changed == nil {
		p.changed = make(chan struct{})
	}
	return p.snap.Load(), p.changed
}

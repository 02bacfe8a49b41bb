package proxy

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"swimlane.dev/swimlane/internal/lane"
	"swimlane.dev/swimlane/internal/snapshot"
	"swimlane.dev/swimlane/internal/tracelane"
)

// Metrics are the data plane's Prometheus metrics, shared by every proxy of a process and
// told apart by the proxy label. Lane labels carry only lanes the mesh knows ("other" for the
// rest, "" for none) to keep the series bounded.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	registry *prometheus.Registry
}

// NewMetrics registers the data plane's metrics in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swimlane_requests_total",
			Help: "Requests handled, by proxy, direction, destination service, lane asked for, lane served, whether lane fallback happened, and status (HTTP, or gRPC status for gRPC).",
		}, []string{"proxy", "direction", "service", "lane_asked", "lane_served", "fallback", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "swimlane_request_duration_seconds",
			Help:    "Time from request received to response finished, by proxy, direction, service and lane served.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"proxy", "direction", "service", "lane_served"}),
		registry: prometheus.NewRegistry(),
	}
	m.registry.MustRegister(m.requests, m.duration)
	return m
}

// UseMetrics makes p report to m, including its trace memory's size, hits, misses and
// evictions. Call it before serving.
func (p *Proxy) UseMetrics(m *Metrics) {
	p.metrics = m
	labels := prometheus.Labels{"proxy": p.Node}
	stat := func(f func(tracelane.Stats) float64) func() float64 {
		return func() float64 { return f(p.traces.Stats()) }
	}
	p.collectors = []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "swimlane_trace_lane_entries", Help: "Trace ids whose lane the proxy remembers.", ConstLabels: labels},
			stat(func(s tracelane.Stats) float64 { return float64(s.Size) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "swimlane_trace_lane_hits_total", Help: "Outbound requests without a lane whose lane was restored from their trace id.", ConstLabels: labels},
			stat(func(s tracelane.Stats) float64 { return float64(s.Hits) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "swimlane_trace_lane_misses_total", Help: "Outbound requests with a trace id but no lane, whose trace the proxy did not remember.", ConstLabels: labels},
			stat(func(s tracelane.Stats) float64 { return float64(s.Misses) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "swimlane_trace_lane_evictions_total", Help: "Remembered trace ids dropped for capacity or age.", ConstLabels: labels},
			stat(func(s tracelane.Stats) float64 { return float64(s.Evictions) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "swimlane_ejected_endpoints", Help: "Endpoints the proxy skips after they refused connections.", ConstLabels: labels},
			func() float64 { return float64(p.ejector.count()) }),
	}
	m.registry.MustRegister(p.collectors...)
}

// Registry is where the metrics live, for /metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Direction names where a proxy handled a request.
const (
	dirOutbound = "outbound"
	dirInbound  = "inbound"
	dirGateway  = "gateway"
)

// outcome is what one request's metrics and access log line say.
type outcome struct {
	direction string
	service   string
	asked     lane.Lane
	served    lane.Lane
	fallback  bool
	endpoint  string
	entryRule string // gateway: the lane entry rule that assigned the lane
	restored  bool   // outbound: the lane came from the trace memory
}

// record observes one finished request and writes its access log line when enabled.
func (p *Proxy) record(r *http.Request, rec *statusRecorder, snap *snapshot.Snapshot, o *outcome, began time.Time) {
	elapsed := time.Since(began)
	code := rec.code()
	if p.metrics != nil {
		s := p.seriesFor(seriesKey{o.direction, o.service, laneLabel(snap, o.asked), string(o.served), o.fallback, code})
		s.requests.Inc()
		s.duration.Observe(elapsed.Seconds())
	}
	if p.AccessLog {
		p.log.Info("access", "direction", o.direction, "method", r.Method, "host", r.Host, "path", r.URL.Path,
			"code", code, "duration_ms", float64(elapsed.Microseconds())/1000, "service", o.service,
			"lane_asked", o.asked, "lane_served", o.served, "fallback", o.fallback, "endpoint", o.endpoint, "entry_rule", o.entryRule, "lane_from_trace", o.restored)
	}
}

// seriesKey is one request's label values (the proxy label is the proxy's own).
type seriesKey struct {
	direction, service, asked, served string
	fallback                          bool
	code                              string
}

// series are the metrics of one seriesKey, looked up once: the vectors' own lookup validates
// and hashes every label value on each request, a visible share of the proxy's CPU.
type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// seriesEntry is one seriesKey with its series: what p.series holds, so that the last one
// found can be kept without an allocation.
type seriesEntry struct {
	key seriesKey
	s   *series
}

func (p *Proxy) seriesFor(k seriesKey) *series {
	// Comparing with the last key found is cheaper than sync.Map's hash of six strings.
	if last := p.lastSeries.Load(); last != nil && last.key == k {
		return last.s
	}
	v, ok := p.series.Load(k)
	if !ok {
		v, _ = p.series.LoadOrStore(k, &seriesEntry{k, &series{
			requests: p.metrics.requests.WithLabelValues(p.Node, k.direction, k.service, k.asked, k.served, strconv.FormatBool(k.fallback), k.code),
			duration: p.metrics.duration.WithLabelValues(p.Node, k.direction, k.service, k.served),
		}})
	}
	e := v.(*seriesEntry)
	p.lastSeries.Store(e)
	return e.s
}

func laneLabel(snap *snapshot.Snapshot, l lane.Lane) string {
	if l == "" || snap.KnownLane(l) {
		return string(l)
	}
	return "other"
}

// statusRecorder remembers the status a handler wrote. It unwraps for
// http.ResponseController, which ReverseProxy uses to flush.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

// newStatusRecorder wraps w. The proxy's own writer carries one for its request (pooled with
// it), which spares an allocation per metered request; any other writer gets a new one.
func newStatusRecorder(w http.ResponseWriter) *statusRecorder {
	if hw, ok := w.(*h1Response); ok {
		hw.recorder = statusRecorder{ResponseWriter: w}
		return &hw.recorder
	}
	return &statusRecorder{ResponseWriter: w}
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// code is the gRPC status when the response carries one, else the HTTP status.
func (s *statusRecorder) code() string {
	if hw, ok := s.ResponseWriter.(*h1Response); !ok || !hw.noGrpcStatus {
		h := s.Header() // keys are canonical already: indexed, not through Get's canonicalising
		if g := h["Grpc-Status"]; len(g) > 0 && g[0] != "" {
			return "grpc-" + g[0]
		}
		if g := h[http.TrailerPrefix+"Grpc-Status"]; len(g) > 0 && g[0] != "" {
			return "grpc-" + g[0]
		}
	}
	switch s.status {
	case 0:
		return "0" // the client went away before any answer
	case http.StatusOK: // the usual answers, without an allocation each
		return "200"
	case http.StatusNoContent:
		return "204"
	case http.StatusNotFound:
		return "404"
	case http.StatusServiceUnavailable:
		return "503"
	}
	return strconv.Itoa(s.status)
}

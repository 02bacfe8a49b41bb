package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Admin serves the proxies' admin API (Istio's port 15000, bound to loopback): one per
// process, so in local mode every proxy of the process is under /proxies/<node>/.
//
//	GET /healthz                      ok once every proxy has a snapshot from the control plane
//	GET /metrics                      Prometheus metrics of all the process's proxies
//	GET /proxies                      each proxy, its snapshot version and ejected endpoints
//	GET /proxies/<node>/config_dump   the snapshot the proxy runs on, as JSON
type Admin struct {
	metrics *Metrics
	mu      sync.Mutex
	proxies map[string]*Proxy
}

// NewAdmin returns an admin API over metrics (nil for none).
func NewAdmin(metrics *Metrics) *Admin {
	return &Admin{metrics: metrics, proxies: map[string]*Proxy{}}
}

// Add makes p visible under /proxies/<p.Node>/.
func (a *Admin) Add(p *Proxy) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.proxies[p.Node] = p
}

// Remove takes p out of the admin API and its per-proxy metrics out of the registry, so a
// workload started again under the same name can register afresh.
func (a *Admin) Remove(p *Proxy) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.proxies[p.Node] == p {
		delete(a.proxies, p.Node)
	}
	if a.metrics != nil {
		for _, c := range p.collectors {
			a.metrics.registry.Unregister(c)
		}
	}
}

// Proxies returns the proxies added, sorted by node.
func (a *Admin) Proxies() []*Proxy { return a.list() }

func (a *Admin) list() []*Proxy {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*Proxy, 0, len(a.proxies))
	for _, p := range a.proxies {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// Handler returns the admin API's HTTP handler.
func (a *Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		for _, p := range a.list() {
			if p.Snapshot().Version == 0 {
				http.Error(w, "proxy "+p.Node+" has no snapshot yet", http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	if a.metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.Registry(), promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /proxies", func(w http.ResponseWriter, r *http.Request) {
		type row struct {
			Node     string `json:"node"`
			Version  uint64 `json:"snapshotVersion"`
			Ejected  int    `json:"ejectedEndpoints"`
			Services int    `json:"services"`
		}
		var rows []row
		for _, p := range a.list() {
			s := p.Snapshot()
			rows = append(rows, row{Node: p.Node, Version: s.Version, Ejected: p.ejector.count(), Services: len(s.Services)})
		}
		writeJSON(w, rows)
	})
	mux.HandleFunc("GET /proxies/", func(w http.ResponseWriter, r *http.Request) {
		node, what, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/proxies/"), "/")
		a.mu.Lock()
		p := a.proxies[node]
		a.mu.Unlock()
		if p == nil || what != "config_dump" {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, p.Snapshot())
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

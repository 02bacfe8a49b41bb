// Package local is local mode (`swimlane up`, `swimlane demo`): one process that runs the
// control plane, the ingress gateways and one sidecar per workload, and starts each workload
// as a child process.
//
//	mesh file + config files --(watch)--> control plane --(gRPC stream)--> each proxy
//	child process ready      ----------> registry ----^
//
// Proxies get their snapshots over the same gRPC API a standalone `swimlane proxy` uses, on
// loopback, so local mode exercises the production path.
//
// Apps reach other services through their sidecar by the standard proxy variables:
// HTTP_PROXY and HTTPS_PROXY point at the sidecar's outbound listener (Go's net/http and
// grpc-go honour them; grpc-go tunnels with CONNECT), NO_PROXY keeps loopback direct.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"swimlane.dev/swimlane/internal/config"
	"swimlane.dev/swimlane/internal/control"
	"swimlane.dev/swimlane/internal/proxy"
	"swimlane.dev/swimlane/internal/registry"
	"swimlane.dev/swimlane/internal/snapshot"
)

// Options configure a local mesh. Files is required; the rest have defaults.
type Options struct {
	// Files are the mesh file(s) and extra config files or folders. Exactly one Mesh must be
	// among them.
	Files []string
	// ControlAddr is where the control plane's gRPC API listens (default 127.0.0.1:15010;
	// port 0 picks a free one).
	ControlAddr string
	// GatewayAddrs overrides a gateway's listen address by gateway name (e.g. "127.0.0.1:0").
	GatewayAddrs map[string]string
	// AdminAddr is where the proxies' admin API listens (default 127.0.0.1:15000; port 0
	// picks a free one): /metrics, /healthz, /proxies/<node>/config_dump.
	AdminAddr string
	// AccessLog logs one line per proxied request with the lane asked, served and fallback.
	AccessLog bool
	// Self is the swimlane binary, substituted for $SWIMLANE_BIN in commands (default: this
	// process's executable).
	Self string
	// Output receives the workloads' output, each line prefixed "[workload lane] " (default
	// os.Stdout).
	Output *os.File
	Log    *slog.Logger
}

// Mesh is a running local mesh.
type Mesh struct {
	opts     Options
	log      *slog.Logger
	reg      *registry.Registry
	cp       *control.Server
	cpAddr   string
	gateways map[string]string // name -> listen address
	spec     *config.Mesh
	meshFile string

	metrics   *proxy.Metrics
	admin     *proxy.Admin
	adminAddr string

	wg      sync.WaitGroup
	outMu   sync.Mutex
	mu      sync.Mutex
	running map[string]*workload
	// generation counts the instances started per workload name, for replacement names.
	generation map[string]int
}

// Start loads the files, starts everything and returns once all listeners are bound and
// every workload has been started (not necessarily ready: see WaitReady). ctx ending stops the
// mesh; Wait returns when everything has stopped.
func Start(ctx context.Context, opts Options) (*Mesh, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Output == nil {
		opts.Output = os.Stdout
	}
	if opts.ControlAddr == "" {
		opts.ControlAddr = "127.0.0.1:15010"
	}
	if opts.AdminAddr == "" {
		opts.AdminAddr = "127.0.0.1:15000"
	}
	if opts.Self == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("local: find own executable: %w", err)
		}
		opts.Self = self
	}
	set, err := loadAll(opts.Files)
	if err != nil {
		return nil, err
	}
	if len(set.Meshes) != 1 {
		return nil, fmt.Errorf("local: want exactly one Mesh (swimlane.dev/v1alpha1) among %s, found %d", strings.Join(opts.Files, ", "), len(set.Meshes))
	}
	m := &Mesh{opts: opts, log: opts.Log, reg: registry.New(), gateways: map[string]string{},
		spec: set.Meshes[0].Spec, meshFile: set.Meshes[0].File, running: map[string]*workload{}, generation: map[string]int{}}
	if err := m.checkWorkloads(set.Meshes[0]); err != nil {
		return nil, err
	}
	// Extra config named by the mesh file is loaded with it, so a bad one fails startup too.
	if extra := m.extraConfig(); len(extra) > 0 {
		more, err := config.LoadFiles(extra...)
		if err != nil {
			return nil, err
		}
		set.Merge(more)
	}

	m.cp, err = control.New(m.reg, m.log)
	if err != nil {
		return nil, err
	}
	if err := m.cp.SetConfig(set); err != nil {
		return nil, err
	}
	cpLis, err := net.Listen("tcp", opts.ControlAddr)
	if err != nil {
		return nil, fmt.Errorf("local: control plane listen: %w", err)
	}
	m.cpAddr = cpLis.Addr().String()
	m.goRun(func() { _ = m.cp.Serve(ctx, cpLis) })
	m.goRun(func() { m.cp.Run(ctx) })
	m.goRun(func() { m.watchConfig(ctx) })

	m.metrics = proxy.NewMetrics()
	m.admin = proxy.NewAdmin(m.metrics)
	adminLis, err := net.Listen("tcp", opts.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("local: admin listen: %w", err)
	}
	m.adminAddr = adminLis.Addr().String()
	adminSrv := &http.Server{Handler: m.admin.Handler(), ReadHeaderTimeout: 10 * time.Second}
	m.goRun(func() { _ = adminSrv.Serve(adminLis) })
	m.goRun(func() { <-ctx.Done(); adminSrv.Close() })

	if err := m.startGateways(ctx); err != nil {
		return nil, err
	}
	for _, w := range m.spec.Workloads {
		if err := m.startWorkload(ctx, w); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Mesh) goRun(f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// Wait blocks until the mesh has stopped (its context ended and every process exited).
func (m *Mesh) Wait() { m.wg.Wait() }

// ControlAddr is the control plane's gRPC address.
func (m *Mesh) ControlAddr() string { return m.cpAddr }

// AdminAddr is the proxies' admin API address.
func (m *Mesh) AdminAddr() string { return m.adminAddr }

// newProxy returns a proxy wired to the mesh's metrics, admin API and access log.
func (m *Mesh) newProxy(node string) *proxy.Proxy {
	p := proxy.New(node, m.log)
	p.UseMetrics(m.metrics)
	p.AccessLog = m.opts.AccessLog
	m.admin.Add(p)
	return p
}

// GatewayAddr returns the address gateway name listens on.
func (m *Mesh) GatewayAddr(name string) string { return m.gateways[name] }

// Snapshot returns the control plane's current snapshot.
func (m *Mesh) Snapshot() *snapshot.Snapshot {
	cur, _ := m.cp.Current()
	return cur.Snapshot
}

// Control returns the control plane.
func (m *Mesh) Control() *control.Server { return m.cp }

// WaitReady blocks until every workload is registered and every proxy runs a snapshot that
// includes them all (or ctx ends). Both matter: a workload in the registry is not yet known to
// the proxies that must route to it.
func (m *Mesh) WaitReady(ctx context.Context) error {
	want := len(m.spec.Workloads)
	var regVersion uint64
	for {
		ws, v, changed := m.reg.List()
		if len(ws) >= want {
			regVersion = v
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("local: %d of %d workloads ready: %w", len(ws), want, ctx.Err())
		case <-changed:
		}
	}
	return m.waitPropagated(ctx, regVersion)
}

// waitPropagated waits until the control plane has compiled registry version regVersion (or
// a later one) and every proxy runs that snapshot.
func (m *Mesh) waitPropagated(ctx context.Context, regVersion uint64) error {
	var version uint64
	for {
		cur, changed := m.cp.Current()
		if cur.RegistryVersion >= regVersion {
			version = cur.Version
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		behind := 0
		for _, p := range m.admin.Proxies() {
			if p.Snapshot().Version < version {
				behind++
			}
		}
		if behind == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("local: %d proxies lack snapshot %d: %w", behind, version, ctx.Err())
		case <-tick.C:
		}
	}
}

// Summary describes which services run in which lanes, for the ready message.
func (m *Mesh) Summary() string {
	snap := m.Snapshot()
	var b strings.Builder
	for _, svc := range snap.Services {
		lanes := svc.Lanes()
		names := make([]string, len(lanes))
		for i, l := range lanes {
			names[i] = string(l)
		}
		fmt.Fprintf(&b, "  %-28s lanes: %s\n", svc.Name, strings.Join(names, ", "))
	}
	return b.String()
}

func (m *Mesh) extraConfig() []string {
	dir := filepath.Dir(m.meshFile)
	var out []string
	for _, p := range m.spec.Config {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		out = append(out, p)
	}
	return out
}

// configFiles are all files whose edits change the config: the given ones and the extra ones.
func (m *Mesh) configFiles() []string {
	return append(append([]string{}, m.opts.Files...), m.extraConfig()...)
}

func loadAll(files []string) (*config.Set, error) {
	if len(files) == 0 {
		return nil, errors.New("local: no file given (-f FILE)")
	}
	return config.LoadFiles(files...)
}

// reload reads every config file again and hands the result to the control plane, which
// adopts it whole or rejects it whole; then the workloads are made those of the new Mesh file.
func (m *Mesh) reload(ctx context.Context) {
	set, err := config.LoadFiles(m.opts.Files...)
	if err == nil {
		if extra := m.extraConfig(); len(extra) > 0 {
			var more *config.Set
			if more, err = config.LoadFiles(extra...); err == nil {
				set.Merge(more)
			}
		}
	}
	if err == nil && len(set.Meshes) != 1 {
		err = fmt.Errorf("local: want exactly one Mesh, found %d", len(set.Meshes))
	}
	if err == nil {
		err = m.checkWorkloads(set.Meshes[0])
	}
	if err == nil {
		err = m.cp.SetConfig(set)
	}
	if err != nil {
		m.log.Error("config rejected; the last good config keeps serving", "err", err)
		return
	}
	cur, _ := m.cp.Current()
	m.log.Info("config applied", "version", cur.Version)
	next := set.Meshes[0].Spec
	if fmt.Sprint(m.spec.Gateways) != fmt.Sprint(next.Gateways) || m.spec.LaneLabel != next.LaneLabel {
		m.log.Warn("config: changes to gateways or the lane label take effect at the next start; everything else applies now")
	}
	m.mu.Lock()
	m.spec.Workloads = next.Workloads
	m.mu.Unlock()
	m.syncWorkloads(ctx, next.Workloads)
}

func (m *Mesh) startGateways(ctx context.Context) error {
	for _, g := range m.spec.Gateways {
		addr := g.Address
		if addr == "" {
			addr = "127.0.0.1"
		}
		addr = net.JoinHostPort(addr, strconv.Itoa(g.Port))
		if o, ok := m.opts.GatewayAddrs[g.Name]; ok {
			addr = o
		}
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("local: gateway %s: %w", g.Name, err)
		}
		m.gateways[g.Name] = lis.Addr().String()
		p := m.newProxy("gateway~" + g.Name)
		host, _, _ := net.SplitHostPort(m.gateways[g.Name])
		remap := g.Ports
		p.GatewayListen = func(port int) (net.Listener, error) {
			// Istio Gateway ports (80, 31400) are remapped on a laptop where they may be
			// taken or need root; the Mesh gateway's ports map says how (0: a free one).
			if local, ok := remap[strconv.Itoa(port)]; ok {
				port = local
			}
			return net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		}
		m.goRun(func() { _ = p.Subscribe(ctx, m.cpAddr, nil) })
		m.goRun(func() { _ = p.ServeGateway(ctx, lis, g.Name) })
	}
	return nil
}

// Lanes returns the lane of each workload, sorted by workload name.
func (m *Mesh) lanes() []string {
	var out []string
	for _, w := range m.spec.Workloads {
		out = append(out, w.Name+"="+w.Labels[m.laneLabel()])
	}
	sort.Strings(out)
	return out
}

func (m *Mesh) laneLabel() string {
	if m.spec.LaneLabel != "" {
		return m.spec.LaneLabel
	}
	return "swimlane"
}

func freeListener() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// reserveAppPort finds a free port for an app to bind itself, to keep until release (once
// the app is gone). The app binds it a moment after it is found free, so it is picked below the
// kernel's ephemeral range: there, no outgoing connection and no port-0 bind of another
// process can take it in that moment (an ephemeral port, as port 0 gives, did get taken under
// load).
//
// Two workloads started together would otherwise be given the same port, both found free
// before either app bound it: within the process, the set of ports handed out prevents that,
// and across swimlane processes, a claim on the port (claimPort).
func reserveAppPort() (port int, release func(), err error) {
	lo, hi := 20000, ephemeralLow()-1
	for try := 0; hi-lo > 1000 && try < 50; try++ {
		port := lo + rand.IntN(hi-lo+1)
		if !handedOut.take(port) {
			continue
		}
		unclaim, ok := claimPort(port)
		if !ok {
			handedOut.give(port)
			continue
		}
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			l.Close()
			return port, func() { unclaim(); handedOut.give(port) }, nil
		}
		unclaim() // bound by someone: it stays handed out, so it is not tried again
	}
	l, err := freeListener() // no room below the ephemeral range: take the race
	if err != nil {
		return 0, nil, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, func() {}, nil
}

// handedOut is the set of app ports reserveAppPort gave out and not taken back.
var handedOut = &portSet{ports: map[int]bool{}}

type portSet struct {
	mu    sync.Mutex
	ports map[int]bool
}

// take adds port and reports whether it was not in the set yet.
func (s *portSet) take(port int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ports[port] {
		return false
	}
	s.ports[port] = true
	return true
}

// give takes port out of the set.
func (s *portSet) give(port int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ports, port)
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's default when it
// cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	if f := strings.Fields(string(b)); len(f) == 2 {
		if n, err := strconv.Atoi(f[0]); err == nil {
			return n
		}
	}
	return 32768
}

// readinessPoll is how often a starting workload's port is probed.
const readinessPoll = 20 * time.Millisecond

// GatewayNames lists the gateways, sorted.
func (m *Mesh) GatewayNames() []string {
	names := make([]string, 0, len(m.gateways))
	for n := range m.gateways {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Command swimbench is Swimlane's benchmark harness: it measures Swimlane's proxies against a
// direct client -> upstream baseline and against peers (Go's httputil.ReverseProxy, nginx,
// HAProxy, Caddy), all in front of the same upstream, in one run, interleaved, and writes a
// markdown report. See bench/README.md.
//
//	swimbench [-smoke] [-runs N] [-duration D] [-targets a,b] [-protocols http1,h2c,grpc,tcp]
//	swimbench upstream -listen ADDR      (the 1 KiB upstream; started by the harness)
//	swimbench tcpload -addr ADDR [-connect SVC:PORT] [-c N] [-qps Q] [-t D]
//	                                      (the TCP load generator; started by the harness)
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

var (
	smoke      = flag.Bool("smoke", false, "short run: 1 run, ~1-2 s per target, HTTP/1.1 only unless -protocols is given, no taskset needed; report to a temp dir; exit 1 only if a target could not be measured at all")
	runs       = flag.Int("runs", 3, "interleaved runs (medians are reported)")
	duration   = flag.Duration("duration", 4*time.Second, "length of the fixed-rate (32 connections) and maximum-rate runs")
	duration4  = flag.Duration("duration4", 2*time.Second, "length of each 4-connection fixed-rate run (500, 1000, 1500 qps)")
	targetsF   = flag.String("targets", strings.Join(allTargets, ","), "targets, comma-separated: "+strings.Join(allTargets, ","))
	protocolsF = flag.String("protocols", strings.Join(allProtocols, ","), "protocols, comma-separated: "+strings.Join(allProtocols, ","))
	outDir     = flag.String("out", "", "results folder (default bench/results, or a temp dir with -smoke)")
	binDir     = flag.String("bin", "", "folder of the swimlane, swimlane-proxy and goproxy binaries (default bench/.bin; built if missing)")
	rebuild    = flag.Bool("build", true, "build the binaries into -bin before running")
	pin        = flag.Bool("pin", true, "pin proxies to CPU 1 and load generator, upstream and control plane to CPU 0 with taskset (off if taskset or a second CPU is missing)")
	gomaxprocs = flag.Int("gomaxprocs", 0, "GOMAXPROCS of the Swimlane proxies in the main runs (0: Go's default, which follows the pinning: 1)")
	largeN     = flag.Int("large-services", 1000, "services in the large config (3 lanes each)")
	memDur     = flag.Duration("memory-duration", 3*time.Second, "length of the 1000 rps run of the memory measurements")
	memory     = flag.Bool("memory", true, "measure the sidecar's memory unpinned with GOMAXPROCS default and 1, idle, at 1000 rps and with the large config")
)

const (
	cpuLoad  cpuSet = "0" // load generator, upstreams, control plane, harness
	cpuProxy cpuSet = "1" // the proxy under test, alone
)

var tasksetBin = "taskset"

type bench struct {
	benchDir, rootDir, dir string
	tools                  map[string]string // tool -> path ("" = not available)
	toolNotes              map[string]string
	upHTTP, upGRPC, upTCP  string
	control                string
	adminOut, adminIn      string
	inbound2hop            map[string]string
	targets, protos        []string
	// samples[proto][target] is one metrics map per run.
	samples   map[string]map[string][]map[string]float64
	skipped   map[string]map[string]string // why a target did not run for a protocol
	failed    map[string]map[string]string // why a target could not be measured
	started   time.Time
	loadStart string
	rev       string
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "upstream":
			runUpstream(os.Args[2:])
			return
		case "tcpload":
			runTCPLoad(os.Args[2:])
			return
		}
	}
	flag.Parse()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "swimbench: interrupted, stopping everything")
		stopAll()
		os.Exit(130)
	}()
	code := run()
	stopAll()
	os.Exit(code)
}

func run() int {
	b := &bench{started: time.Now(), loadStart: loadavg(), samples: map[string]map[string][]map[string]float64{},
		skipped: map[string]map[string]string{}, failed: map[string]map[string]string{}}
	if *smoke {
		*runs, *duration, *duration4 = 1, 2*time.Second, time.Second
		if !flagSet("protocols") {
			*protocolsF = "http1"
		}
		if !flagSet("memory") {
			*memory = false
		}
	}
	if err := b.setup(); err != nil {
		fmt.Fprintln(os.Stderr, "swimbench:", err)
		return 1
	}
	defer os.RemoveAll(b.dir)
	if err := b.startShared(); err != nil {
		fmt.Fprintln(os.Stderr, "swimbench:", err)
		return 1
	}
	for r := 0; r < *runs; r++ {
		for _, proto := range b.protos {
			order := slices.Clone(b.targets)
			// Interleave: each run starts the rotation one target later, so no target is
			// always first (cold machine) or last.
			k := r % len(order)
			order = append(order[k:], order[:k]...)
			for _, t := range order {
				b.measureOne(r, proto, t)
			}
		}
		if *memory {
			b.memoryRun(r)
		}
	}
	stopAll()
	path, err := b.writeReport()
	if err != nil {
		fmt.Fprintln(os.Stderr, "swimbench:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "\nswimbench: results written to %s (%s)\n", path, time.Since(b.started).Round(time.Second))
	failed := 0
	for _, m := range b.failed {
		failed += len(m)
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "swimbench: %d target/protocol pairs could not be measured (see the report)\n", failed)
		return 1
	}
	return 0
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (b *bench) setup() error {
	exe, _ := os.Getwd()
	// bench/ is where go.mod of this module is; find it from the working directory.
	dir := exe
	for dir != "/" && !fileExists(filepath.Join(dir, "cmd", "swimbench", "main.go")) {
		dir = filepath.Dir(dir)
	}
	if dir == "/" {
		return fmt.Errorf("run from the bench folder or below it (go run ./cmd/swimbench)")
	}
	b.benchDir, b.rootDir = dir, filepath.Dir(dir)
	if *binDir == "" {
		*binDir = filepath.Join(dir, ".bin")
	}
	var err error
	if b.dir, err = os.MkdirTemp("", "swimbench-"); err != nil {
		return err
	}
	for _, t := range strings.Split(*targetsF, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if !slices.Contains(allTargets, t) {
			return fmt.Errorf("unknown target %q (want %s)", t, strings.Join(allTargets, ","))
		}
		b.targets = append(b.targets, t)
	}
	for _, p := range strings.Split(*protocolsF, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !slices.Contains(allProtocols, p) {
			return fmt.Errorf("unknown protocol %q (want %s)", p, strings.Join(allProtocols, ","))
		}
		b.protos = append(b.protos, p)
	}
	if !slices.Contains(b.targets, "direct") {
		b.targets = append([]string{"direct"}, b.targets...) // the baseline is always measured
	}
	b.findTools()
	if b.tools["fortio"] == "" {
		return fmt.Errorf("fortio not found: run bench/install.sh (it installs fortio.org/fortio@v1.68.2 into bench/.tools)")
	}
	if *pin && (b.tools["taskset"] == "" || runtime.NumCPU() < 2) {
		if !*smoke {
			logf("warning: pinning off (taskset: %q, CPUs: %d): per-core figures are not meaningful", b.tools["taskset"], runtime.NumCPU())
		}
		*pin = false
	}
	if *pin {
		tasksetBin = b.tools["taskset"]
		// The harness itself (and the load generators it starts) stays off the proxy's CPU.
		_ = exec.Command(tasksetBin, "-a", "-p", "-c", string(cpuLoad), fmt.Sprint(os.Getpid())).Run()
	}
	b.rev = b.revision()
	if *rebuild || !fileExists(filepath.Join(*binDir, "swimlane-proxy")) {
		logf("building swimlane, swimlane-proxy (repo root) and goproxy into %s", *binDir)
		build := func(dir string, pkgs ...string) error {
			cmd := exec.Command("go", append([]string{"build", "-o", *binDir + "/"}, pkgs...)...)
			cmd.Dir = dir
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			return cmd.Run()
		}
		if err := build(b.rootDir, "./cmd/swimlane", "./cmd/swimlane-proxy"); err != nil {
			return fmt.Errorf("building Swimlane: %w", err)
		}
		if err := build(b.benchDir, "./cmd/goproxy", "./cmd/swimbench"); err != nil {
			return fmt.Errorf("building goproxy: %w", err)
		}
	}
	return nil
}

func (b *bench) bin(name string) string { return filepath.Join(*binDir, name) }

// findTools looks for each tool in bench/.tools, PATH and /usr/sbin.
func (b *bench) findTools() {
	b.tools, b.toolNotes = map[string]string{}, map[string]string{}
	for _, t := range []string{"fortio", "caddy", "wrk", "h2load", "nginx", "haproxy", "taskset"} {
		for _, c := range []string{filepath.Join(b.benchDir, ".tools", t), "/usr/sbin/" + t, "/usr/local/bin/" + t} {
			if fileExists(c) {
				b.tools[t] = c
				break
			}
		}
		if b.tools[t] == "" {
			if p, err := exec.LookPath(t); err == nil {
				b.tools[t] = p
			}
		}
		if b.tools[t] == "" {
			b.toolNotes[t] = "not available"
		}
	}
}

// startShared starts what every target shares for the whole run: the upstreams (HTTP/1.1 +
// h2c, gRPC, TCP echo) and Swimlane's control plane, all on the load generator's CPU.
func (b *bench) startShared() error {
	b.upHTTP, b.upGRPC, b.upTCP = freeAddr(), freeAddr(), freeAddr()
	b.control, b.adminOut, b.adminIn = freeAddr(), freeAddr(), freeAddr()
	b.inbound2hop = map[string]string{"http1": freeAddr(), "h2c": freeAddr(), "grpc": freeAddr(), "tcp": freeAddr()}
	p, err := start(b.dir, "upstream", cpuLoad, nil, b.bin("swimbench"), "upstream", "-listen", b.upHTTP)
	if err != nil {
		return err
	}
	if err := waitPort(p, b.upHTTP, 10*time.Second); err != nil {
		return err
	}
	if slices.Contains(b.protos, "grpc") {
		p, err := start(b.dir, "upstream-grpc", cpuLoad, nil, b.tools["fortio"], "server", "-grpc-port", b.upGRPC,
			"-http-port", freeAddr(), "-redirect-port", "disabled", "-tcp-port", "disabled", "-udp-port", "disabled", "-loglevel", "Warning")
		if err != nil {
			return err
		}
		if err := waitPort(p, b.upGRPC, 10*time.Second); err != nil {
			return err
		}
	}
	if slices.Contains(b.protos, "tcp") {
		p, err := start(b.dir, "upstream-tcp", cpuLoad, nil, b.tools["fortio"], "tcp-echo", "-tcp-port", b.upTCP, "-loglevel", "Warning")
		if err != nil {
			return err
		}
		if err := waitPort(p, b.upTCP, 10*time.Second); err != nil {
			return err
		}
	}
	mesh := filepath.Join(b.dir, "mesh.yaml")
	if err := os.WriteFile(mesh, []byte(b.meshFile(0)), 0o644); err != nil {
		return err
	}
	p, err = start(b.dir, "control", cpuLoad, nil, b.bin("swimlane"), "control", "-f", mesh, "--listen", b.control)
	if err != nil {
		return err
	}
	return waitPort(p, b.control, 15*time.Second)
}

// meshFile is the Mesh file of the control plane: per protocol a one-hop service (its
// endpoint is the upstream) and a two-hop service (its endpoint is the inbound sidecar in
// front of the upstream), every endpoint in lane "bench" but TCP's; plus large services of 3
// lanes each on dead ports when large > 0.
func (b *bench) meshFile(large int) string {
	var s strings.Builder
	s.WriteString("apiVersion: swimlane.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: bench\nspec:\n  services:\n")
	for _, name := range benchServices() {
		fmt.Fprintf(&s, "  - {name: %s, port: %d, selector: {app: %s}}\n", name, servicePort, name)
	}
	for i := 0; i < large; i++ {
		fmt.Fprintf(&s, "  - {name: svc-%04d, port: 8080, selector: {app: svc-%04d}}\n", i, i)
	}
	s.WriteString("  workloads:\n")
	workload := func(name, lane, proto, addr string) {
		fmt.Fprintf(&s, "  - {name: %s, labels: {app: %s, swimlane: %s}, protocol: %s, address: %q}\n", name, name, lane, svcProto[proto], addr)
	}
	for _, proto := range allProtocols {
		if name, ok := svc1hop[proto]; ok {
			workload(name, laneName, proto, b.upstreamAddr(proto))
		}
		lane := laneName
		if proto == "tcp" {
			// Raw TCP carries no lane: the outbound sidecar picks the baseline's endpoint.
			lane = baselineLane
		}
		workload(svc2hop[proto], lane, proto, b.inbound2hop[proto])
	}
	for i := 0; i < large; i++ {
		for j, l := range []string{"main", "feat-a", "feat-b"} {
			fmt.Fprintf(&s, "  - {name: svc-%04d-%s, labels: {app: svc-%04d, swimlane: %s}, address: \"127.0.0.1:%d\"}\n", i, l, i, l, 1+(i*3+j)%1000)
		}
	}
	return s.String()
}

func (b *bench) measureOne(run int, proto, target string) {
	if ok, why := b.supported(target, proto); !ok {
		if b.skipped[proto] == nil {
			b.skipped[proto] = map[string]string{}
		}
		b.skipped[proto][target] = why
		return
	}
	logf("run %d/%d %s %s", run+1, *runs, proto, target)
	m, err := b.measure(proto, target)
	if err != nil {
		logf("  FAILED: %v", err)
		if b.failed[proto] == nil {
			b.failed[proto] = map[string]string{}
		}
		b.failed[proto][target] = err.Error()
		return
	}
	if b.samples[proto] == nil {
		b.samples[proto] = map[string][]map[string]float64{}
	}
	b.samples[proto][target] = append(b.samples[proto][target], m)
	logf("  c32@1000: p50 %.3f p99 %.3f ms, cpu/1k %.4f vCPU; max %.0f rps (proxy %.2f vCPU); pss idle %.1f load %.1f MiB",
		m["c32_p50"], m["c32_p99"], m["cpu_1k"], m["max_rps"], m["max_cpu"], m["pss_idle"], m["pss_load"])
}

// measure starts target for proto, runs every load against it and stops it.
func (b *bench) measure(proto, target string) (map[string]float64, error) {
	in, err := b.startTarget(target, proto)
	if err != nil {
		return nil, err
	}
	defer in.stop()
	m := map[string]float64{"hops": float64(in.hops)}
	proxy := len(in.measure) > 0
	time.Sleep(200 * time.Millisecond)
	if proxy {
		m["pss_idle"] = in.pssMiB()
	}
	if !*smoke { // warm-up: connection pools, Go heap growth
		if _, err := b.runLoad(in, 1000, 32, time.Second); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	r, err := b.runLoad(in, 1000, 32, *duration)
	if err != nil {
		return nil, err
	}
	m["c32_p50"], m["c32_p90"], m["c32_p99"], m["c32_qps"] = r.p50, r.p90, r.p99, r.qps
	m["errors"] += float64(r.errs)
	if proxy {
		m["cpu_1k"] = r.cpu / r.seconds / (r.qps / 1000)
		m["pss_load"] = in.pssMiB()
	}
	if proto == "http1" && !*smoke {
		for _, q := range []int{500, 1000, 1500} {
			r, err := b.runLoad(in, float64(q), 4, *duration4)
			if err != nil {
				return nil, err
			}
			k := fmt.Sprintf("c4_%d_", q)
			m[k+"p50"], m[k+"p90"], m[k+"p99"], m[k+"qps"] = r.p50, r.p90, r.p99, r.qps
			m["errors"] += float64(r.errs)
		}
	}
	r, err = b.runLoad(in, 0, 32, *duration)
	if err != nil {
		return nil, err
	}
	m["max_rps"] = r.qps
	m["errors"] += float64(r.errs)
	m["max_tool_"+r.tool] = 1
	if proxy {
		m["max_cpu"] = r.cpu / r.seconds
		if m["max_cpu"] > 0 {
			m["rps_core"] = r.qps / m["max_cpu"]
		}
	}
	return m, nil
}

// loadavg is /proc/loadavg's 1, 5 and 15 minute figures: other work on the machine skews
// every figure, so the report records it.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

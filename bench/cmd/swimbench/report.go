package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

// med is the median over runs of metric k for proto/target (NaN when never measured).
func (b *bench) med(proto, target, k string) float64 {
	var v []float64
	for _, m := range b.samples[proto][target] {
		if x, ok := m[k]; ok && !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// added is the latency a target adds per hop over direct, for percentile key k (medians).
func (b *bench) added(proto, target, k string) float64 {
	hops := b.med(proto, target, "hops")
	if target == "direct" || hops == 0 || math.IsNaN(hops) {
		return math.NaN()
	}
	return (b.med(proto, target, k) - b.med(proto, "direct", k)) / hops
}

func f(x float64, prec int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "—"
	}
	return fmt.Sprintf("%.*f", prec, x)
}

func ratio(a, c float64) string {
	if math.IsNaN(a) || math.IsNaN(c) || c <= 0 || a < 0 {
		return "—"
	}
	return fmt.Sprintf("%.2fx", a/c)
}

// noiseFloorMs is the added latency below which ratios are not given.
const noiseFloorMs = 0.05

func (b *bench) measured(proto string) []string {
	var out []string
	for _, t := range allTargets {
		if len(b.samples[proto][t]) > 0 {
			out = append(out, t)
		}
	}
	return out
}

func cmdOut(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if err != nil && s == "" {
		return "not available"
	}
	return s
}

// revision is the Swimlane commit the binaries are built from (read before building: others
// may commit while the benchmark runs).
func (b *bench) revision() string {
	rev := cmdOut("git", "-C", b.rootDir, "rev-parse", "--short", "HEAD")
	if out, _ := exec.Command("git", "-C", b.rootDir, "status", "--porcelain", "--", "cmd", "internal").Output(); len(out) > 0 {
		rev += " (with uncommitted changes)"
	}
	return rev + ", built " + time.Now().Format("15:04:05")
}

func (b *bench) machine() string {
	var s strings.Builder
	model := "unknown"
	if c, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(c), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	memTotal := ""
	if c, err := os.ReadFile("/proc/meminfo"); err == nil {
		memTotal = strings.TrimSpace(strings.TrimPrefix(strings.Split(string(c), "\n")[0], "MemTotal:"))
	}
	osName := "unknown"
	if c, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(c), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				osName = strings.Trim(v, `"`)
			}
		}
	}
	rev := b.rev
	tool := func(t string, args ...string) string {
		if b.tools[t] == "" {
			return "not available"
		}
		return cmdOut(b.tools[t], args...)
	}
	fmt.Fprintf(&s, "| | |\n|---|---|\n")
	fmt.Fprintf(&s, "| date | %s |\n", b.started.Format(time.RFC3339))
	fmt.Fprintf(&s, "| CPUs (nproc) | %d |\n| CPU model | %s |\n| memory | %s |\n| OS | %s |\n| kernel | %s |\n", runtime.NumCPU(), model, memTotal, osName, strings.TrimSpace(string(kernel)))
	fmt.Fprintf(&s, "| Go | %s |\n| Swimlane commit | %s |\n", cmdOut("go", "version"), rev)
	fmt.Fprintf(&s, "| fortio | %s |\n| wrk | %s |\n| h2load | %s |\n", tool("fortio", "version"), tool("wrk", "-v"), tool("h2load", "--version"))
	fmt.Fprintf(&s, "| nginx | %s |\n| HAProxy | %s |\n| Caddy | %s |\n", tool("nginx", "-v"), tool("haproxy", "-v"), caddyVersion(b))
	pinning := "proxy under test alone on CPU 1 (taskset); load generator, upstreams, control plane and harness on CPU 0"
	if !*pin {
		pinning = "none (taskset or a second CPU missing, or -pin=false)"
	}
	gmp := "Go default (follows the CPU affinity: 1 when pinned)"
	if *gomaxprocs > 0 {
		gmp = fmt.Sprint(*gomaxprocs)
	}
	fmt.Fprintf(&s, "| load average (1/5/15 min) at start, at end | %s; %s (other processes on the machine skew every figure) |\n", b.loadStart, loadavg())
	fmt.Fprintf(&s, "| pinning | %s |\n| Swimlane GOMAXPROCS (main runs) | %s |\n", pinning, gmp)
	fmt.Fprintf(&s, "| runs | %d, interleaved (medians reported) |\n| durations | %s per fixed-rate (32 conns) and max-rate run, %s per 4-connection run, 1 s warm-up per target |\n",
		*runs, *duration, *duration4)
	return s.String()
}

func (b *bench) writeReport() (string, error) {
	dir := *outDir
	if dir == "" {
		if *smoke {
			var err error
			if dir, err = os.MkdirTemp("", "swimbench-smoke-"); err != nil {
				return "", err
			}
		} else {
			dir = filepath.Join(b.benchDir, "results")
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := b.started.Format("2006-01-02-150405")
	if *smoke {
		name += "-smoke"
	}
	var s strings.Builder
	title := "Swimlane benchmark"
	if *smoke {
		title += " (smoke run: too short to quote)"
	}
	fmt.Fprintf(&s, "# %s, %s\n\nProduced by `make bench` (bench/cmd/swimbench; see bench/README.md for what each figure means and how it is measured).\n\n## Machine\n\n%s\n", title, b.started.Format("2006-01-02"), b.machine())
	b.writeChecks(&s)
	for _, proto := range b.protos {
		b.writeProto(&s, proto)
	}
	b.writeMemory(&s)
	b.writeNotes(&s)
	path := filepath.Join(dir, name+".md")
	if err := os.WriteFile(path, []byte(s.String()), 0o644); err != nil {
		return "", err
	}
	raw, _ := json.MarshalIndent(map[string]any{"samples": b.samples, "skipped": b.skipped, "failed": b.failed}, "", " ")
	if err := os.WriteFile(filepath.Join(dir, name+".json"), raw, 0o644); err != nil {
		return "", err
	}
	fmt.Println(s.String())
	return path, nil
}

var protoTitle = map[string]string{"http1": "HTTP/1.1 (keep-alive)", "h2c": "h2c (HTTP/2 cleartext)", "grpc": "gRPC unary (fortio ping, 1 KiB)", "tcp": "TCP (echo, 1 KiB messages)"}

func (b *bench) writeProto(s *strings.Builder, proto string) {
	ts := b.measured(proto)
	fmt.Fprintf(s, "## %s\n\n", protoTitle[proto])
	if len(ts) == 0 {
		fmt.Fprintf(s, "Nothing measured.\n\n")
		return
	}
	maxTool := map[string]string{"http1": "wrk -t1 -c32", "h2c": "h2load -t1 -c32 -m1", "grpc": "fortio -qps 0 -c 32", "tcp": "swimbench tcpload -qps 0 -c 32"}[proto]
	latTool := "fortio"
	if proto == "tcp" {
		latTool = "swimbench tcpload: 1 KiB sent, its full echo awaited; see the notes"
	}
	fmt.Fprintf(s, "Latency at a fixed 1000 qps over 32 connections (%s), ms; *added* is the target's minus direct's, per hop. CPU is the proxy processes' user+system time from /proc at that rate, in vCPU per 1000 rps. Max rps: %s; rps per core = max rps / proxy vCPU used at max. PSS from /proc/PID/smaps_rollup, MiB. Swimlane two hops: two sidecars, CPU and PSS summed.\n\n", latTool, maxTool)
	s.WriteString("| target | p50 | p90 | p99 | added p50/hop | added p90/hop | added p99/hop | vCPU per 1000 rps | max rps | proxy vCPU at max | rps per core | PSS idle | PSS at 1000 rps | errors |\n")
	s.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range ts {
		fmt.Fprintf(s, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", t,
			f(b.med(proto, t, "c32_p50"), 3), f(b.med(proto, t, "c32_p90"), 3), f(b.med(proto, t, "c32_p99"), 3),
			f(b.added(proto, t, "c32_p50"), 3), f(b.added(proto, t, "c32_p90"), 3), f(b.added(proto, t, "c32_p99"), 3),
			f(b.med(proto, t, "cpu_1k"), 4), f(b.med(proto, t, "max_rps"), 0), f(b.med(proto, t, "max_cpu"), 2),
			f(b.med(proto, t, "rps_core"), 0), f(b.med(proto, t, "pss_idle"), 1), f(b.med(proto, t, "pss_load"), 1),
			f(b.med(proto, t, "errors"), 0))
	}
	s.WriteString("\n")
	if proto == "http1" && !math.IsNaN(b.med(proto, "direct", "c4_1000_p50")) {
		s.WriteString("Latency over 4 connections at 500 / 1000 / 1500 qps (fortio), ms: p50 / p90 / p99, and the added p50 / p99 per hop.\n\n")
		s.WriteString("| target | 500 qps | added | 1000 qps | added | 1500 qps | added |\n|---|---|---|---|---|---|---|\n")
		for _, t := range ts {
			fmt.Fprintf(s, "| %s |", t)
			for _, q := range []int{500, 1000, 1500} {
				k := fmt.Sprintf("c4_%d_", q)
				fmt.Fprintf(s, " %s / %s / %s | %s / %s |", f(b.med(proto, t, k+"p50"), 3), f(b.med(proto, t, k+"p90"), 3), f(b.med(proto, t, k+"p99"), 3),
					f(b.added(proto, t, k+"p50"), 3), f(b.added(proto, t, k+"p99"), 3))
			}
			s.WriteString("\n")
		}
		s.WriteString("\n")
	}
	var ps []string
	for _, p := range peers {
		if slices.Contains(ts, p) {
			ps = append(ps, p)
		}
	}
	for _, sw := range []string{"swimlane-1hop", "swimlane-2hop"} {
		if !slices.Contains(ts, sw) {
			continue
		}
		fmt.Fprintf(s, "**%s** against direct and each peer (ratio = %s's figure / the other's; for latency and CPU lower is better, for rps higher is better):\n\n", sw, sw)
		s.WriteString("| figure | " + sw + " | ÷ direct |")
		for _, p := range ps {
			s.WriteString(" ÷ " + p + " |")
		}
		s.WriteString("\n|---|---|---|" + strings.Repeat("---|", len(ps)) + "\n")
		type row struct {
			name, key string
			prec      int
			addedLat  bool
		}
		rows := []row{{"p50 (ms)", "c32_p50", 3, false}, {"p90 (ms)", "c32_p90", 3, false}, {"p99 (ms)", "c32_p99", 3, false},
			{"added p50 per hop (ms)", "c32_p50", 3, true}, {"added p90 per hop (ms)", "c32_p90", 3, true}, {"added p99 per hop (ms)", "c32_p99", 3, true},
			{"vCPU per 1000 rps", "cpu_1k", 4, false}, {"max rps", "max_rps", 0, false}, {"rps per core", "rps_core", 0, false},
			{"PSS idle (MiB)", "pss_idle", 1, false}, {"PSS at 1000 rps (MiB)", "pss_load", 1, false}}
		for _, r := range rows {
			get := func(t string) float64 {
				if r.addedLat {
					return b.added(proto, t, r.key)
				}
				return b.med(proto, t, r.key)
			}
			v := get(sw)
			rt := func(c float64) string {
				// An added latency under the noise floor (or negative: faster than direct in
				// that run) makes any ratio meaningless.
				if r.addedLat && (v < noiseFloorMs || c < noiseFloorMs) {
					return "—"
				}
				return ratio(v, c)
			}
			fmt.Fprintf(s, "| %s | %s | %s |", r.name, f(v, r.prec), rt(get("direct")))
			for _, p := range ps {
				fmt.Fprintf(s, " %s |", rt(get(p)))
			}
			s.WriteString("\n")
		}
		s.WriteString("\n")
	}
}

func (b *bench) writeMemory(s *strings.Builder) {
	if len(b.samples["memory"]) == 0 {
		return
	}
	fmt.Fprintf(s, "## Sidecar memory (swimlane-proxy, outbound, unpinned)\n\nPSS in MiB, medians. Small config: the bench's %d services. Large config: %d services x 3 lanes (%d endpoints) more, from a second control plane; *applied* is the time from the sidecar's start until its snapshot holds every service.\n\n", len(benchServices()), *largeN, *largeN*3)
	s.WriteString("| sidecar | idle | at 1000 rps | large config idle | large config at 1000 rps | large config applied (s) | control plane PSS, large config |\n|---|---|---|---|---|---|---|\n")
	for _, v := range memoryVariants {
		if len(b.samples["memory"][v.name]) == 0 {
			continue
		}
		g := func(k string, p int) string { return f(b.med("memory", v.name, k), p) }
		fmt.Fprintf(s, "| %s | %s | %s | %s | %s | %s | %s |\n", v.name, g("pss_idle", 1), g("pss_load", 1), g("pss_idle_large", 1), g("pss_load_large", 1), g("apply_s_large", 2), g("control_pss_large", 1))
	}
	s.WriteString("\n")
}

// writeChecks compares with the targets.
func (b *bench) writeChecks(s *strings.Builder) {
	s.WriteString("## Targets (from the issue)\n\n| target | measured | verdict |\n|---|---|---|\n")
	verdict := func(ok bool, measured bool) string {
		switch {
		case !measured:
			return "not measured"
		case ok:
			return "met"
		}
		return "**missed**"
	}
	sw, gp := b.med("http1", "swimlane-1hop", "rps_core"), b.med("http1", "goproxy", "rps_core")
	r := sw / gp
	fmt.Fprintf(s, "| HTTP/1.1 max rps per core >= 1.3x httputil.ReverseProxy | %s vs %s rps per core: %s | %s |\n", f(sw, 0), f(gp, 0), ratio(sw, gp), verdict(r >= 1.3, !math.IsNaN(r)))
	c := b.med("http1", "swimlane-1hop", "cpu_1k")
	fmt.Fprintf(s, "| proxy CPU at 1000 rps <= 0.06 vCPU | %s vCPU (one hop, HTTP/1.1, 32 conns) | %s |\n", f(c, 4), verdict(c <= 0.06, !math.IsNaN(c)))
	for _, v := range memoryVariants {
		i, l := b.med("memory", v.name, "pss_idle"), b.med("memory", v.name, "pss_load")
		fmt.Fprintf(s, "| PSS <= 15 MiB idle (%s) | %s MiB | %s |\n", v.name, f(i, 1), verdict(i <= 15, !math.IsNaN(i)))
		fmt.Fprintf(s, "| PSS <= 30 MiB under load (%s) | %s MiB | %s |\n", v.name, f(l, 1), verdict(l <= 30, !math.IsNaN(l)))
	}
	s.WriteString("\n")
}

func (b *bench) writeNotes(s *strings.Builder) {
	var notes []string
	for _, proto := range b.protos {
		for _, t := range b.measured(proto) {
			if t != "direct" && *pin {
				if c := b.med(proto, t, "max_cpu"); c < 0.85 {
					notes = append(notes, fmt.Sprintf("%s %s did not saturate its core at max rate (%.2f vCPU used: the limit was the other core, which runs the load generator and upstream, or time the proxy spends waiting rather than computing): its rps per core is extrapolated as max rps / vCPU used.", proto, t, c))
				}
			}
			if q := b.med(proto, t, "c32_qps"); q < 950 {
				notes = append(notes, fmt.Sprintf("%s %s reached only %.0f of the 1000 qps asked at 32 connections.", proto, t, q))
			}
			if e := b.med(proto, t, "errors"); e > 0 {
				notes = append(notes, fmt.Sprintf("%s %s: %.0f failed requests (median per run).", proto, t, e))
			}
		}
		for _, t := range allTargets {
			if why, ok := b.skipped[proto][t]; ok {
				notes = append(notes, fmt.Sprintf("%s %s not run: %s.", proto, t, why))
			}
			if why, ok := b.failed[proto][t]; ok {
				notes = append(notes, fmt.Sprintf("%s %s could not be measured: %s", proto, t, oneLine(why)))
			}
		}
	}
	for what, why := range b.failed["memory"] {
		notes = append(notes, fmt.Sprintf("memory %s could not be measured: %s", what, oneLine(why)))
	}
	for t, n := range b.toolNotes {
		notes = append(notes, fmt.Sprintf("tool %s: %s.", t, n))
	}
	s.WriteString("## Notes\n\n")
	s.WriteString("- Same upstream (a Go net/http server answering 1 KiB, HTTP/1.1 and h2c on one port; fortio's gRPC ping server and TCP echo for gRPC and TCP), same payload, same connection counts, keep-alive on everywhere (nginx and HAProxy keep upstream connections pooled; nginx and HAProxy run one worker/thread, Go proxies follow the CPU affinity).\n")
	s.WriteString("- Every request carries `x-swimlane: bench` and every Swimlane endpoint is labelled with that lane, so lane routing runs on every Swimlane hop; Swimlane one hop is the outbound sidecar routing by Host, two hops add the inbound sidecar in front of the upstream (the real mesh path). gRPC reaches the outbound sidecar through HTTPS_PROXY (a CONNECT tunnel, as grpc-go apps in the mesh do). TCP one hop is the inbound sidecar; TCP two hops are a CONNECT tunnel through the outbound sidecar (as TCP apps in the mesh reach a service) to the inbound sidecar, whose endpoint is in the baseline lane (raw TCP carries no lane).\n")
	if slices.Contains(b.protos, "tcp") {
		s.WriteString("- TCP is loaded by `swimbench tcpload` for every target (fortio cannot open a CONNECT tunnel): each connection sends 1 KiB and waits for its whole echo. A message's latency runs from its scheduled send when the connection was still busy with the previous echo then (coordinated omission counted), from the actual send otherwise (Go's timers wake up to 1 ms late: the generator's lateness, not the target's). Its figures are not comparable with fortio's TCP figures in earlier reports.\n")
	}
	s.WriteString("- Added latency is a difference of two medians from separate runs, so it can be slightly negative (a peer within the noise of direct); ratios of added latency are left out (—) when either side is under 0.05 ms.\n")
	s.WriteString("- The load generator shares CPU 0 with the upstream: direct's max rps is that core's limit, and a proxy that is faster than it cannot show more (see the saturation notes).\n")
	for _, n := range notes {
		s.WriteString("- " + n + "\n")
	}
	s.WriteString("\n")
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// caddyVersion: a go-installed caddy may print "unknown"; the module version install.sh
// recorded says which it is.
func caddyVersion(b *bench) string {
	if b.tools["caddy"] == "" {
		return "not available"
	}
	v := cmdOut(b.tools["caddy"], "version")
	if rec, err := os.ReadFile(b.tools["caddy"] + ".version"); err == nil && (v == "unknown" || v == "") {
		v = strings.TrimSpace(string(rec))
	}
	return v
}

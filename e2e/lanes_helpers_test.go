package e2e

// Helpers shared by the lanes_*_test.go files: a mesh started from YAML with `swimlane up`,
// YAML builders for echo workloads, a keep-alive client that decodes echo's answers, a traffic
// loop that counts failures, and the `swimlane lanes` / `swimlane explain` CLIs.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/echo"
)

// lanesMesh is a running `swimlane up`.
type lanesMesh struct {
	p        *process
	dir      string            // the folder of the mesh file
	file     string            // the mesh file
	control  string            // control plane gRPC address
	admin    string            // admin API address (host:port)
	gateways map[string]string // gateway name -> base URL (http://addr)
}

// startLanesMesh writes meshYAML to mesh.yaml in a temp folder, runs `swimlane up -f` on it
// (plus extra args, such as more -f) on free ports, and waits until it is ready. When the test
// ends it stops the mesh and checks that no workload outlives it.
func startLanesMesh(t *testing.T, meshYAML string, extra ...string) *lanesMesh {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(file, []byte(meshYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"up", "-f", file}, extra...)
	args = append(args, "--control-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	p := start(t, args...)
	m := &lanesMesh{p: p, dir: dir, file: file, gateways: map[string]string{}}
	ready := p.waitFor(`Control plane: (\S+)\. Admin \(metrics\): http://(\S+)`, 60*time.Second)
	m.control, m.admin = ready[1], ready[2]
	p.waitFor(`Press Ctrl-C to stop`, 10*time.Second)
	for _, g := range regexp.MustCompile(`Gateway (\S+) listening on (\S+)`).FindAllStringSubmatch(p.out.String(), -1) {
		m.gateways[g[1]] = "http://" + g[2]
	}
	t.Cleanup(func() {
		pids := p.workloadPIDs()
		p.stop()
		for name, pid := range pids {
			if alive(pid) {
				t.Errorf("workload %s (pid %d) still runs after swimlane stopped", name, pid)
			}
		}
	})
	return m
}

// gateway returns the base URL of gateway name.
func (m *lanesMesh) gateway(t *testing.T, name string) string {
	t.Helper()
	u, ok := m.gateways[name]
	if !ok {
		t.Fatalf("no gateway %q in the ready output:\n%s", name, m.p.out.String())
	}
	return u
}

// appAddr returns the app address (host:port) of workload name, from its "workload started"
// log line; the last one wins (a workload started again gets a new port).
func (m *lanesMesh) appAddr(t *testing.T, name string) string {
	t.Helper()
	all := regexp.MustCompile(`msg="workload started" workload=`+regexp.QuoteMeta(name)+` .*?app=(\S+)`).FindAllStringSubmatch(m.p.out.String(), -1)
	if len(all) == 0 {
		t.Fatalf("no start line for workload %s", name)
	}
	return all[len(all)-1][1]
}

// lanesMeshYAML builds a Mesh file. gateways are "name=service"; services are service names
// (each selecting app: <name>, port 80); workloads are YAML list items (see echoWorkload).
// more is appended as is (more documents, starting with "---").
func lanesMeshYAML(gateways, services, workloads []string, more ...string) string {
	var b strings.Builder
	b.WriteString("apiVersion: swimlane.dev/v1alpha1\nkind: Mesh\nmetadata: {name: lanes-e2e}\nspec:\n  gateways:\n")
	for _, g := range gateways {
		name, svc, _ := strings.Cut(g, "=")
		fmt.Fprintf(&b, "  - {name: %s, port: 0, service: %s}\n", name, svc)
	}
	b.WriteString("  services:\n")
	for _, s := range services {
		fmt.Fprintf(&b, "  - {name: %s, port: 80, selector: {app: %s}}\n", s, s)
	}
	b.WriteString("  workloads:\n")
	for _, w := range workloads {
		b.WriteString(w)
	}
	for _, doc := range more {
		b.WriteString(doc)
	}
	return b.String()
}

// echoWorkload is a Mesh workload running `swimlane echo` as service app in lane l (no lane
// label when l is ""), with more echo flags (e.g. "--upstream", "http://back:80/").
func echoWorkload(name, app, l string, flags ...string) string {
	cmd := []string{"$SWIMLANE_BIN", "echo", "--service", app, "--lane", "$LANE"}
	cmd = append(cmd, flags...)
	return laneWorkloadYAML(name, app, l, cmd, nil, "")
}

// laneWorkloadYAML is a Mesh workload item. extra is more YAML fields, each line indented by 4.
func laneWorkloadYAML(name, app, l string, cmd []string, env map[string]string, extra string) string {
	quoted := make([]string, len(cmd))
	for i, a := range cmd {
		quoted[i] = strconv.Quote(a)
	}
	labels := "{app: " + app + "}"
	if l != "" {
		labels = "{app: " + app + ", swimlane: " + l + "}"
	}
	s := fmt.Sprintf("  - name: %s\n    labels: %s\n    command: [%s]\n", name, labels, strings.Join(quoted, ", "))
	if len(env) > 0 {
		var kv []string
		for k, v := range env {
			kv = append(kv, k+": "+strconv.Quote(v))
		}
		s += "    env: {" + strings.Join(kv, ", ") + "}\n"
	}
	return s + extra
}

// laneDoc is a Lane object (spec given as a YAML flow mapping body, e.g. "mode: strict").
func laneDoc(name, spec string) string {
	return fmt.Sprintf("---\napiVersion: swimlane.dev/v1alpha1\nkind: Lane\nmetadata: {name: %s}\nspec: {%s}\n", name, spec)
}

// lanesClient is a keep-alive client that never uses an environment proxy.
func lanesClient() *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second, DisableCompression: true,
	}}
}

// laneReply is one answered request.
type laneReply struct {
	status int
	header http.Header
	body   string
	answer echo.Answer // decoded when the body is echo's JSON
}

// laneHdrs is a request's headers as name, value pairs; a name may repeat.
type laneHdrs []string

// do sends a GET to url with headers and decodes echo's answer. An error is a transport
// error, or a body that is not echo's JSON when status is 200.
func laneGet(c *http.Client, url string, headers laneHdrs) (laneReply, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return laneReply{}, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return laneReply{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return laneReply{}, err
	}
	r := laneReply{status: resp.StatusCode, header: resp.Header, body: string(body)}
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &r.answer); err != nil {
			return r, fmt.Errorf("decode echo answer: %v: %q", err, body)
		}
	}
	return r, nil
}

// mustLaneGet is do that fails the test on an error or a non-200 status.
func mustLaneGet(t *testing.T, c *http.Client, url string, headers laneHdrs) laneReply {
	t.Helper()
	r, err := laneGet(c, url, headers)
	if err != nil {
		t.Fatalf("GET %s %v: %v", url, headers, err)
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET %s %v: status %d: %s", url, headers, r.status, r.body)
	}
	return r
}

// backLane is the lane the second hop of a chain was served in, or "error: ..." when the
// first hop could not reach it.
func backLane(a *echo.Answer) string {
	if a.UpstreamError != "" {
		return "error: " + a.UpstreamError
	}
	if a.Upstream == nil {
		return "error: no upstream answer"
	}
	return a.Upstream.Lane
}

// parallel runs f(0..n-1) on workers goroutines.
func laneParallel(n, workers int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// laneMany runs f for n users on 4 goroutines, each with its own keep-alive client; errors
// fail the test.
func laneMany(t *testing.T, n int, f func(c *http.Client, i int) error) {
	t.Helper()
	clients := make(chan *http.Client, 4)
	for i := 0; i < 4; i++ {
		clients <- lanesClient()
	}
	var mu sync.Mutex
	var errs []error
	laneParallel(n, 4, func(i int) {
		c := <-clients
		defer func() { clients <- c }()
		if err := f(c, i); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
	for len(clients) > 0 {
		(<-clients).CloseIdleConnections()
	}
	if len(errs) > 0 {
		t.Fatalf("%d of %d requests failed; first: %v", len(errs), n, errs[0])
	}
}

// laneWithinSigmas checks that count successes out of n are within k standard deviations of a
// binomial with probability p.
func laneWithinSigmas(t *testing.T, what string, count, n int, p, k float64) {
	t.Helper()
	mean := float64(n) * p
	sigma := math.Sqrt(float64(n) * p * (1 - p))
	dev := math.Abs(float64(count)-mean) / sigma
	t.Logf("%s: %d of %d (%.2f%%), expected %.0f ± %.1f (σ): %.2fσ off", what, count, n, 100*float64(count)/float64(n), mean, sigma, dev)
	if dev > k {
		t.Errorf("%s: %d of %d is %.1fσ from the expected %.0f (allowed %.0fσ)", what, count, n, dev, mean, k)
	}
}

// load is a client loop sending the same request until stopped, recording what each answer
// said (observe) and counting failures: transport errors, non-200 answers, and answers whose
// observation starts with "error:".
type laneLoad struct {
	t       *testing.T
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	seen    []string // every observation, in order
	fails   []string // the first failures, described
	failed  int
	stopped bool
}

// startLaneLoad runs workers loops of GET url with headers; observe turns an answer into what the
// test watches (e.g. backLane). It is stopped at the end of the test at the latest.
func startLaneLoad(t *testing.T, url string, headers laneHdrs, workers int, observe func(*echo.Answer) string) *laneLoad {
	l := &laneLoad{t: t, stop: make(chan struct{})}
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := lanesClient()
			defer c.CloseIdleConnections()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				r, err := laneGet(c, url, headers)
				obs := ""
				switch {
				case err != nil:
					obs = "error: " + err.Error()
				case r.status != http.StatusOK:
					obs = fmt.Sprintf("error: status %d: %s", r.status, strings.TrimSpace(r.body))
				default:
					obs = observe(&r.answer)
				}
				l.mu.Lock()
				l.seen = append(l.seen, obs)
				if strings.HasPrefix(obs, "error:") {
					l.failed++
					if len(l.fails) < 10 {
						l.fails = append(l.fails, fmt.Sprintf("request %d at %s: %s", len(l.seen), time.Now().Format("15:04:05.000"), obs))
					}
				}
				l.mu.Unlock()
			}
		}()
	}
	t.Cleanup(l.end)
	return l
}

// end stops the loops and waits for them.
func (l *laneLoad) end() {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.stopped = true
	l.mu.Unlock()
	close(l.stop)
	l.wg.Wait()
}

// mark returns the number of observations so far, to look at later ones with since.
func (l *laneLoad) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// since returns the observations after mark m.
func (l *laneLoad) since(m int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.seen[m:]...)
}

// last returns the latest observation ("" before the first).
func (l *laneLoad) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.seen) == 0 {
		return ""
	}
	return l.seen[len(l.seen)-1]
}

// failures returns how many requests failed, of how many, and the first few described.
func (l *laneLoad) failures() (failed, total int, first []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed, len(l.seen), append([]string(nil), l.fails...)
}

// awaitSteady waits until the last n observations after mark m all equal want.
func (l *laneLoad) awaitSteady(t *testing.T, m, n int, want string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("%d answers in a row observing %q", n, want), func() bool {
		obs := l.since(m)
		if len(obs) < n {
			return false
		}
		for _, o := range obs[len(obs)-n:] {
			if o != want {
				return false
			}
		}
		return true
	})
}

// counts tallies observations.
func laneCounts(obs []string) map[string]int {
	c := map[string]int{}
	for _, o := range obs {
		c[o]++
	}
	return c
}

// cli runs `swimlane args...` to completion and returns its standard output.
func laneCLI(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("swimlane %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// laneCLIJSON runs a CLI command with -o json and decodes its output into v.
func laneCLIJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := laneCLI(t, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("swimlane %s -o json: %v:\n%s", strings.Join(args, " "), err, out)
	}
}

// laneWriteFile replaces path as editors do: write a sibling, rename it over.
func laneWriteFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp~"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// metric returns the value of the Prometheus sample name{labels} from the admin API (labels
// as they print, e.g. `proxy="sidecar~front"`), and whether it was found.
func (m *lanesMesh) metric(t *testing.T, name, labels string) (float64, bool) {
	t.Helper()
	c := lanesClient()
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://" + m.admin + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	rx := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+"{"+labels+"}") + ` (\S+)$`)
	s := rx.FindStringSubmatch(string(body))
	if s == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(s[1], 64)
	if err != nil {
		t.Fatalf("metric %s{%s}: %v", name, labels, err)
	}
	return v, true
}

// countMatches counts the matches of re in s.
func countMatches(s, re string) int {
	return len(regexp.MustCompile(re).FindAllStringIndex(s, -1))
}

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// seedMesh runs one examples/seed-* folder as its README says: `swimlane up` with the mesh
// file (its ports made free ones) and a watched folder the test copies steps into.
type seedMesh struct {
	t       *testing.T
	p       *process
	dir     string // the example folder
	live    string // the watched folder
	gateway string // the main gateway listener
	admin   string
}

func startSeed(t *testing.T, example string) *seedMesh {
	t.Helper()
	dir := filepath.Join("..", "examples", example)
	mesh, err := os.ReadFile(filepath.Join(dir, "mesh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Free ports: the main listener, and every Istio Gateway server port remapped to 0.
	text := strings.Replace(string(mesh), "port: 8080", "port: 0", 1)
	text = regexp.MustCompile(`("\d+"): \d+`).ReplaceAllString(text, "$1: 0")
	tmp := t.TempDir()
	meshFile := filepath.Join(tmp, "mesh.yaml")
	if err := os.WriteFile(meshFile, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(tmp, "live")
	os.Mkdir(live, 0o755)
	p := start(t, "up", "-f", meshFile, "-f", live, "--control-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	s := &seedMesh{t: t, p: p, dir: dir, live: live}
	s.gateway = p.waitFor(`Gateway ingress listening on (\S+)`, 60*time.Second)[1]
	s.admin = p.waitFor(`Admin \(metrics\): http://(\S+)`, 10*time.Second)[1]
	p.waitFor(`Press Ctrl-C`, 10*time.Second)
	return s
}

// apply copies steps/<step> into the watched folder as name and waits for it to apply.
func (s *seedMesh) apply(step, name string) {
	s.t.Helper()
	data, err := os.ReadFile(filepath.Join(s.dir, "steps", step))
	if err != nil {
		s.t.Fatal(err)
	}
	s.edit("step "+step, func() { writeAtomically(s.t, filepath.Join(s.live, name), string(data)) })
	if strings.Contains(s.p.out.String()[len(s.p.out.String())/2:], "config rejected") {
		s.t.Fatalf("step %s rejected:\n%s", step, s.p.out.String())
	}
}

var configApplied = regexp.MustCompile(`msg="config applied" version=(\d+)`)

// edit runs change (an edit of the watched folder) and waits until the control plane has
// applied a new config and every proxy runs it: the control plane logs the version it
// published, and the proxies take it a moment later.
func (s *seedMesh) edit(what string, change func()) {
	s.t.Helper()
	before := len(configApplied.FindAllString(s.p.out.String(), -1))
	change()
	var version uint64
	eventually(s.t, 10*time.Second, what+" to apply", func() bool {
		all := configApplied.FindAllStringSubmatch(s.p.out.String(), -1)
		if len(all) <= before {
			return false
		}
		version, _ = strconv.ParseUint(all[len(all)-1][1], 10, 64)
		return true
	})
	eventually(s.t, 10*time.Second, fmt.Sprintf("every proxy to run version %d", version), func() bool {
		res, err := http.Get("http://" + s.admin + "/proxies")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var proxies []struct {
			Version uint64 `json:"snapshotVersion"`
		}
		if json.NewDecoder(res.Body).Decode(&proxies) != nil || len(proxies) == 0 {
			return false
		}
		for _, p := range proxies {
			if p.Version < version {
				return false
			}
		}
		return true
	})
}

// serverAddr waits for the Istio Gateway server port to listen and returns its address.
func (s *seedMesh) serverAddr(port int) string {
	s.t.Helper()
	return s.p.waitFor(fmt.Sprintf(`gateway server listening".* gateway=ingress port=%d .*?addr=(\S+)`, port), 10*time.Second)[1]
}

// echoAnswer is what swimlane echo answers.
type echoAnswer struct {
	Service       string            `json:"service"`
	Version       string            `json:"version"`
	Headers       map[string]string `json:"headers"`
	Upstream      *echoAnswer       `json:"upstream"`
	UpstreamError string            `json:"upstreamError"`
}

func askEcho(t *testing.T, c *http.Client, url string, headers ...string) (int, *echoAnswer) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var a echoAnswer
	if res.StatusCode == 200 {
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("answer %q: %v", body, err)
		}
	}
	return res.StatusCode, &a
}

func within5Sigma(t *testing.T, what string, got, n int, p float64) {
	t.Helper()
	sd := math.Sqrt(float64(n) * p * (1 - p))
	if math.Abs(float64(got)-p*float64(n)) > 5*sd+0.5 {
		t.Errorf("%s: %d of %d, want %.0f ± %.0f (5σ)", what, got, n, p*float64(n), 5*sd)
	}
}

// TestSeed001 runs seed 001: the ingress Gateway and its uri-prefix VirtualService, all to v1,
// Firefox to v2, 80/20, and a 50% abort on authors.
func TestSeed001(t *testing.T) {
	s := startSeed(t, "seed-001-cloud-native-starter")
	s.apply("1-gateway.yaml", "1-gateway.yaml")
	s.apply("2-ingress.yaml", "ingress.yaml")
	url := "http://" + s.serverAddr(80) + "/web-api/v1/getmultiple"
	c := &http.Client{Timeout: 10 * time.Second}
	versions := func(n int, headers ...string) map[string]int {
		out := map[string]int{}
		for range n {
			code, a := askEcho(t, c, url, headers...)
			if code != 200 {
				out[strconv.Itoa(code)]++
				continue
			}
			out[a.Version]++
		}
		return out
	}
	within5Sigma(t, "no rule: v1", versions(200)["v1"], 200, 0.5)
	if code, _ := askEcho(t, c, "http://"+s.serverAddr(80)+"/other"); code != 404 {
		t.Errorf("a path outside the VirtualService's prefix: %d, want 404", code)
	}

	s.apply("3-web-api-v1.yaml", "ingress.yaml")
	if got := versions(50); got["v1"] != 50 {
		t.Errorf("all to v1: %v", got)
	}
	s.apply("4-web-api-firefox.yaml", "ingress.yaml")
	if got := versions(30, "user-agent", "Mozilla/5.0 Firefox/120.0"); got["v2"] != 30 {
		t.Errorf("Firefox: %v, want all v2", got)
	}
	if got := versions(30, "user-agent", "curl/8"); got["v1"] != 30 {
		t.Errorf("not Firefox: %v, want all v1", got)
	}
	s.apply("5-web-api-80-20.yaml", "ingress.yaml")
	within5Sigma(t, "80/20: v1", versions(400)["v1"], 400, 0.8)

	s.apply("6-fault-authors-500-50per.yaml", "authors.yaml")
	failed := 0
	const n = 300
	for range n {
		if _, a := askEcho(t, c, url); a.UpstreamError != "" && strings.Contains(a.UpstreamError, "500") {
			failed++
		}
	}
	within5Sigma(t, "authors aborted with 500", failed, n, 0.5)
}

// TestSeed003 runs seed 003: TCP through the gateway's own port, all to v1, then 80/20.
func TestSeed003(t *testing.T) {
	s := startSeed(t, "seed-003-tcp-routing")
	s.apply("1-gateway.yaml", "gateway.yaml")
	s.apply("2-all-v1.yaml", "vs.yaml")
	addr := s.serverAddr(31400)
	version := func() string {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "hello\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("tcp-echo: %v", err)
		}
		v, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		if rest != "hello" {
			t.Fatalf("tcp-echo answered %q", line)
		}
		return v
	}
	for range 20 {
		if v := version(); v != "one" {
			t.Fatalf("all to v1: got %q", v)
		}
	}
	s.apply("3-80-20.yaml", "vs.yaml")
	ones := 0
	const n = 300
	for range n {
		if version() == "one" {
			ones++
		}
	}
	within5Sigma(t, "80/20: v1", ones, n, 0.8)
}

// TestSeed004 runs seed 004: mirroring to v2 (callers see only v1, v2 gets the copies), then
// 90/10, then the full release by removing the VirtualService.
func TestSeed004(t *testing.T) {
	s := startSeed(t, "seed-004-mirror-canary")
	s.apply("0-destinationrule.yaml", "dr.yaml")
	url := "http://" + s.gateway + "/api/customers"
	c := &http.Client{Timeout: 10 * time.Second}
	count := func(n int) map[string]int {
		out := map[string]int{}
		for range n {
			code, a := askEcho(t, c, url)
			if code != 200 {
				t.Fatalf("status %d", code)
			}
			out[a.Version]++
		}
		return out
	}
	s.apply("1-mirror.yaml", "vs.yaml")
	const n = 100
	if got := count(n); got["v1"] != n {
		t.Errorf("mirroring: callers got %v, want v1 only", got)
	}
	eventually(t, 10*time.Second, "v2 to have received the mirrored copies", func() bool {
		return inboundRequests(t, s.admin, "sidecar~customermanagementapi-v2") >= n
	})

	s.apply("2-canary.yaml", "vs.yaml")
	within5Sigma(t, "canary 90/10: v2", count(400)["v2"], 400, 0.1)

	s.edit("the removal", func() { os.Remove(filepath.Join(s.live, "vs.yaml")) })
	within5Sigma(t, "full release: v2", count(400)["v2"], 400, 0.5)
}

// inboundRequests reads from the admin metrics how many requests a sidecar's inbound saw.
func inboundRequests(t *testing.T, admin, proxy string) int {
	res, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	total := 0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "swimlane_requests_total{") && strings.Contains(line, `direction="inbound"`) && strings.Contains(line, `proxy="`+proxy+`"`) {
			f := strings.Fields(line)
			n, _ := strconv.ParseFloat(f[len(f)-1], 64)
			total += int(n)
		}
	}
	return total
}

// TestSeed002 runs seed 002: a three-hop chain whose failures cascade; retries on every hop
// make a 30% failure rate all but disappear; x-dev-user: super-secret reaches the canary; the
// trace headers reach the last hop.
func TestSeed002(t *testing.T) {
	s := startSeed(t, "seed-002-retries-canary")
	s.apply("1-gateway.yaml", "gateway.yaml")
	s.apply("2-destinationrules.yaml", "destinationrules.yaml")
	s.p.waitFor(`mTLS is not implemented yet`, 5*time.Second)
	s.apply("3-routing-1.yaml", "routing.yaml")
	url := "http://" + s.serverAddr(80) + "/"
	c := &http.Client{Timeout: 30 * time.Second}
	failureRate := func(n int) float64 {
		failed := 0
		for range n {
			if code, _ := askEcho(t, c, url, "fail", "0.3"); code != 200 {
				failed++
			}
		}
		return float64(failed) / float64(n)
	}
	const n = 200
	// No retries: each of three hops fails 30% of the time: 1 - 0.7^3 = 66%.
	noRetries := failureRate(n)
	if noRetries < 0.5 {
		t.Errorf("without retries %.2f failed; the seed shows most requests failing (expected 0.66)", noRetries)
	}
	s.apply("4-routing-2.yaml", "routing.yaml")
	withRetries := failureRate(n)
	// With retries: at most about 1 - (1 - 0.3^4)^3 = 2.4%, less as retries nest.
	if withRetries > 0.06 {
		t.Errorf("with retries %.3f failed, want the errors (nearly) gone", withRetries)
	}
	t.Logf("fail: 0.3 over three hops: %.1f%% failed without retries, %.1f%% with", 100*noRetries, 100*withRetries)

	s.apply("5-routing-3.yaml", "routing.yaml")
	middleware := func(headers ...string) string {
		code, a := askEcho(t, c, url, headers...)
		if code != 200 || a.Upstream == nil {
			t.Fatalf("status %d, answer %+v", code, a)
		}
		return a.Upstream.Version
	}
	for range 20 {
		if v := middleware("x-dev-user", "super-secret"); v != "canary" {
			t.Fatalf("x-dev-user: super-secret reached middleware %s", v)
		}
		if v := middleware(); v != "prod" {
			t.Fatalf("without the header: middleware %s", v)
		}
	}
	// The trace headers travel the whole chain.
	_, a := askEcho(t, c, url, "x-request-id", "req-42", "x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124", "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	backend := a.Upstream.Upstream
	if backend == nil || backend.Headers["x-request-id"] != "req-42" || backend.Headers["x-b3-traceid"] != "463ac35c9f6413ad48485a3953bb6124" || !strings.HasPrefix(backend.Headers["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-") {
		t.Errorf("trace headers at the backend: %+v", backend)
	}
}

// TestSeed002Egress checks seed 002's egress rule in its REGISTRY_ONLY mesh: from a
// workload's sidecar, a host outside the registry is refused; a ServiceEntry opens that one
// host (here a stand-in on loopback: this machine has no internet) while others stay blocked.
func TestSeed002Egress(t *testing.T) {
	partner := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partner answered for "+r.Host)
	})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go partner.Serve(lis)
	t.Cleanup(func() { partner.Close() })

	s := startSeed(t, "seed-002-retries-canary")
	outbound := s.p.waitFor(`workload started" workload=frontend-prod .*?outbound=(\S+)`, 10*time.Second)[1]
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(mustParse(t, "http://"+outbound))}}
	get := func(url string) (int, string) {
		res, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	if code, body := get("http://api.partner.example/time"); code != http.StatusBadGateway || !strings.Contains(body, "REGISTRY_ONLY") {
		t.Fatalf("before the ServiceEntry: %d %q, want 502 naming REGISTRY_ONLY", code, body)
	}
	host, port, _ := net.SplitHostPort(lis.Addr().String())
	s.edit("the ServiceEntry", func() {
		writeAtomically(t, filepath.Join(s.live, "egress.yaml"), fmt.Sprintf(`apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: partner}
spec:
  hosts: [api.partner.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: %s, ports: {http: %s}}]
`, host, port))
	})
	if code, body := get("http://api.partner.example/time"); code != 200 || !strings.HasPrefix(body, "partner answered") {
		t.Errorf("after the ServiceEntry: %d %q", code, body)
	}
	if code, _ := get("http://other.partner.example/"); code != http.StatusBadGateway {
		t.Errorf("another outside host: %d, want it still blocked", code)
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

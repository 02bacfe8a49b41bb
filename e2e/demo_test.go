package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// seedCases are the four cases of the seed demo (seeds/000), as lane -> (goods, pricing).
var seedCases = []struct {
	name        string
	lane        string // "" sends no header
	wantGoods   string
	wantPricing string
}{
	{name: "no lane", lane: "", wantGoods: "main", wantPricing: "main"},
	{name: "main", lane: "main", wantGoods: "main", wantPricing: "main"},
	{name: "dev-feature1 has both services", lane: "dev-feature1", wantGoods: "dev-feature1", wantPricing: "dev-feature1"},
	{name: "dev-feature2 falls back for pricing", lane: "dev-feature2", wantGoods: "dev-feature2", wantPricing: "main"},
	{name: "unknown lane falls back everywhere", lane: "not_exist", wantGoods: "main", wantPricing: "main"},
}

// startDemo runs `swimlane demo` on free ports and returns it with the gateway's base URL.
func startDemo(t *testing.T, extra ...string) (*process, string) {
	t.Helper()
	began := time.Now()
	p := start(t, append([]string{"demo", "--port", "0", "--control-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, extra...)...)
	addr := p.waitFor(`Gateway ingress listening on (\S+)`, 60*time.Second)[1]
	p.waitFor(`Press Ctrl-C to stop`, 10*time.Second)
	url := "http://" + addr
	code, _ := get(t, url+"/goods")
	t.Logf("swimlane demo %s: first answered request (status %d) %.2fs after start", strings.Join(extra, " "), code, time.Since(began).Seconds())
	return p, url
}

func checkSeedCases(t *testing.T, url string) {
	t.Helper()
	for _, tc := range seedCases {
		t.Run(tc.name, func(t *testing.T) {
			// Repeated so every lane's round-robin and connection reuse is exercised.
			for i := 0; i < 10; i++ {
				var headers []string
				if tc.lane != "" {
					headers = []string{"x-swimlane", tc.lane}
				}
				code, body := get(t, url+"/goods", headers...)
				want := "Goods Swimlane: " + tc.wantGoods + "\nPricing Swimlane: " + tc.wantPricing + "\n"
				if code != 200 || !strings.HasPrefix(body, want) || !strings.Contains(body, "GoodsID: 1, GoodsName: ") {
					t.Fatalf("request %d: got %d %q, want 200 starting %q", i, code, body, want)
				}
			}
		})
	}
}

// TestDemo runs `swimlane demo` with each routing variant (automatic lane fallback, and the
// seed's own Istio and Gateway API YAML) and checks the seed's four cases, then that Ctrl-C
// leaves no workload behind.
func TestDemo(t *testing.T) {
	for _, routing := range []string{"auto", "istio-api", "gateway-api"} {
		t.Run(routing, func(t *testing.T) {
			p, url := startDemo(t, "--routing", routing)
			if out := p.out.String(); !strings.Contains(out, "goods-service") || !strings.Contains(out, "curl -s localhost:") {
				t.Errorf("ready message lacks the services or the curl lines:\n%s", out)
			}
			checkSeedCases(t, url)
			if out := p.out.String(); !strings.Contains(out, "[goods-dev-feature1 dev-feature1] ") || !strings.Contains(out, "[gateway] ") {
				t.Errorf("workload output is not prefixed with workload and lane:\n%s", out)
			}

			pids := p.workloadPIDs()
			if len(pids) != 6 {
				t.Fatalf("want 6 workloads started, found %v", pids)
			}
			p.stop()
			for name, pid := range pids {
				if alive(pid) {
					t.Errorf("workload %s (pid %d) still runs after swimlane stopped", name, pid)
				}
			}
		})
	}
}

// TestDemoWorkloadExit kills workloads behind swimlane's back: their endpoints must leave the
// registry (logged), dev-feature1 then falls back to main for pricing, and with no pricing
// left the error names the service and the lanes tried.
func TestDemoWorkloadExit(t *testing.T) {
	p, url := startDemo(t)
	pids := p.workloadPIDs()
	if err := syscall.Kill(pids["pricing-dev-feature1"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.waitFor(`workload exited; its endpoints left the registry" workload=pricing-dev-feature1`, 10*time.Second)
	eventually(t, 5*time.Second, "dev-feature1 to fall back to pricing main", func() bool {
		_, body := get(t, url+"/goods", "x-swimlane", "dev-feature1")
		return strings.HasPrefix(body, "Goods Swimlane: dev-feature1\nPricing Swimlane: main\n")
	})

	if err := syscall.Kill(pids["pricing-main"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.waitFor(`workload=pricing-main`+".*"+`status=`, 10*time.Second)
	var code int
	var body string
	eventually(t, 5*time.Second, "an error naming pricing-service", func() bool {
		code, body = get(t, url+"/goods", "x-swimlane", "dev-feature2")
		return code != 200
	})
	for _, want := range []string{"pricing-service", "lane dev-feature2", "dev-feature2 -> main"} {
		if !strings.Contains(body, want) {
			t.Errorf("error body %q (status %d) does not name %q", body, code, want)
		}
	}
}

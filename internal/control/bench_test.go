package control_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/config"
	"swimlane.dev/swimlane/internal/control"
	"swimlane.dev/swimlane/internal/proxy"
	"swimlane.dev/swimlane/internal/registry"
	"swimlane.dev/swimlane/internal/snapshot"
)

// applied tracks which proxies run a version at least as new as target.
type applied struct {
	mu        sync.Mutex
	target    uint64
	reached   []bool
	remaining int
	last      time.Time // when the last proxy reached target
	done      chan struct{}
}

func newApplied(n int) *applied { return &applied{reached: make([]bool, n), done: make(chan struct{})} }

// expect starts waiting for every proxy to reach version target.
func (a *applied) expect(target uint64) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.target = target
	clear(a.reached)
	a.remaining = len(a.reached)
	a.done = make(chan struct{})
	return a.done
}

// update is proxy i's onUpdate callback.
func (a *applied) update(i int, version uint64) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.target == 0 || version < a.target || a.reached[i] {
		return
	}
	a.reached[i] = true
	a.remaining--
	if a.remaining == 0 {
		a.last = now
		close(a.done)
	}
}

func benchMesh(services int) (*config.Set, error) {
	var b strings.Builder
	b.WriteString("apiVersion: swimlane.dev/v1alpha1\nkind: Mesh\nmetadata: {name: bench}\nspec:\n  services:\n")
	for i := 0; i < services; i++ {
		fmt.Fprintf(&b, "  - {name: svc-%d, port: 80, selector: {app: svc-%d}}\n", i, i)
	}
	return config.Parse("bench.yaml", []byte(b.String()))
}

// benchWorkload is endpoint j of service i: 10 a service, in lanes main (4), feature-a and
// feature-b (3 each).
func benchWorkload(i, j int, port int) registry.Workload {
	l := "main"
	if j >= 4 {
		l = []string{"feature-a", "feature-b"}[j%2]
	}
	return registry.Workload{
		Name:     fmt.Sprintf("svc-%d-%d", i, j),
		Address:  fmt.Sprintf("127.0.0.1:%d", port),
		Protocol: snapshot.HTTP,
		Labels:   map[string]string{"app": fmt.Sprintf("svc-%d", i), "swimlane": l},
	}
}

// BenchmarkEndpointChangeTo100Proxies measures propagation: a real control plane (Run + Serve
// on 127.0.0.1:0) and 100 real proxies subscribed over gRPC; each iteration changes one
// workload's address in the registry and waits until all 100 proxies have applied a snapshot
// holding it. The control plane patches the endpoint without compiling and sends a delta of
// one service. ns/op is the mean; p50-ms, p99-ms and mean-ms report the distribution (with the
// default benchtime there are few iterations; use -benchtime=Nx for steadier percentiles).
// Target: p99 under 100 ms.
func BenchmarkEndpointChangeTo100Proxies(b *testing.B) {
	benchSizes(b, func(b *testing.B, services int) {
		benchPropagation(b, services, 100, addressChange)
	})
}

// BenchmarkWorkloadChangeTo100Proxies is BenchmarkEndpointChangeTo100Proxies with a workload
// added, then removed, alternately, in a lane of its own: the control plane places it with
// the last compile's Membership and patches the one service, without compiling.
func BenchmarkWorkloadChangeTo100Proxies(b *testing.B) {
	benchSizes(b, func(b *testing.B, services int) {
		benchPropagation(b, services, 100, workloadAddedOrRemoved)
	})
}

// benchSizes runs bench at 1,000 services, and at 10,000 when SWIMLANE_BENCH_LARGE is set.
func benchSizes(b *testing.B, bench func(b *testing.B, services int)) {
	for _, services := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", services), func(b *testing.B) {
			if services > 1000 && os.Getenv("SWIMLANE_BENCH_LARGE") == "" {
				// Iterations take tens to hundreds of milliseconds, but the setup takes about
				// 45 s on 2 cores: each of the 100 proxies decodes the 12.5 MB first snapshot.
				b.Skip("set SWIMLANE_BENCH_LARGE=1 to run (about 50 s of setup each)")
			}
			bench(b, services)
		})
	}
}

// A change is what iteration i does to the registry, and how to tell a snapshot holds it.
type change func(reg *registry.Registry, i, services int) (holds func(*snapshot.Snapshot) bool)

// addressChange moves the first workload of service i to a new address.
func addressChange(reg *registry.Registry, i, services int) func(*snapshot.Snapshot) bool {
	w := benchWorkload(i%services, 0, 20000+i%20000)
	reg.Upsert(w)
	return func(s *snapshot.Snapshot) bool {
		return hasEndpoint(s, fmt.Sprintf("svc-%d", i%services), w.Name, w.Address)
	}
}

// workloadAddedOrRemoved adds an eleventh workload to service i/2 on odd iterations, in a lane
// of its own, and removes it on even ones.
func workloadAddedOrRemoved(reg *registry.Registry, i, services int) func(*snapshot.Snapshot) bool {
	svc := (i - 1) / 2 % services
	w := benchWorkload(svc, 10, 30000+svc%20000)
	w.Labels["swimlane"] = "feature-extra"
	if i%2 == 1 {
		reg.Upsert(w)
		return func(s *snapshot.Snapshot) bool { return hasEndpoint(s, fmt.Sprintf("svc-%d", svc), w.Name, w.Address) }
	}
	reg.Remove(w.Name)
	return func(s *snapshot.Snapshot) bool { return !hasEndpoint(s, fmt.Sprintf("svc-%d", svc), w.Name, w.Address) }
}

func benchPropagation(b *testing.B, services, proxies int, change change) {
	goroutines := runtime.NumGoroutine()
	log := slog.New(slog.DiscardHandler)
	set, err := benchMesh(services)
	if err != nil {
		b.Fatal(err)
	}
	reg := registry.New()
	for i := 0; i < services; i++ {
		for j := 0; j < 10; j++ {
			reg.Upsert(benchWorkload(i, j, 10000+j))
		}
	}
	cp, err := control.New(reg, log)
	if err != nil {
		b.Fatal(err)
	}
	if err := cp.SetConfig(set); err != nil {
		b.Fatal(err)
	}
	cur, _ := cp.Current()
	body, err := cur.Body()
	if err != nil {
		b.Fatal(err)
	}
	sizeMB := float64(len(body)) / 1e6

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); cp.Run(ctx) }()
	go func() { defer wg.Done(); _ = cp.Serve(ctx, lis) }()

	track := newApplied(proxies)
	first := track.expect(cur.Version)
	ps := make([]*proxy.Proxy, proxies)
	for i := range ps {
		p := proxy.New(fmt.Sprintf("sidecar~bench-%d", i), log)
		ps[i] = p
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.Subscribe(ctx, lis.Addr().String(), func(v uint64) { track.update(i, v) })
		}()
	}
	// Everything started here stops before the next benchmark: proxies' streams and
	// connections, Run, and the gRPC server (Serve stops it when ctx ends).
	b.Cleanup(func() {
		cancel()
		wg.Wait()
		lis.Close()
		// gRPC transports finish closing asynchronously; allow them a moment.
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > goroutines+5 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > goroutines+5 {
			b.Errorf("%d goroutines left running after cleanup (had %d before)", n, goroutines)
		}
	})
	select {
	case <-first:
	case <-time.After(20 * time.Minute):
		b.Fatal("proxies never received the first snapshot")
	}
	// The setup's garbage (each proxy decoded a whole snapshot) is collected now, not during
	// the first iterations, which it slowed down by up to tenfold at 10,000 services.
	runtime.GC()

	var lat []time.Duration
	var holds func(*snapshot.Snapshot) bool
	i := 0
	for b.Loop() {
		i++
		v, _ := cp.Current()
		// Only Run publishes from here on, so the change becomes version v+1 (or a later one,
		// which holds it too).
		done := track.expect(v.Version + 1)
		start := time.Now()
		holds = change(reg, i, services)
		select {
		case <-done:
		case <-time.After(20 * time.Minute):
			b.Fatalf("iteration %d: not every proxy applied version %d", i, v.Version+1)
		}
		track.mu.Lock()
		lat = append(lat, track.last.Sub(start))
		track.mu.Unlock()
	}
	b.StopTimer()
	// The change really is in the snapshot the proxies got.
	if got, _ := cp.Current(); !holds(got.Snapshot) || !holds(ps[0].Snapshot()) {
		b.Fatal("the last change is not in the published snapshot, or not in the proxies'")
	}

	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	b.ReportMetric(ms(pct(0.50)), "p50-ms")
	b.ReportMetric(ms(pct(0.99)), "p99-ms")
	b.ReportMetric(ms(sum/time.Duration(len(lat))), "mean-ms")
	b.ReportMetric(sizeMB, "snapshot-MB")
}

func hasEndpoint(s *snapshot.Snapshot, service, workload, addr string) bool {
	svc := s.Service(service)
	if svc == nil {
		return false
	}
	for _, ep := range svc.Endpoints {
		if ep.Workload == workload && ep.Address == addr {
			return true
		}
	}
	return false
}

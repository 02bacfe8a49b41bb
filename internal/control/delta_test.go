package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/compile"
	"swimlane.dev/swimlane/internal/controlapi"
	"swimlane.dev/swimlane/internal/proxy"
	"swimlane.dev/swimlane/internal/registry"
	"swimlane.dev/swimlane/internal/snapshot"
)

// deltaMesh has a gateway, a plain service and one with DestinationRule subsets.
const deltaMesh = `apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: m}
spec:
  gateways:
  - {name: ingress, port: 0, service: a}
  services:
  - {name: a, port: 80, selector: {app: a}}
  - {name: b, port: 80, selector: {app: b}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b}
spec:
  host: b
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`

func workload(name, addr string, labels ...string) registry.Workload {
	w := registry.Workload{Name: name, Address: addr, Protocol: snapshot.HTTP, Labels: map[string]string{}}
	for i := 0; i+1 < len(labels); i += 2 {
		w.Labels[labels[i]] = labels[i+1]
	}
	return w
}

// sentLog records what the control plane sent on each node's streams.
type sentLog struct {
	mu      sync.Mutex
	streams map[string][]*streamLog // by node, in the order they opened
}

type streamLog struct {
	req  *controlapi.WatchRequest // one per stream
	msgs []*controlapi.Snapshot
}

func (l *sentLog) record(req *controlapi.WatchRequest, msg *controlapi.Snapshot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	node := req.GetNode()
	for _, s := range l.streams[node] {
		if s.req == req {
			s.msgs = append(s.msgs, msg)
			return
		}
	}
	l.streams[node] = append(l.streams[node], &streamLog{req: req, msgs: []*controlapi.Snapshot{msg}})
}

// stream returns how many streams node opened and how many messages its last one carried.
func (l *sentLog) stream(node string) (streams, msgs int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ss := l.streams[node]
	if len(ss) == 0 {
		return 0, 0
	}
	return len(ss), len(ss[len(ss)-1].msgs)
}

// count returns how many messages node's last stream carried.
func (l *sentLog) count(node string) int {
	_, n := l.stream(node)
	return n
}

// kinds describes the messages node's last stream carried from the from-th on.
func (l *sentLog) kinds(node string, from int) []string {
	streams, _ := l.stream(node)
	return l.kindsOf(node, streams-1, from)
}

// kindsOf describes the messages node's stream-th stream carried from the from-th on:
// "full@3", "delta@4(2->4 +1 -0)" (base -> version, services changed, removed).
func (l *sentLog) kindsOf(node string, stream, from int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.streams[node][stream].msgs[from:] {
		if d := m.GetDelta(); d != nil {
			out = append(out, fmt.Sprintf("delta@%d(%d->%d +%d -%d)", m.GetVersion(), d.GetBaseVersion(), m.GetVersion(), len(d.GetServices()), len(d.GetRemoved())))
		} else {
			out = append(out, fmt.Sprintf("full@%d", m.GetVersion()))
		}
	}
	return out
}

// mesh is a control plane (Run and Serve on 127.0.0.1:0) over a registry, with real proxies
// subscribed to it.
type testMesh struct {
	t    *testing.T
	reg  *registry.Registry
	cp   *Server
	addr string
	sent *sentLog
	ctx  context.Context
	wg   sync.WaitGroup
}

func startMesh(t *testing.T, config string, workloads ...registry.Workload) *testMesh {
	t.Helper()
	m := &testMesh{t: t, reg: registry.New(), sent: &sentLog{streams: map[string][]*streamLog{}}}
	for _, w := range workloads {
		m.reg.Upsert(w)
	}
	var err error
	if m.cp, err = New(m.reg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	m.cp.sent = m.sent.record
	if err := m.cp.SetConfig(parse(t, config)); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	m.ctx = ctx
	m.wg.Add(2)
	go func() { defer m.wg.Done(); m.cp.Run(ctx) }()
	go func() { defer m.wg.Done(); _ = m.cp.Serve(ctx, lis) }()
	t.Cleanup(func() { cancel(); m.wg.Wait() })
	return m
}

// subscribe starts a real proxy named node on the control plane, until ctx ends; onUpdate
// may be nil.
func (m *testMesh) subscribe(ctx context.Context, p *proxy.Proxy, onUpdate func(uint64)) {
	m.wg.Add(1)
	go func() { defer m.wg.Done(); _ = p.Subscribe(ctx, m.addr, onUpdate) }()
}

func (m *testMesh) newProxy(node string) *proxy.Proxy {
	p := proxy.New(node, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.subscribe(m.ctx, p, nil)
	m.converged(p)
	return p
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// published waits until the control plane has published the registry as it is now.
func (m *testMesh) published() *Published {
	m.t.Helper()
	_, v, _ := m.reg.List()
	var cur *Published
	waitFor(m.t, fmt.Sprintf("registry version %d to be published", v), func() bool {
		cur, _ = m.cp.Current()
		return cur.RegistryVersion >= v
	})
	return cur
}

// converged waits until p runs the control plane's current version, then checks it is the
// same snapshot: the same encoding, and the same answer to KnownLane for every lane either
// knows of.
func (m *testMesh) converged(p *proxy.Proxy) {
	m.t.Helper()
	cur := m.published()
	waitFor(m.t, fmt.Sprintf("%s to apply version %d", p.Node, cur.Version), func() bool { return p.Snapshot().Version >= cur.Version })
	sameSnapshot(m.t, p.Node+"'s snapshot", p.Snapshot(), cur.Snapshot)
}

// sameSnapshot checks got is want: the same encoding, and the same indexes (lane and subset
// sets, known lanes), which the encoding does not show.
func sameSnapshot(t *testing.T, what string, got, want *snapshot.Snapshot) {
	t.Helper()
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Fatalf("%s differs:\n got %s\nwant %s", what, g, w)
	}
	for _, w := range want.Services {
		g := got.Service(w.Name)
		if g == nil {
			t.Fatalf("%s: no service %s", what, w.Name)
		}
		if gl, wl := fmt.Sprint(g.Lanes()), fmt.Sprint(w.Lanes()); gl != wl {
			t.Errorf("%s: service %s has lanes %s, want %s", what, w.Name, gl, wl)
		}
		for _, l := range w.Lanes() {
			if ge, we := mustJSON(t, g.LaneSet(l).Endpoints), mustJSON(t, w.LaneSet(l).Endpoints); ge != we {
				t.Errorf("%s: service %s lane %s has %s, want %s", what, w.Name, l, ge, we)
			}
		}
		for _, sub := range w.Subsets {
			if ge, we := mustJSON(t, g.SubsetSet(sub.Name).Endpoints), mustJSON(t, w.SubsetSet(sub.Name).Endpoints); ge != we {
				t.Errorf("%s: service %s subset %s has %s, want %s", what, w.Name, sub.Name, ge, we)
			}
		}
	}
	for _, svc := range append(got.Services, want.Services...) {
		for _, l := range append(svc.Lanes(), "feature-x", "feature-y") {
			if got.KnownLane(l) != want.KnownLane(l) {
				t.Errorf("%s: KnownLane(%s) = %v, want %v", what, l, got.KnownLane(l), want.KnownLane(l))
			}
		}
	}
}

// compiledInFull checks the control plane's current snapshot is what compiling the config
// and the registry from scratch gives, whichever way it was made.
func (m *testMesh) compiledInFull() {
	m.t.Helper()
	cur := m.published()
	ws, _, _ := m.reg.List()
	m.cp.mu.Lock()
	res, err := compile.Compile(m.cp.cfg, ws, m.cp.now())
	m.cp.mu.Unlock()
	if err != nil {
		m.t.Fatal(err)
	}
	res.Snapshot.Version = cur.Version
	if err := res.Snapshot.Prepare(); err != nil {
		m.t.Fatal(err)
	}
	sameSnapshot(m.t, "the published snapshot (against a full compile)", cur.Snapshot, res.Snapshot)
	body, err := cur.Body()
	if err != nil {
		m.t.Fatal(err)
	}
	decoded, err := snapshot.Decode(body)
	if err != nil {
		m.t.Fatal(err)
	}
	sameSnapshot(m.t, "the published body (against a full compile)", decoded, res.Snapshot)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func assertKinds(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("sent %v, want %v", got, want)
	}
}

var deltaWorkloads = []registry.Workload{
	workload("a-1", "127.0.0.1:1001", "app", "a", "swimlane", "main"),
	workload("b-1", "127.0.0.1:1002", "app", "b", "version", "v1", "swimlane", "main"),
	workload("b-2", "127.0.0.1:1003", "app", "b", "version", "v2", "swimlane", "feature-x"),
}

// TestEndpointChangesArriveAsDeltas checks an address or health change reaches the proxy as
// a delta of the one service holding the workload, made without compiling (the other
// services are shared with the previous version), and that both the control plane's and the
// proxy's snapshots are what a full compile gives.
func TestEndpointChangesArriveAsDeltas(t *testing.T) {
	m := startMesh(t, deltaMesh, deltaWorkloads...)
	p := m.newProxy("sidecar~p")
	assertKinds(t, m.sent.kinds(p.Node, 0), fmt.Sprintf("full@%d", p.Snapshot().Version))

	for _, change := range []struct {
		name  string
		apply func()
	}{
		{"address", func() {
			m.reg.Upsert(workload("b-2", "127.0.0.1:2003", "app", "b", "version", "v2", "swimlane", "feature-x"))
		}},
		{"health", func() { m.reg.SetHealth("b-2", "draining") }},
		{"health back", func() { m.reg.SetHealth("b-2", "") }},
		{"nothing (an identical upsert)", func() { m.reg.Upsert(deltaWorkloads[0]) }},
	} {
		t.Run(change.name, func(t *testing.T) {
			before, _ := m.cp.Current()
			mark := m.sent.count(p.Node)
			change.apply()
			m.converged(p)
			m.compiledInFull()
			cur, _ := m.cp.Current()
			changed := 1
			if change.name == "nothing (an identical upsert)" {
				changed = 0
			}
			assertKinds(t, m.sent.kinds(p.Node, mark), fmt.Sprintf("delta@%d(%d->%d +%d -0)", cur.Version, before.Version, cur.Version, changed))
			// A patch copies service b, sharing its subsets; a compile builds them anew.
			if &cur.Snapshot.Service("b").Subsets[0] != &before.Snapshot.Service("b").Subsets[0] {
				t.Error("service b's subsets were built anew: the change was compiled, not patched")
			}
		})
	}
	if got := p.Snapshot().Service("b").SubsetSet("v2").Endpoints; len(got) != 1 || got[0].Address != "127.0.0.1:2003" {
		t.Errorf("the proxy's subset v2 = %v, want the moved endpoint", got)
	}
}

// TestWorkloadChangesArriveAsDeltas checks workloads added, relabelled, moved between
// services and removed reach the proxy as deltas of the services they change, with the lanes
// they bring or take along, patched without compiling, and that the result is what a full
// compile gives.
func TestWorkloadChangesArriveAsDeltas(t *testing.T) {
	m := startMesh(t, deltaMesh, deltaWorkloads...)
	p := m.newProxy("sidecar~p")
	steps := []struct {
		name      string
		apply     func()
		changed   int
		laneKnown bool // whether lane feature-y is known after the step
	}{
		{name: "add a workload in a new lane", apply: func() { m.reg.Upsert(workload("a-2", "127.0.0.1:1004", "app", "a", "swimlane", "feature-y")) }, changed: 1, laneKnown: true},
		{name: "relabel it into no service", apply: func() { m.reg.Upsert(workload("a-2", "127.0.0.1:1004", "app", "c", "swimlane", "feature-y")) }, changed: 1},
		{name: "relabel it back", apply: func() { m.reg.Upsert(workload("a-2", "127.0.0.1:1004", "app", "a", "swimlane", "feature-y")) }, changed: 1, laneKnown: true},
		{name: "move it to the subsetted service", apply: func() {
			m.reg.Upsert(workload("a-2", "127.0.0.1:1004", "app", "b", "version", "v2", "swimlane", "feature-y"))
		}, changed: 2, laneKnown: true},
		{name: "change its protocol", apply: func() {
			w := workload("a-2", "127.0.0.1:1004", "app", "b", "version", "v2", "swimlane", "feature-y")
			w.Protocol = snapshot.HTTP2
			m.reg.Upsert(w)
		}, changed: 1, laneKnown: true},
		{name: "remove it", apply: func() { m.reg.Remove("a-2") }, changed: 1},
		{name: "remove a compiled workload", apply: func() { m.reg.Remove("b-1") }, changed: 1},
		{name: "bring it back", apply: func() { m.reg.Upsert(deltaWorkloads[1]) }, changed: 1},
		{name: "add a workload no service selects", apply: func() { m.reg.Upsert(workload("x-1", "127.0.0.1:1005", "app", "x")) }, changed: 0},
		{name: "two changes at once", apply: func() {
			m.reg.Upsert(workload("a-3", "127.0.0.1:1006", "app", "a", "swimlane", "feature-y"))
			m.reg.Upsert(workload("b-4", "127.0.0.1:1007", "app", "b", "version", "v1", "swimlane", "main"))
		}, changed: 2, laneKnown: true},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			before, _ := m.cp.Current()
			compiles := m.compiles()
			mark := m.sent.count(p.Node)
			step.apply()
			m.converged(p)
			m.compiledInFull()
			cur, _ := m.cp.Current()
			kinds := m.sent.kinds(p.Node, mark)
			// Two registry changes may be published as one version or two: both patch.
			want := fmt.Sprintf("delta@%d(%d->%d +%d -0)", cur.Version, before.Version, cur.Version, step.changed)
			if len(kinds) != 1 || kinds[0] != want {
				if step.name != "two changes at once" || len(kinds) != 2 {
					t.Errorf("sent %v, want %v", kinds, want)
				}
			}
			if got := m.compiles(); got != compiles {
				t.Errorf("%d compiles, want none: the change was compiled, not patched", got-compiles)
			}
			if got := p.Snapshot().KnownLane("feature-y"); got != step.laneKnown {
				t.Errorf("the proxy's KnownLane(feature-y) = %v, want %v", got, step.laneKnown)
			}
		})
	}
	// Workloads added and removed after a compile leave nothing behind; those of the compile
	// are remembered as removed until the next one.
	m.reg.Upsert(workload("a-9", "127.0.0.1:1009", "app", "a"))
	m.reg.Remove("a-9")
	m.reg.Remove("a-1")
	m.published()
	m.cp.mu.Lock()
	_, churned := m.cp.patched["a-9"]
	gone, remembered := m.cp.patched["a-1"]
	m.cp.mu.Unlock()
	if churned || !remembered || gone != nil {
		t.Errorf("patched remembers a-9: %v, a-1 as removed: %v", churned, remembered && gone == nil)
	}
	m.compiledInFull()
}

// compiles returns how many compiles the control plane has published.
func (m *testMesh) compiles() int {
	m.cp.mu.Lock()
	defer m.cp.mu.Unlock()
	return m.cp.compiles
}

// TestConfigChanges checks a config change that touches only services arrives as a delta,
// and one that touches anything else (gateways, mesh settings, lanes) in full.
func TestConfigChanges(t *testing.T) {
	m := startMesh(t, deltaMesh, deltaWorkloads...)
	p := m.newProxy("sidecar~p")
	withC := strings.Replace(deltaMesh, "  services:\n", "  services:\n  - {name: c, port: 80, selector: {app: c}}\n", 1)
	lane := `---
apiVersion: swimlane.dev/v1alpha1
kind: Lane
metadata: {name: feature-x}
spec: {owner: someone}
`
	steps := []struct {
		name   string
		config string
		want   string // "full", or the delta's "+changed -removed"
	}{
		{name: "a service added", config: withC, want: "+1 -0"},
		{name: "a service removed", config: deltaMesh, want: "+0 -1"},
		{name: "a route added to a service", config: deltaMesh + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b}
spec:
  hosts: [b]
  http:
  - route:
    - destination: {host: b, subset: v1}
`, want: "+1 -0"},
		{name: "a gateway's port", config: strings.Replace(deltaMesh, "port: 0, service: a", "port: 0, service: b", 1), want: "full"},
		{name: "a mesh setting", config: strings.Replace(deltaMesh, "spec:\n  gateways:", "spec:\n  baggageKey: lane\n  gateways:", 1), want: "full"},
		{name: "a declared lane", config: deltaMesh + lane, want: "full"},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			before, _ := m.cp.Current()
			mark := m.sent.count(p.Node)
			if err := m.cp.SetConfig(parse(t, step.config)); err != nil {
				t.Fatal(err)
			}
			m.converged(p)
			m.compiledInFull()
			cur, _ := m.cp.Current()
			want := fmt.Sprintf("full@%d", cur.Version)
			if step.want != "full" {
				want = fmt.Sprintf("delta@%d(%d->%d %s)", cur.Version, before.Version, cur.Version, step.want)
			}
			assertKinds(t, m.sent.kinds(p.Node, mark), want)
		})
	}
}

// TestWatcherBehindConverges checks a proxy that stopped reading while many versions were
// published ends up on the newest one, whether it caught up with deltas or in full.
func TestWatcherBehindConverges(t *testing.T) {
	m := startMesh(t, deltaMesh, deltaWorkloads...)
	stuck := make(chan struct{})
	var once sync.Once
	slow := proxy.New("sidecar~slow", slog.New(slog.NewTextHandler(io.Discard, nil)))
	first := make(chan struct{})
	// The first update blocks the proxy's stream until released.
	m.subscribe(m.ctx, slow, func(uint64) {
		once.Do(func() { close(first); <-stuck })
	})
	<-first
	for i := 0; i < 3*recentDeltas; i++ {
		m.reg.Upsert(workload("b-2", fmt.Sprintf("127.0.0.1:%d", 3000+i), "app", "b", "version", "v2", "swimlane", "feature-x"))
		if i%2 == 0 {
			m.reg.Upsert(workload(fmt.Sprintf("c-%d", i), "127.0.0.1:1", "app", "a", "swimlane", fmt.Sprintf("lane-%d", i)))
		}
		m.published()
	}
	close(stuck)
	m.converged(slow)
	m.compiledInFull()
}

// TestWatchUpdates checks what a watcher gets for each version it may hold: nothing when
// current, the deltas in order when a few versions behind, the snapshot in full when further
// behind than the recent deltas reach, just connected, or not accepting deltas.
func TestWatchUpdates(t *testing.T) {
	m := startMesh(t, deltaMesh, deltaWorkloads...)
	start := m.published().Version
	for i := 0; i < recentDeltas+4; i++ {
		m.reg.Upsert(workload("b-2", fmt.Sprintf("127.0.0.1:%d", 3000+i), "app", "b", "version", "v2", "swimlane", "feature-x"))
		m.published()
	}
	cur, _ := m.cp.Current()
	tests := []struct {
		name   string
		has    uint64
		deltas bool
		want   string // "none", "full", or the versions of the deltas
	}{
		{name: "current", has: cur.Version, deltas: true, want: "none"},
		{name: "one behind", has: cur.Version - 1, deltas: true, want: fmt.Sprint([]uint64{cur.Version})},
		{name: "three behind", has: cur.Version - 3, deltas: true, want: fmt.Sprint([]uint64{cur.Version - 2, cur.Version - 1, cur.Version})},
		{name: "as far behind as the deltas reach", has: cur.Version - recentDeltas, deltas: true, want: fmt.Sprint(versions(cur.Version-recentDeltas+1, cur.Version))},
		{name: "further behind", has: cur.Version - recentDeltas - 1, deltas: true, want: "full"},
		{name: "before the first delta", has: start, deltas: true, want: "full"},
		{name: "just connected", has: 0, deltas: true, want: "full"},
		{name: "no deltas accepted", has: cur.Version - 1, deltas: false, want: "full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, full, _ := m.cp.updates(tt.has, tt.deltas)
			got := "none"
			switch {
			case full != nil:
				got = "full"
			case len(msgs) > 0:
				var vs []uint64
				for i, msg := range msgs {
					base := tt.has
					if i > 0 {
						base = msgs[i-1].GetVersion()
					}
					if msg.GetDelta().GetBaseVersion() != base {
						t.Errorf("delta %d has base %d, want %d", msg.GetVersion(), msg.GetDelta().GetBaseVersion(), base)
					}
					vs = append(vs, msg.GetVersion())
				}
				got = fmt.Sprint(vs)
			}
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func versions(from, to uint64) []uint64 {
	var out []uint64
	for v := from; v <= to; v++ {
		out = append(out, v)
	}
	return out
}

// TestReconnectStartsInFull checks a proxy that reconnects (here: its stream ended and it
// subscribed again) first gets the current snapshot in full, then deltas again.
func TestReconnectStartsInFull(t *testing.T) {
	m := startMesh(t, deltaMesh, deltaWorkloads...)
	p := proxy.New("sidecar~p", slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(m.ctx)
	m.subscribe(ctx, p, nil)
	m.converged(p)
	cancel()
	m.reg.Upsert(workload("b-2", "127.0.0.1:2003", "app", "b", "version", "v2", "swimlane", "feature-x"))
	m.published()
	m.subscribe(m.ctx, p, nil)
	m.converged(p)
	cur, _ := m.cp.Current()
	if streams, _ := m.sent.stream(p.Node); streams != 2 {
		t.Fatalf("%d streams, want 2", streams)
	}
	assertKinds(t, m.sent.kinds(p.Node, 0), fmt.Sprintf("full@%d", cur.Version))

	m.reg.Upsert(workload("b-2", "127.0.0.1:2004", "app", "b", "version", "v2", "swimlane", "feature-x"))
	m.converged(p)
	assertKinds(t, m.sent.kinds(p.Node, 0), fmt.Sprintf("full@%d", cur.Version), fmt.Sprintf("delta@%d(%d->%d +1 -0)", cur.Version+1, cur.Version, cur.Version+1))
}

// TestProxyResyncsOnVersionMismatch checks a proxy that holds another version than a delta's
// base does not apply it: it reconnects and gets the snapshot in full.
func TestProxyResyncsOnVersionMismatch(t *testing.T) {
	m := startMesh(t, deltaMesh, deltaWorkloads...)
	p := m.newProxy("sidecar~p")
	// Something other than the stream swapped the proxy's snapshot.
	other := &snapshot.Snapshot{Version: 1000, Mesh: p.Snapshot().Mesh}
	if err := other.Prepare(); err != nil {
		t.Fatal(err)
	}
	p.SetSnapshot(other)
	m.reg.Upsert(workload("b-2", "127.0.0.1:2003", "app", "b", "version", "v2", "swimlane", "feature-x"))
	cur := m.published()
	// Until it resyncs, the proxy's version stays 1000: wait for the snapshot to match.
	waitFor(t, "the proxy to resync", func() bool { return p.Snapshot().Version == cur.Version })
	m.converged(p)
	if streams, _ := m.sent.stream(p.Node); streams != 2 {
		t.Fatalf("%d streams, want 2", streams)
	}
	first := m.sent.kindsOf(p.Node, 0, 0)
	if last, want := first[len(first)-1], fmt.Sprintf("delta@%d(%d->%d +1 -0)", cur.Version, cur.Version-1, cur.Version); last != want {
		t.Errorf("the first stream ended with %s, want %s (the delta the proxy refused)", last, want)
	}
	assertKinds(t, m.sent.kindsOf(p.Node, 1, 0), fmt.Sprintf("full@%d", cur.Version))
}

// TestRegistryChangesBeyondMemory checks more registry changes between two publishes than
// the registry remembers are compiled (the endpoint patch cannot tell what changed), and
// still published as a delta of the one service they changed.
func TestRegistryChangesBeyondMemory(t *testing.T) {
	reg := registry.New()
	for _, w := range deltaWorkloads {
		reg.Upsert(w)
	}
	s, err := New(reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetConfig(parse(t, deltaMesh)); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Current()
	for i := 0; i < 10000; i++ { // the registry remembers 4,096 to 8,192
		reg.Upsert(workload("b-2", fmt.Sprintf("127.0.0.1:%d", 3000+i), "app", "b", "version", "v2", "swimlane", "feature-x"))
	}
	s.recompile() // what Run does on a change
	cur, _ := s.Current()
	// A patch copies service b, sharing its subsets; a compile builds them anew.
	if &cur.Snapshot.Service("b").Subsets[0] == &before.Snapshot.Service("b").Subsets[0] {
		t.Error("service b shares its subsets with the version before: the changes were patched, not compiled")
	}
	if cur.Snapshot.Service("a") != before.Snapshot.Service("a") {
		t.Error("service a, unchanged, was prepared again rather than shared")
	}
	if got := cur.Snapshot.Service("b").SubsetSet("v2").Endpoints; len(got) != 1 || got[0].Address != "127.0.0.1:12999" {
		t.Errorf("subset v2 = %v, want the last address", got)
	}
	if d := s.recent[len(s.recent)-1]; d.GetVersion() != cur.Version || len(d.GetDelta().GetServices()) != 1 || d.GetDelta().GetBaseVersion() != before.Version {
		t.Errorf("last delta %v, want %d -> %d with service b alone", d, before.Version, cur.Version)
	}
}

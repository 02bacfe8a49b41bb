package local

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"swimlane.dev/swimlane/internal/config"
	"swimlane.dev/swimlane/internal/lane"
	"swimlane.dev/swimlane/internal/registry"
	"swimlane.dev/swimlane/internal/snapshot"
)

// stopGrace is how long a workload gets between SIGTERM and SIGKILL.
const stopGrace = 5 * time.Second

// workload is one started workload: its sidecar, health check and process all stop when
// cancel is called; done closes once they have.
type workload struct {
	spec config.MeshWorkload
	// name is the workload's name in the registry, logs and metrics: the spec's name, with
	// "#N" for the Nth replacement while it overlaps its predecessor.
	name   string
	cancel context.CancelFunc
	done   chan struct{}
}

// checkWorkloads validates the workloads section before anything starts, so a bad file fails
// startup with file, line and field and nothing half-started.
func (m *Mesh) checkWorkloads(obj *config.Object[*config.Mesh]) error {
	var errs []string
	seen := map[string]bool{}
	for i, w := range obj.Spec.Workloads {
		field := fmt.Sprintf("spec.workloads[%d]", i)
		fail := func(f, format string, args ...any) {
			errs = append(errs, obj.Errorf(field+f, format, args...).Error())
		}
		if w.Name == "" {
			fail("", "name is required")
		} else if seen[w.Name] {
			fail(".name", "duplicate workload %q", w.Name)
		}
		seen[w.Name] = true
		if (len(w.Command) == 0) == (w.Address == "") {
			fail("", "exactly one of command (a process to start) or address (one already running) is required")
		}
		if w.Address != "" {
			if _, _, err := net.SplitHostPort(w.Address); err != nil {
				fail(".address", "%v", err)
			}
		}
		if w.Protocol != "" {
			if _, err := snapshot.ParseProtocol(w.Protocol); err != nil {
				fail(".protocol", "%v", err)
			}
		}
		if w.Health != nil {
			if w.Health.Path != "" && w.Health.GRPC {
				fail(".health", "path (HTTP) and grpc exclude each other")
			}
			if _, err := newHealthCheck(w.Health, "127.0.0.1:1"); err != nil {
				fail(".health", "%v", err)
			}
		}
		if l, ok := w.Labels[m.laneLabel()]; ok && !lane.Valid(l) {
			fail(".labels."+m.laneLabel(), "%q is not a lane name ([A-Za-z0-9._-]{1,63})", l)
		}
		for _, arg := range append(append([]string{}, w.Command...), envValues(w.Env)...) {
			if bad := unknownVars(arg); bad != "" {
				fail("", "unknown variable $%s (known: $PORT, $LANE, $WORKLOAD, $SWIMLANE_BIN)", bad)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("local: %s", strings.Join(errs, "\n"))
	}
	return nil
}

func envValues(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, v := range env {
		out = append(out, v)
	}
	return out
}

var knownVars = map[string]bool{"PORT": true, "LANE": true, "WORKLOAD": true, "SWIMLANE_BIN": true}

func unknownVars(s string) string {
	bad := ""
	os.Expand(s, func(name string) string {
		if !knownVars[name] && bad == "" {
			bad = name
		}
		return ""
	})
	return bad
}

// startWorkload starts one workload behind its own sidecar:
//
//	other proxies -> inbound listener -> app on $PORT
//	app -> HTTP(S)_PROXY = outbound listener -> other workloads' inbound listeners
//
// The workload joins the registry once its port accepts connections and leaves it when the
// process exits.
func (m *Mesh) startWorkload(meshCtx context.Context, spec config.MeshWorkload) error {
	protocol := snapshot.HTTP
	if spec.Protocol != "" {
		protocol, _ = snapshot.ParseProtocol(spec.Protocol)
	}
	ctx, cancel := context.WithCancel(meshCtx)
	m.mu.Lock()
	name := spec.Name
	if gen := m.generation[spec.Name]; gen > 0 {
		name = fmt.Sprintf("%s#%d", spec.Name, gen+1)
	}
	m.generation[spec.Name]++
	w := &workload{spec: spec, name: name, cancel: cancel, done: make(chan struct{})}
	m.running[spec.Name] = w
	m.mu.Unlock()
	if spec.Address != "" {
		m.reg.Upsert(registry.Workload{Name: name, Address: spec.Address, Protocol: protocol, Labels: spec.Labels})
		var h *healthCheck
		if spec.Health != nil {
			var err error
			if h, err = newHealthCheck(spec.Health, spec.Address); err != nil {
				cancel()
				return fmt.Errorf("local: workload %s: health: %w", spec.Name, err)
			}
		}
		m.goRun(func() {
			defer close(w.done)
			if h != nil {
				m.watchHealth(ctx, nil, name, h)
			}
			<-ctx.Done()
		})
		return nil
	}
	laneName := spec.Labels[m.laneLabel()]
	appPort, releasePort, err := reserveAppPort()
	if err != nil {
		return err
	}
	appAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(appPort))
	inLis, err := freeListener()
	if err != nil {
		releasePort()
		return err
	}
	outLis, err := freeListener()
	if err != nil {
		inLis.Close()
		releasePort()
		return err
	}

	// The sidecar outlives its app's stop: an app finishing its requests in flight after
	// SIGTERM may still call other services through it (and dial it anew to do so).
	sidecarCtx, stopSidecar := context.WithCancel(context.WithoutCancel(ctx))
	p := m.newProxy("sidecar~" + name)
	p.Labels = spec.Labels
	m.goRun(func() { <-sidecarCtx.Done(); m.admin.Remove(p) })
	m.goRun(func() { _ = p.Subscribe(sidecarCtx, m.cpAddr, nil) })
	m.goRun(func() { _ = p.ServeInbound(sidecarCtx, inLis, appAddr, protocol) })
	m.goRun(func() { _ = p.ServeOutbound(sidecarCtx, outLis) })

	vars := map[string]string{"PORT": strconv.Itoa(appPort), "LANE": laneName, "WORKLOAD": spec.Name, "SWIMLANE_BIN": m.opts.Self}
	expand := func(s string) string { return os.Expand(s, func(k string) string { return vars[k] }) }
	args := make([]string, len(spec.Command))
	for i, a := range spec.Command {
		args[i] = expand(a)
	}
	cmd := exec.Command(args[0], args[1:]...)
	proxyURL := "http://" + outLis.Addr().String()
	cmd.Env = append(os.Environ(),
		"PORT="+strconv.Itoa(appPort),
		"HTTP_PROXY="+proxyURL, "HTTPS_PROXY="+proxyURL, "http_proxy="+proxyURL, "https_proxy="+proxyURL,
		"NO_PROXY=localhost,127.0.0.1,::1", "no_proxy=localhost,127.0.0.1,::1",
	)
	for k, v := range spec.Env {
		cmd.Env = append(cmd.Env, k+"="+expand(v))
	}
	// Own process group, so stopping reaches the workload's children too; Pdeathsig so a
	// killed swimlane does not leave workloads behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	prefix := fmt.Sprintf("[%s %s] ", spec.Name, laneName)
	if laneName == "" {
		prefix = fmt.Sprintf("[%s] ", spec.Name)
	}
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		cancel()
		stopSidecar()
		releasePort()
		return fmt.Errorf("local: workload %s: start %q: %w", spec.Name, args[0], err)
	}
	m.log.Info("workload started", "workload", name, "lane", laneName, "pid", cmd.Process.Pid, "app", appAddr, "inbound", inLis.Addr().String(), "outbound", outLis.Addr().String())

	var outputs sync.WaitGroup
	outputs.Add(2)
	go m.prefixLines(&outputs, prefix, stdout)
	go m.prefixLines(&outputs, prefix, stderr)

	exited := make(chan struct{})
	m.goRun(func() {
		defer close(w.done)
		outputs.Wait()
		err := cmd.Wait()
		releasePort() // the app is gone, and its port with it
		stopSidecar()
		close(exited)
		m.reg.Remove(name)
		if ctx.Err() == nil {
			m.log.Warn("workload exited; its endpoints left the registry", "workload", name, "lane", laneName, "status", exitStatus(err))
			cancel() // its sidecar goes with it
		}
		m.mu.Lock()
		if m.running[spec.Name] == w {
			delete(m.running, spec.Name)
		}
		m.mu.Unlock()
	})
	m.goRun(func() { m.awaitReady(ctx, exited, name, spec, appAddr, inLis.Addr().String(), protocol) })
	m.goRun(func() {
		select {
		case <-exited:
		case <-ctx.Done():
			stop(cmd, exited)
		}
	})
	return nil
}

// awaitReady registers the workload once its app port accepts connections.
func (m *Mesh) awaitReady(ctx context.Context, exited <-chan struct{}, name string, spec config.MeshWorkload, appAddr, inbound string, protocol snapshot.Protocol) {
	tick := time.NewTicker(readinessPoll)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", appAddr, time.Second)
		if err == nil {
			c.Close()
			m.reg.Upsert(registry.Workload{Name: name, Address: inbound, Protocol: protocol, Labels: spec.Labels})
			m.log.Info("workload ready", "workload", name, "lane", spec.Labels[m.laneLabel()])
			if spec.Health != nil {
				if h, err := newHealthCheck(spec.Health, appAddr); err == nil {
					m.watchHealth(ctx, exited, name, h)
				}
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-exited:
			return
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM to the workload's process group, then SIGKILL after stopGrace.
func stop(cmd *exec.Cmd, exited <-chan struct{}) {
	pgid := -cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(stopGrace):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-exited
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// prefixLines copies r to the mesh output line by line with prefix, so the interleaved output
// of many workloads stays readable.
func (m *Mesh) prefixLines(wg *sync.WaitGroup, prefix string, r io.Reader) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		m.outMu.Lock()
		fmt.Fprintf(m.opts.Output, "%s%s\n", prefix, sc.Bytes())
		m.outMu.Unlock()
	}
}

// stopWorkload removes a running workload without failing requests (see drain).
func (m *Mesh) stopWorkload(ctx context.Context, name string) {
	m.mu.Lock()
	w := m.running[name]
	delete(m.running, name)
	m.mu.Unlock()
	if w != nil {
		m.drain(ctx, w)
	}
}

// drain marks w draining, so the proxies send it nothing new once they have that snapshot;
// then stops it (its app finishes what it has in flight on SIGTERM, its sidecar drains) and
// takes it out of the registry.
func (m *Mesh) drain(ctx context.Context, w *workload) {
	if m.reg.SetHealth(w.name, "draining") {
		_, v, _ := m.reg.List()
		wait, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := m.waitPropagated(wait, v); err != nil {
			m.log.Warn("workload drain: proxies did not all catch up; stopping anyway", "workload", w.name, "err", err)
		}
		cancel()
	}
	m.log.Info("workload removed from the mesh; stopping it", "workload", w.name)
	w.cancel()
	<-w.done
	m.reg.Remove(w.name)
}

// syncWorkloads makes the running workloads those of next: new ones start, removed ones are
// drained and stopped, and a changed one is replaced without a gap: its successor starts
// (under a new generation name), and the old one drains only once the successor is ready and
// every proxy knows it, so its lane never falls back in between.
func (m *Mesh) syncWorkloads(ctx context.Context, next []config.MeshWorkload) {
	want := map[string]config.MeshWorkload{}
	for _, w := range next {
		want[w.Name] = w
	}
	m.mu.Lock()
	var remove []string
	replaced := map[string]*workload{}
	for name, w := range m.running {
		spec, ok := want[name]
		switch {
		case !ok:
			remove = append(remove, name)
		case !reflect.DeepEqual(spec, w.spec):
			replaced[name] = w
		}
	}
	var add []config.MeshWorkload
	for _, w := range next {
		if _, running := m.running[w.Name]; !running || replaced[w.Name] != nil {
			add = append(add, w)
		}
	}
	m.mu.Unlock()
	for _, spec := range add {
		if err := m.startWorkload(ctx, spec); err != nil {
			m.log.Error("workload could not start", "workload", spec.Name, "err", err)
			continue
		}
		if old := replaced[spec.Name]; old != nil {
			m.awaitSuccessor(ctx, spec.Name)
			m.drain(ctx, old)
		}
	}
	for _, name := range remove {
		m.stopWorkload(ctx, name)
	}
}

// awaitSuccessor waits (at most 30s) until the running workload named name is registered and
// every proxy runs a snapshot with it.
func (m *Mesh) awaitSuccessor(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m.mu.Lock()
	w := m.running[name]
	m.mu.Unlock()
	for {
		ws, v, changed := m.reg.List()
		for _, r := range ws {
			if r.Name == w.name {
				_ = m.waitPropagated(ctx, v)
				return
			}
		}
		select {
		case <-ctx.Done():
			m.log.Warn("replacement not ready in time; draining its predecessor anyway", "workload", w.name)
			return
		case <-w.done:
			return
		case <-changed:
		}
	}
}

// Package e2e tests Swimlane as a user runs it: the real binary, built once, started as a
// process, driven over HTTP on loopback. Every process a test starts is stopped at its end,
// and the tests check that the workloads a mesh started are gone with it.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// binary is the swimlane binary under test, built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "swimlane-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "swimlane")
	build := exec.Command("go", "build", "-o", binary, "swimlane.dev/swimlane/cmd/swimlane")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build swimlane:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is one running swimlane command with its combined output captured.
type process struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// start runs `swimlane args...` in dir ("" for a temp dir) and stops it when the test ends.
func start(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{t: t, cmd: exec.Command(binary, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Dir = t.TempDir()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("output of swimlane %s:\n%s", strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

// stop interrupts the process as Ctrl-C would and waits for it; it kills it if it hangs.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.t.Errorf("swimlane did not stop within 15s of SIGINT; killing it")
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited waits for the process to end by itself and returns its error.
func (p *process) exited(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return errors.New("still running")
	}
}

// waitFor polls the output until re matches, and returns its submatches.
func (p *process) waitFor(re string, timeout time.Duration) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		if m := rx.FindStringSubmatch(p.out.String()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := rx.FindStringSubmatch(p.out.String()); m != nil {
				return m
			}
			p.t.Fatalf("swimlane exited (%v) before printing %q:\n%s", p.err, re, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %q in swimlane's output within %s:\n%s", re, timeout, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// workloadPIDs returns the pid of every workload the mesh logged as started.
func (p *process) workloadPIDs() map[string]int {
	out := map[string]int{}
	for _, m := range regexp.MustCompile(`msg="workload started" workload=(\S+) .*?pid=(\d+)`).FindAllStringSubmatch(p.out.String(), -1) {
		pid, _ := strconv.Atoi(m[2])
		out[m[1]] = pid
	}
	return out
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// the state follows the command name in parentheses: "123 (swimlane) S ..."
	i := bytes.LastIndexByte(data, ')')
	return i >= 0 && i+2 < len(data) && data[i+2] != 'Z'
}

// get sends a GET with headers and returns status and body.
func get(t *testing.T, url string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stopped(p *process) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

var _ = syscall.SIGTERM

// traffic is a client loop that sends requests until the test ends, counting failures (any
// error or non-200) and keeping the last good body.
type traffic struct {
	total, failed atomic.Int64
	last          atomic.Value // string
	firstFailure  atomic.Value // string
}

// startTraffic sends GET url with headers in a loop until the test ends.
func startTraffic(t *testing.T, url string, headers ...string) *traffic {
	tr := &traffic{}
	tr.last.Store("")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 10 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			for i := 0; i+1 < len(headers); i += 2 {
				req.Header.Set(headers[i], headers[i+1])
			}
			resp, err := client.Do(req)
			tr.total.Add(1)
			if err != nil {
				tr.fail(err.Error())
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				tr.fail(fmt.Sprintf("%d %s", resp.StatusCode, body))
				continue
			}
			tr.last.Store(string(body))
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })
	return tr
}

func (tr *traffic) fail(why string) {
	tr.failed.Add(1)
	tr.firstFailure.CompareAndSwap(nil, why)
}

// lastBody is the body of the last successful request.
func (tr *traffic) lastBody() string { return tr.last.Load().(string) }

// check fails the test if any request failed.
func (tr *traffic) check(t *testing.T) {
	t.Helper()
	if n := tr.failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed; first: %v", n, tr.total.Load(), tr.firstFailure.Load())
	}
}

// waitMore waits until n more requests have been sent.
func (tr *traffic) waitMore(t *testing.T, n int64) {
	t.Helper()
	target := tr.total.Load() + n
	eventually(t, 30*time.Second, fmt.Sprintf("%d more requests", n), func() bool { return tr.total.Load() >= target })
}

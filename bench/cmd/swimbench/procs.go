package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one process the harness started, in its own process group so that the whole tree
// (nginx master and worker, for instance) is measured and stopped together.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

var (
	procsMu sync.Mutex
	procs   []*proc
)

// cpuSet is the CPU list a process is pinned to with taskset ("" for none).
type cpuSet string

// start runs argv, pinned to cpus when pinning is on, with extra environment env. Its output
// goes to a log file in dir.
func start(dir, name string, cpus cpuSet, env []string, argv ...string) (*proc, error) {
	if cpus != "" && *pin {
		argv = append([]string{tasksetBin, "-c", string(cpus)}, argv...)
	}
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	procsMu.Lock()
	procs = append(procs, p)
	procsMu.Unlock()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logTail is the end of the process's output, for error messages.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log.Name())
	if len(b) > 800 {
		b = b[len(b)-800:]
	}
	return strings.TrimSpace(string(b))
}

// stop ends the process group: SIGTERM, then SIGKILL after a grace period.
func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that ignored SIGTERM (none expected) go too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	p.log.Close()
	procsMu.Lock()
	for i, q := range procs {
		if q == p {
			procs = append(procs[:i], procs[i+1:]...)
			break
		}
	}
	procsMu.Unlock()
}

func stopAll() {
	procsMu.Lock()
	all := append([]*proc(nil), procs...)
	procsMu.Unlock()
	for i := len(all) - 1; i >= 0; i-- {
		all[i].stop()
	}
}

// groupPIDs lists the live processes of p's process group.
func (p *proc) groupPIDs() []int {
	pgid := p.cmd.Process.Pid
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := statFields(pid)
		if len(f) > 5 {
			if g, _ := strconv.Atoi(f[2]); g == pgid {
				out = append(out, pid)
			}
		}
	}
	return out
}

// statFields are /proc/PID/stat's fields from the state on (index 0 = state, field 3;
// index 2 = pgrp, 11 = utime, 12 = stime).
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

var clkTck = 100.0 // USER_HZ: 100 on every Linux this runs on

// cpuSeconds is the user+system CPU time of the process group so far (live members; the
// measured servers do not fork during a measurement).
func (p *proc) cpuSeconds() float64 {
	var ticks float64
	for _, pid := range p.groupPIDs() {
		f := statFields(pid)
		if len(f) > 12 {
			u, _ := strconv.ParseFloat(f[11], 64) // utime (field 14)
			s, _ := strconv.ParseFloat(f[12], 64) // stime (field 15)
			ticks += u + s
		}
	}
	return ticks / clkTck
}

// pssMiB is the proportional set size of the process group, from smaps_rollup.
func (p *proc) pssMiB() float64 {
	var kb float64
	for _, pid := range p.groupPIDs() {
		if isTaskset(pid) {
			continue
		}
		f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
				n, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
				kb += n
				break
			}
		}
		f.Close()
	}
	return kb / 1024
}

func isTaskset(pid int) bool {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b)) == "taskset"
}

// freePort returns a loopback address with a port free right now.
func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitPort waits until addr accepts connections or the process exits.
func waitPort(p *proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited: %s", p.name, p.logTail())
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: %s not listening after %s", p.name, addr, timeout)
}

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// memoryVariants are the GOMAXPROCS settings the sidecar's memory is measured with, unpinned.
var memoryVariants = []struct{ name, env string }{{"GOMAXPROCS default", ""}, {"GOMAXPROCS=1", "GOMAXPROCS=1"}}

// memoryRun measures one outbound sidecar's PSS, unpinned (GOMAXPROCS default = CPUs, and 1):
// idle and at 1000 rps with the bench's small config, then the same with the large config
// (large services x 3 lanes, from a second control plane), whose apply time it also records.
func (b *bench) memoryRun(run int) {
	large := filepath.Join(b.dir, "mesh-large.yaml")
	if err := os.WriteFile(large, []byte(b.meshFile(*largeN)), 0o644); err != nil {
		b.memFail("write large mesh", err)
		return
	}
	largeCtl := freeAddr()
	cp, err := start(b.dir, "control-large", cpuLoad, nil, b.bin("swimlane"), "control", "-f", large, "--listen", largeCtl)
	if err != nil {
		b.memFail("control-large", err)
		return
	}
	defer cp.stop()
	if err := waitPort(cp, largeCtl, 60*time.Second); err != nil {
		b.memFail("control-large", err)
		return
	}
	for _, v := range memoryVariants {
		logf("run %d/%d memory %s", run+1, *runs, v.name)
		m := map[string]float64{}
		for _, cfg := range []struct {
			suffix, control string
			services        int
		}{{"", b.control, len(benchServices())}, {"_large", largeCtl, len(benchServices()) + *largeN}} {
			idle, load, apply, err := b.sidecarMemory(cfg.control, v.env, cfg.services)
			if err != nil {
				b.memFail(v.name+cfg.suffix, err)
				continue
			}
			m["pss_idle"+cfg.suffix], m["pss_load"+cfg.suffix], m["apply_s"+cfg.suffix] = idle, load, apply
		}
		m["control_pss_large"] = cp.pssMiB()
		logf("  idle %.1f, 1000 rps %.1f MiB; large config: idle %.1f, 1000 rps %.1f MiB (applied in %.2fs)",
			m["pss_idle"], m["pss_load"], m["pss_idle_large"], m["pss_load_large"], m["apply_s_large"])
		if b.samples["memory"] == nil {
			b.samples["memory"] = map[string][]map[string]float64{}
		}
		b.samples["memory"][v.name] = append(b.samples["memory"][v.name], m)
	}
}

func (b *bench) memFail(what string, err error) {
	logf("  memory %s FAILED: %v", what, err)
	if b.failed["memory"] == nil {
		b.failed["memory"] = map[string]string{}
	}
	b.failed["memory"][what] = err.Error()
}

// sidecarMemory starts an outbound sidecar on control (unpinned, with env), waits until it
// holds at least services services, and returns its PSS idle and after a 1000 rps run.
func (b *bench) sidecarMemory(control, env string, services int) (idle, load, apply float64, err error) {
	dir, err := os.MkdirTemp(b.dir, "memory-")
	if err != nil {
		return 0, 0, 0, err
	}
	addr, admin := freeAddr(), freeAddr()
	var envs []string
	if env != "" {
		envs = []string{env}
	}
	t0 := time.Now()
	p, err := start(dir, "swimlane-outbound", "", envs, b.bin("swimlane-proxy"), "--control", control,
		"--outbound", addr, "--admin", admin, "--node", "bench-memory")
	if err != nil {
		return 0, 0, 0, err
	}
	defer p.stop()
	if err := waitPort(p, addr, 10*time.Second); err != nil {
		return 0, 0, 0, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if n := proxyServices(admin); n >= services {
			break
		}
		if time.Now().After(deadline) || p.exited() {
			return 0, 0, 0, fmt.Errorf("sidecar did not apply %d services within 60s: %s", services, p.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	apply = time.Since(t0).Seconds()
	in := &instance{target: "swimlane-1hop", proto: "http1", addr: addr, host: svc1hop["http1"], measure: []*proc{p}, hops: 1}
	if err := b.waitServes(in); err != nil {
		return 0, 0, 0, err
	}
	time.Sleep(time.Second) // let the first snapshot's garbage go
	idle = p.pssMiB()
	if _, err := b.runLoad(in, 1000, 32, *memDur); err != nil {
		return 0, 0, 0, err
	}
	return idle, p.pssMiB(), apply, nil
}

// proxyServices is the number of services in the proxy's snapshot (admin /proxies).
func proxyServices(admin string) int {
	resp, err := http.Get("http://" + admin + "/proxies")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var rows []struct {
		Services int `json:"services"`
	}
	if json.NewDecoder(resp.Body).Decode(&rows) != nil || len(rows) == 0 {
		return -1
	}
	return rows[0].Services
}

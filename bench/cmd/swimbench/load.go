package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// result is one load run.
type result struct {
	qps           float64 // achieved requests (or messages) per second
	p50, p90, p99 float64 // milliseconds (fortio and tcpload runs only)
	ok, errs      int64
	seconds       float64 // wall time of the run
	cpu           float64 // CPU seconds used by the measured proxy processes during the run
	tool          string
}

// runLoad runs the load generator against in: at qps requests per second (0 = as fast as
// possible) over conns connections for d. Fixed-rate runs use fortio (latency histograms);
// maximum-rate runs use wrk (HTTP/1.1) or h2load (h2c), both C and lighter than fortio, and
// fortio for gRPC. TCP runs, fixed and maximum rate, use `swimbench tcpload` for every
// target: fortio cannot open the CONNECT tunnel of the two-hop path.
func (b *bench) runLoad(in *instance, qps float64, conns int, d time.Duration) (*result, error) {
	var argv []string
	tool := "fortio"
	jsonOut := filepath.Join(b.dir, fmt.Sprintf("fortio-%d.json", time.Now().UnixNano()))
	headers := []string{"x-swimlane: " + laneName}
	switch {
	case in.proto == "tcp":
		tool = "tcpload"
		argv = []string{b.bin("swimbench"), "tcpload", "-addr", in.addr, "-c", strconv.Itoa(conns),
			"-qps", strconv.FormatFloat(qps, 'f', -1, 64), "-t", d.String(), "-size", strconv.Itoa(payloadSize)}
		if in.connectTo != "" {
			argv = append(argv, "-connect", in.connectTo)
		}
	case qps == 0 && in.proto == "http1" && b.tools["wrk"] != "":
		tool = "wrk"
		argv = []string{b.tools["wrk"], "-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(d.Seconds())), "--timeout", "5s"}
		for _, h := range headers {
			argv = append(argv, "-H", h)
		}
		if in.host != "" {
			argv = append(argv, "-H", "Host: "+in.host)
		}
		argv = append(argv, "http://"+in.addr+"/")
	case qps == 0 && in.proto == "h2c" && b.tools["h2load"] != "":
		tool = "h2load"
		argv = []string{b.tools["h2load"], "-t1", fmt.Sprintf("-c%d", conns), "-m1", "-D", fmt.Sprintf("%d", int(d.Seconds()))}
		for _, h := range headers {
			argv = append(argv, "-H", h)
		}
		if in.host != "" {
			argv = append(argv, "-H", ":authority: "+in.host)
		}
		argv = append(argv, "http://"+in.addr+"/")
	default:
		argv = []string{b.tools["fortio"], "load", "-qps", strconv.FormatFloat(qps, 'f', -1, 64), "-c", strconv.Itoa(conns),
			"-t", d.String(), "-json", jsonOut, "-p", "50,90,99", "-loglevel", "Error", "-allow-initial-errors"}
		target := "http://" + in.addr + "/"
		switch in.proto {
		case "h2c":
			argv = append(argv, "-h2", "-stdclient")
		case "grpc":
			argv = append(argv, "-grpc", "-ping", "-payload-size", strconv.Itoa(payloadSize))
			target = in.addr
			if in.grpcTo != "" {
				target = in.grpcTo
			}
		}
		for _, h := range headers {
			argv = append(argv, "-H", h)
		}
		if in.host != "" {
			argv = append(argv, "-H", "Host: "+in.host)
		}
		argv = append(argv, target)
	}
	if *pin {
		argv = append([]string{tasksetBin, "-c", string(cpuLoad)}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), in.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cpu0 := in.cpuSeconds()
	t0 := time.Now()
	err := cmd.Run()
	r := &result{seconds: time.Since(t0).Seconds(), tool: tool}
	r.cpu = in.cpuSeconds() - cpu0
	out := append(stdout.Bytes(), stderr.Bytes()...)
	if err != nil && tool != "fortio" { // fortio exits non-zero on errors, parsed below
		return nil, fmt.Errorf("%s: %v: %s", tool, err, tail(out))
	}
	switch tool {
	case "wrk":
		return r, parseWrk(r, string(out), d)
	case "h2load":
		return r, parseH2load(r, string(out))
	case "tcpload":
		return r, parseTCPLoad(r, stdout.Bytes(), stderr.Bytes())
	}
	defer os.Remove(jsonOut)
	if perr := parseFortio(r, jsonOut); perr != nil {
		return nil, fmt.Errorf("fortio: %v (%v): %s", perr, err, tail(out))
	}
	if r.ok == 0 {
		return nil, fmt.Errorf("fortio: no successful request: %s", tail(out))
	}
	return r, nil
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

func parseFortio(r *result, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var v struct {
		ActualQPS         float64
		ActualDuration    float64 // nanoseconds
		RetCodes          map[string]int64
		DurationHistogram struct {
			Count       int64
			Percentiles []struct {
				Percentile float64
				Value      float64
			}
		}
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	for code, n := range v.RetCodes {
		switch code {
		case "200", "SERVING", "OK":
			r.ok += n
		default:
			r.errs += n
		}
	}
	r.qps = v.ActualQPS * float64(r.ok) / float64(max(r.ok+r.errs, 1))
	if v.ActualDuration > 0 {
		r.seconds = v.ActualDuration / 1e9
	}
	for _, p := range v.DurationHistogram.Percentiles {
		ms := p.Value * 1000
		switch p.Percentile {
		case 50:
			r.p50 = ms
		case 90:
			r.p90 = ms
		case 99:
			r.p99 = ms
		}
	}
	return nil
}

// parseTCPLoad reads tcpload's JSON line; its stderr says why messages failed.
func parseTCPLoad(r *result, stdout, stderr []byte) error {
	var v tcpLoadResult
	if err := json.Unmarshal(stdout, &v); err != nil {
		return fmt.Errorf("tcpload: %v: %s", err, tail(append(stdout, stderr...)))
	}
	r.ok, r.errs, r.qps, r.seconds = v.Count, v.Errors, v.QPS, v.Seconds
	r.p50, r.p90, r.p99 = v.P50Ms, v.P90Ms, v.P99Ms
	if r.ok == 0 {
		return fmt.Errorf("tcpload: no message echoed: %s", tail(stderr))
	}
	return nil
}

var (
	wrkRPS    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkTotal  = regexp.MustCompile(`(\d+) requests in`)
	wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSock   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func parseWrk(r *result, out string, d time.Duration) error {
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("wrk: no Requests/sec in: %s", tail([]byte(out)))
	}
	r.qps, _ = strconv.ParseFloat(m[1], 64)
	var total int64
	if m := wrkTotal.FindStringSubmatch(out); m != nil {
		total, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.errs += n
	}
	if m := wrkSock.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.errs += n
		}
	}
	r.ok = total - r.errs
	if r.errs > 0 && total > 0 {
		r.qps *= float64(r.ok) / float64(total)
	}
	if r.ok <= 0 {
		return fmt.Errorf("wrk: no successful request: %s", tail([]byte(out)))
	}
	return nil
}

var (
	h2RPS  = regexp.MustCompile(`finished in [0-9.]+m?s, ([0-9.]+) req/s`)
	h2Reqs = regexp.MustCompile(`requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored`)
	h2Code = regexp.MustCompile(`status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
)

func parseH2load(r *result, out string) error {
	m := h2RPS.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("h2load: no req/s in: %s", tail([]byte(out)))
	}
	r.qps, _ = strconv.ParseFloat(m[1], 64)
	if m := h2Reqs.FindStringSubmatch(out); m != nil {
		r.ok, _ = strconv.ParseInt(m[1], 10, 64)
		f, _ := strconv.ParseInt(m[2], 10, 64)
		e, _ := strconv.ParseInt(m[3], 10, 64)
		r.errs = f + e
	}
	if m := h2Code.FindStringSubmatch(out); m != nil {
		var non2xx int64
		for _, s := range m[2:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			non2xx += n
		}
		r.errs += non2xx
		r.ok -= non2xx
	}
	if r.ok+r.errs > 0 {
		r.qps *= float64(r.ok) / float64(r.ok+r.errs)
	}
	if r.ok <= 0 {
		return fmt.Errorf("h2load: no successful request: %s", tail([]byte(out)))
	}
	return nil
}

package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

// tcpLoadResult is what `swimbench tcpload` prints (one JSON object on stdout) and what the
// harness reads back.
type tcpLoadResult struct {
	Count   int64   `json:"count"`   // messages whose full echo came back intact
	Errors  int64   `json:"errors"`  // failed dials, CONNECTs and exchanges
	QPS     float64 `json:"qps"`     // Count / Seconds
	Seconds float64 `json:"seconds"` // from the first scheduled send to the last answer
	P50Ms   float64 `json:"p50_ms"`
	P90Ms   float64 `json:"p90_ms"`
	P99Ms   float64 `json:"p99_ms"`
}

// tcpLoad is one load run: conns connections to addr (each first tunnelled with CONNECT to
// connectTo when set), each sending a size-byte message and waiting for its full echo, at qps
// messages per second in total (0: each connection as fast as it can) for duration.
type tcpLoad struct {
	addr, connectTo string
	conns           int
	qps             float64
	duration        time.Duration
	size            int
	timeout         time.Duration
}

// runTCPLoad is `swimbench tcpload`: the load generator of the TCP runs. fortio cannot open
// a CONNECT tunnel, which is how apps reach a TCP service through their outbound sidecar, so
// every TCP target is measured with this one for comparable figures.
func runTCPLoad(args []string) {
	fs := flag.NewFlagSet("tcpload", flag.ExitOnError)
	l := tcpLoad{}
	fs.StringVar(&l.addr, "addr", "", "address to connect to (loopback only)")
	fs.StringVar(&l.connectTo, "connect", "", "host:port to open a CONNECT tunnel to through -addr first (an outbound sidecar)")
	fs.IntVar(&l.conns, "c", 32, "connections")
	fs.Float64Var(&l.qps, "qps", 1000, "messages per second over all connections (0: as fast as possible)")
	fs.DurationVar(&l.duration, "t", 4*time.Second, "length of the run")
	fs.IntVar(&l.size, "size", payloadSize, "message size in bytes (at least 8)")
	fs.DurationVar(&l.timeout, "timeout", 5*time.Second, "limit on a dial with its CONNECT, and how long the last answer may take after the run")
	_ = fs.Parse(args)
	if err := l.check(); err != nil {
		fmt.Fprintln(os.Stderr, "swimbench tcpload:", err)
		os.Exit(2)
	}
	out, _ := json.Marshal(l.run())
	fmt.Println(string(out))
}

func (l *tcpLoad) check() error {
	switch {
	case l.addr == "":
		return errors.New("-addr is required")
	case l.conns < 1 || l.qps < 0 || l.duration <= 0 || l.timeout <= 0:
		return errors.New("-c, -t and -timeout must be positive, -qps at least 0")
	case l.size < 8:
		return errors.New("-size must be at least 8 (the message's sequence number)")
	}
	host, _, err := net.SplitHostPort(l.addr)
	if err != nil {
		return err
	}
	// A load generator must not be pointed at someone else's machine by a typo.
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-addr %s is not a loopback address", l.addr)
	}
	return nil
}

// run dials every connection, then loads them for the duration and sums up.
//
// At a fixed rate, connection i sends every conns/qps seconds, the connections offset from
// each other so the sends spread evenly. A message's latency runs from its scheduled send time
// when the connection was still busy with the previous answer at that time (coordinated
// omission: a slow answer delays the next sends, and that wait counts), and from the actual
// send otherwise: Go's timers wake up to a millisecond late (the runtime sleeps in whole
// milliseconds), which is the generator's lateness, not the target's.
func (l *tcpLoad) run() tcpLoadResult {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		res       tcpLoadResult
		wg        sync.WaitGroup
	)
	conns := make([]net.Conn, l.conns)
	// One deadline for all the dials: a stuck proxy costs one timeout, not one per connection.
	setup := time.Now().Add(l.timeout)
	for i := range conns {
		c, err := l.dial(setup)
		if err != nil {
			fmt.Fprintln(os.Stderr, "swimbench tcpload:", err)
			res.Errors++
			continue
		}
		conns[i] = c
	}
	start := time.Now()
	end := start.Add(l.duration)
	// One deadline for the whole run bounds every read and write: a stuck target ends the
	// run `timeout` after its end at the latest.
	deadline := end.Add(l.timeout)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, errs := l.connection(i, conns[i], start, end, deadline)
			mu.Lock()
			latencies = append(latencies, lat...)
			res.Errors += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.Count = int64(len(latencies))
	res.QPS = float64(res.Count) / res.Seconds
	slices.Sort(latencies)
	res.P50Ms, res.P90Ms, res.P99Ms = percentileMs(latencies, 50), percentileMs(latencies, 90), percentileMs(latencies, 99)
	return res
}

// connection runs connection i until end (c is nil when its first dial failed) and returns
// its latencies and error count. After a failure it dials again, at the next scheduled send.
func (l *tcpLoad) connection(i int, c net.Conn, start, end, deadline time.Time) (lat []time.Duration, errs int64) {
	fixed := l.qps > 0
	var interval time.Duration
	next := start
	if fixed {
		interval = time.Duration(float64(time.Second) * float64(l.conns) / l.qps)
		next = start.Add(interval * time.Duration(i) / time.Duration(l.conns))
		lat = make([]time.Duration, 0, int(l.duration/interval)+1)
	}
	out, in := make([]byte, l.size), make([]byte, l.size)
	for j := range out {
		out[j] = byte('a' + j%26)
	}
	prevDone := start
	fail := func(err error) {
		if errs == 0 { // the first says why; a refusing target would fill the log
			fmt.Fprintln(os.Stderr, "swimbench tcpload:", err)
		}
		errs++
		if c != nil {
			c.Close()
			c = nil
		}
		time.Sleep(10 * time.Millisecond) // no busy loop against a refusing target
	}
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	if c != nil {
		c.SetDeadline(deadline)
	}
	for seq := uint64(0); ; seq++ {
		// The run ends on time even when the schedule fell behind (failures, a slow target).
		if !time.Now().Before(end) || fixed && !next.Before(end) {
			return lat, errs
		}
		if wait := time.Until(next); fixed && wait > 0 {
			time.Sleep(wait)
		}
		sent := time.Now()
		from := sent
		if fixed && prevDone.After(next) {
			from = next
		}
		next = next.Add(interval)
		if c == nil {
			var err error
			by := sent.Add(l.timeout)
			if by.After(deadline) {
				by = deadline
			}
			if c, err = l.dial(by); err != nil {
				fail(err)
				continue
			}
			c.SetDeadline(deadline)
		}
		// The sequence number tells the echoes apart: a stale or reordered echo is an error.
		binary.BigEndian.PutUint64(out, seq)
		err := l.exchange(c, out, in)
		prevDone = time.Now()
		if err != nil {
			fail(err)
			continue
		}
		lat = append(lat, prevDone.Sub(from))
	}
}

// exchange writes out and reads its echo into in.
func (l *tcpLoad) exchange(c net.Conn, out, in []byte) error {
	if _, err := c.Write(out); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if _, err := io.ReadFull(c, in); err != nil {
		return fmt.Errorf("read the echo: %w", err)
	}
	if !bytes.Equal(in, out) {
		return errors.New("the echo differs from the message")
	}
	return nil
}

// dial connects to addr and, when connectTo is set, opens the CONNECT tunnel, all before
// deadline.
func (l *tcpLoad) dial(deadline time.Time) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", l.addr, time.Until(deadline))
	if err != nil {
		return nil, err
	}
	if l.connectTo == "" {
		return c, nil
	}
	c.SetDeadline(deadline)
	if _, err := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", l.connectTo, l.connectTo); err != nil {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s: %w", l.connectTo, err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	switch {
	case err != nil:
		err = fmt.Errorf("CONNECT %s: %w", l.connectTo, err)
	case resp.StatusCode != http.StatusOK:
		err = fmt.Errorf("CONNECT %s: %s", l.connectTo, resp.Status)
	case br.Buffered() > 0:
		// The echo speaks only when spoken to; bytes here would be lost with the reader.
		err = fmt.Errorf("CONNECT %s: %d unexpected bytes after the answer", l.connectTo, br.Buffered())
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// percentileMs is the p-th percentile of sorted (nearest rank), in milliseconds; 0 when
// there is none (the count says why).
func percentileMs(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return float64(sorted[max(i, 0)]) / float64(time.Millisecond)
}

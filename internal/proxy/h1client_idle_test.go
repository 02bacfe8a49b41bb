package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestH1IdleTimeoutRetiresConnections: a pooled upstream connection is reused while it has
// been idle less than the idle timeout, counted from when its last request was taken, and a
// new one is dialled once it has been idle longer (the upstream may have closed it by then).
func TestH1IdleTimeoutRetiresConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	c := newH1Client(&net.Dialer{})
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, idle := range c.idle {
			for _, pc := range idle.conns {
				pc.close()
			}
		}
	})
	get := func() {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/", nil)
		resp, err := c.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body) // read to its end: the connection goes back
		if err != nil || string(body) != "ok" {
			t.Fatalf("answer %q, %v", body, err)
		}
		resp.Body.Close()
	}
	const timeout = 50 * time.Millisecond
	c.idleTimeout = time.Hour
	get()
	get()
	if n := accepted.Load(); n != 1 {
		t.Fatalf("%d connections for two requests within the idle timeout, want 1", n)
	}
	c.idleTimeout = timeout
	get() // taken now: idle from here on
	time.Sleep(2 * timeout)
	get()
	if n := accepted.Load(); n != 2 {
		t.Errorf("%d connections after one sat idle past the idle timeout, want 2 (a new one)", n)
	}
}

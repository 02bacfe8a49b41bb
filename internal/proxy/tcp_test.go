package proxy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/proxy"
	"swimlane.dev/swimlane/internal/snapshot"
)

// halfCloser is a connection whose write side can be closed alone.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// checkEcho sends data, half-closes, and expects the same bytes back followed by EOF: bytes
// flow both ways and the client's half-close reaches the echo server (which only answers EOF
// once it saw the client's).
func checkEcho(t *testing.T, c halfCloser, size int) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	c.SetDeadline(time.Now().Add(waitTimeout))
	// Write concurrently with reading: the echo answers while the data is still arriving, and
	// a writer that waited for the whole payload to be accepted would fill every buffer.
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the echo: %v (got %d of %d bytes)", err, len(got), size)
	}
	if err := <-werr; err != nil {
		t.Fatalf("writing: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo differs: got %d bytes, want %d", len(got), size)
	}
}

// startBannerServer starts a TCP server that writes banner, half-closes its write side, then
// reads what the client sends until EOF and delivers it on the returned channel: the upstream
// side of a half-close.
func startBannerServer(t testing.TB, banner string) (string, <-chan []byte) {
	t.Helper()
	got := make(chan []byte, 16)
	addr := proxy.ServeConns(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(waitTimeout))
		if _, err := io.WriteString(c, banner); err != nil {
			return
		}
		_ = c.(*net.TCPConn).CloseWrite()
		data, _ := io.ReadAll(c)
		got <- data
	})
	return addr, got
}

// checkUpstreamHalfClose reads the banner up to EOF (the upstream half-closed), then sends
// data, which the upstream must still receive: the client's direction stays open.
func checkUpstreamHalfClose(t *testing.T, c halfCloser, banner string, received <-chan []byte) {
	t.Helper()
	c.SetDeadline(time.Now().Add(waitTimeout))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != banner {
		t.Fatalf("banner: got %q, %v; want %q then EOF", b, err, banner)
	}
	_, werr := io.WriteString(c, "still talking")
	if werr == nil {
		werr = c.CloseWrite()
	}
	select {
	case data := <-received:
		if string(data) != "still talking" {
			if werr != nil {
				t.Logf("client write after the upstream's half-close: %v", werr)
			}
			knownBug(t, "over a CONNECT tunnel to a tcp service, the upstream's half-close closes the client's whole "+
				"connection (the upstream then got %q, want %q): tunnelConn (listen.go) has no CloseWrite, so pipe "+
				"falls back to Close on the client side", data, "still talking")
		}
	case <-time.After(waitTimeout):
		t.Fatal("upstream never finished reading")
	}
}

// TestTCP checks opaque TCP: a service whose workload speaks tcp, reached through a CONNECT
// tunnel on the outbound listener (directly and through the workload's inbound sidecar), and
// an inbound sidecar with protocol tcp on its own. Bytes echo both ways and half-closes pass in
// both directions.
func TestTCP(t *testing.T) {
	t.Parallel()
	m := newMesh(t, meshYAML("echo", "echo2", "banner", "banner2"))
	echo := startTCPEcho(t)
	banner, bannerGot := startBannerServer(t, "hello from upstream")
	banner2, banner2Got := startBannerServer(t, "hello from upstream")

	sidecar := m.newProxy("sidecar~echo2")
	echoInbound := inbound(t, sidecar, echo, snapshot.TCP)
	banner2Sidecar := m.newProxy("sidecar~banner2")
	banner2Inbound := inbound(t, banner2Sidecar, banner2, snapshot.TCP)
	m.register(
		workload("echo-main", "echo", "main", echo, snapshot.TCP),
		workload("echo2-main", "echo2", "main", echoInbound, snapshot.TCP),
		workload("banner-main", "banner", "main", banner, snapshot.TCP),
		workload("banner2-main", "banner2", "main", banner2Inbound, snapshot.TCP),
	)
	p := m.newProxy("sidecar~client")
	out := outbound(t, p)

	for _, size := range []int{1, 1 << 20} {
		name := map[int]string{1: "1 byte", 1 << 20: "1 MiB"}[size]
		t.Run("CONNECT to a tcp service/"+name, func(t *testing.T) {
			checkEcho(t, mustConnect(t, out, "echo:7"), size)
		})
		t.Run("CONNECT through the inbound sidecar/"+name, func(t *testing.T) {
			checkEcho(t, mustConnect(t, out, "echo2.default.svc.cluster.local:7"), size)
		})
		t.Run("inbound tcp sidecar alone/"+name, func(t *testing.T) {
			c, err := net.Dial("tcp", echoInbound)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			checkEcho(t, c.(*net.TCPConn), size)
		})
	}

	t.Run("CONNECT, bytes right after the CONNECT request", func(t *testing.T) {
		// A client may pipeline its first bytes behind the CONNECT request, before the 200:
		// the bytes the proxy's HTTP server already buffered must not be lost.
		c, err := net.Dial("tcp", out)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitTimeout))
		if _, err := io.WriteString(c, "CONNECT echo:7 HTTP/1.1\r\nHost: echo:7\r\n\r\npipelined"); err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).CloseWrite()
		all, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		const want = "HTTP/1.1 200 Connection established\r\n\r\npipelined"
		if string(all) != want {
			t.Errorf("got %q, want %q", all, want)
		}
	})

	t.Run("upstream half-close, inbound tcp sidecar", func(t *testing.T) {
		c, err := net.Dial("tcp", banner2Inbound)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		checkUpstreamHalfClose(t, c.(*net.TCPConn), "hello from upstream", banner2Got)
	})
	t.Run("upstream half-close, CONNECT", func(t *testing.T) {
		checkUpstreamHalfClose(t, mustConnect(t, out, "banner:7"), "hello from upstream", bannerGot)
	})

	t.Run("CONNECT to a tcp service without endpoints", func(t *testing.T) {
		// The lane of raw TCP is the baseline; with no main endpoint the tunnel is closed.
		m2 := newMesh(t, meshYAML("lonely"))
		m2.register(workload("lonely-f1", "lonely", "dev-feature1", echo, snapshot.TCP))
		out2 := outbound(t, m2.newProxy("sidecar~client2"))
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		c, err := dialConnect(ctx, out2, "lonely:7", nil)
		if err != nil {
			return // refusing the CONNECT would be just as right
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitTimeout))
		if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
			t.Errorf("got %q, %v; want the tunnel closed without data", b, err)
		}
	})
}

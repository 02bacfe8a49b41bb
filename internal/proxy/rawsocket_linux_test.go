//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// tcpPair is a connected pair of loopback TCP connections: ours (read and written through
// socketIO) and the peer's.
func tcpPair(t testing.TB) (ours net.Conn, sock *rawSocket, peer net.Conn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	peer, err = net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ours, err = lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ours.Close(); peer.Close() })
	s, ok := socketIO(ours).(*rawSocket)
	if !ok {
		t.Fatalf("socketIO(%T) is not a rawSocket", ours)
	}
	return ours, s, peer
}

func TestRawSocketCarriesBytesBothWays(t *testing.T) {
	_, s, peer := tcpPair(t)
	// 8 MiB is far more than the socket buffers hold: the write must wait for the peer to
	// drain them (EAGAIN, then the poller) and lose nothing on the way.
	big := bytes.Repeat([]byte("0123456789abcdef"), 512<<10)
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
		got <- b
	}()
	n, err := s.Write(big)
	if err != nil || n != len(big) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(big))
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("the peer read %d bytes, not the %d written, or not the same ones", len(b), len(big))
	}

	// A read waits for bytes that arrive later, then the peer's close reads as io.EOF.
	go func() {
		time.Sleep(20 * time.Millisecond)
		peer.Write([]byte("hello"))
		peer.Close()
	}()
	b, err := io.ReadAll(s)
	if err != nil || string(b) != "hello" {
		t.Fatalf("ReadAll = %q, %v; want \"hello\", nil (EOF)", b, err)
	}
}

func TestRawSocketKeepsDeadlinesAndClose(t *testing.T) {
	ours, s, _ := tcpPair(t)
	ours.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if _, err := s.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline = %v; want os.ErrDeadlineExceeded", err)
	}
	ours.SetReadDeadline(time.Time{})

	done := make(chan error)
	go func() {
		_, err := s.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	ours.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on a closed connection = %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake a blocked Read")
	}
}

func TestRawSocketWriteToAGonePeerFailsWithoutASignal(t *testing.T) {
	_, s, peer := tcpPair(t)
	peer.(*net.TCPConn).SetLinger(0) // close with a reset: the next writes get EPIPE
	peer.Close()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = s.Write([]byte("x"))
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Write to a reset peer = %v; want EPIPE or ECONNRESET (and the process still running)", err)
	}
}

func TestRawSocketStateTellsQuietDataAndClosed(t *testing.T) {
	_, s, peer := tcpPair(t)
	if st := s.state(); st != stateQuiet {
		t.Fatalf("state with nothing sent = %v; want stateQuiet", st)
	}
	peer.Write([]byte("x"))
	waitState(t, s, stateData)
	if _, err := s.Read(make([]byte, 1)); err != nil { // the peek left the byte in place
		t.Fatal(err)
	}
	peer.Close()
	waitState(t, s, stateClosed)
}

func waitState(t *testing.T, s *rawSocket, want readState) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.state() != want {
		if time.Now().After(deadline) {
			t.Fatalf("state = %v; want %v", s.state(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRawSocketHeldWriteLeavesWithTheNextRead: a held write is sent by the next Read, whole
// even when it is larger than the socket takes at once, and the Read then returns the peer's
// answer to it.
func TestRawSocketHeldWriteLeavesWithTheNextRead(t *testing.T) {
	for _, size := range []int{100, 8 << 20} {
		_, s, peer := tcpPair(t)
		msg := bytes.Repeat([]byte("q"), size)
		got := make(chan []byte, 1)
		go func() {
			b := make([]byte, size)
			_, err := io.ReadFull(peer, b)
			if err == nil {
				_, err = peer.Write([]byte("answer"))
			}
			if err != nil {
				b = nil
			}
			got <- b
		}()
		s.holdNextWrite()
		if n, err := s.Write(msg); n != size || err != nil {
			t.Fatalf("held Write of %d bytes = %d, %v", size, n, err)
		}
		select {
		case <-got:
			t.Fatalf("%d bytes: the peer got the held bytes before any Read", size)
		case <-time.After(50 * time.Millisecond):
		}
		b := make([]byte, 16)
		n, err := io.ReadAtLeast(s, b, len("answer"))
		if err != nil || string(b[:n]) != "answer" {
			t.Fatalf("%d bytes: Read after the held write = %q, %v; want \"answer\"", size, b[:n], err)
		}
		if sent := <-got; !bytes.Equal(sent, msg) {
			t.Fatalf("%d bytes: the peer got %d bytes, not the held ones", size, len(sent))
		}
	}
}

// TestRawSocketHeldWriteFailureIsTheReadsError: a held write to a peer that reset the
// connection fails the Read that sends it, as a heldWriteError.
func TestRawSocketHeldWriteFailureIsTheReadsError(t *testing.T) {
	_, s, peer := tcpPair(t)
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close()
	time.Sleep(20 * time.Millisecond) // the reset arrives
	s.holdNextWrite()
	if _, err := s.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_, err := s.Read(make([]byte, 10))
	var held *heldWriteError
	if !errors.As(err, &held) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read sending a held write to a reset peer = %v; want a heldWriteError or ECONNRESET", err)
	}
}

// TestRawSocketReadPooled: readPooled waits for bytes that arrive later and hands them over in
// a pooled buffer, reads the peer's close as io.EOF and a local Close as an error, with no
// buffer for the caller to give back in either.
func TestRawSocketReadPooled(t *testing.T) {
	_, s, peer := tcpPair(t)
	go func() {
		time.Sleep(20 * time.Millisecond) // the read is waiting by now, with no buffer held
		_, _ = peer.Write([]byte("later"))
	}()
	buf, n, err := s.readPooled()
	if err != nil || string((*buf)[:n]) != "later" {
		t.Fatalf("readPooled = %d, %v; want the 5 bytes sent later", n, err)
	}
	if cap(*buf) != 32<<10 {
		t.Errorf("the buffer holds %d bytes, not a copy buffer's 32 KiB", cap(*buf))
	}
	copyBuffers.put(buf)

	peer.Close()
	if buf, n, err := s.readPooled(); err != io.EOF || buf != nil || n != 0 {
		t.Fatalf("after the peer's close: readPooled = %v, %d, %v; want nil, 0, io.EOF", buf, n, err)
	}

	ours2, s2, _ := tcpPair(t)
	go func() {
		time.Sleep(20 * time.Millisecond)
		ours2.Close()
	}()
	if buf, _, err := s2.readPooled(); err == nil || buf != nil {
		t.Fatalf("a read waiting when its connection was closed: %v, %v; want an error and no buffer", buf, err)
	}
}

// TestTunnelReadsTheSocketOnceDrained: a tunnel's relay reads through the wrappers while they
// hold bytes read ahead (a handed-off head, the server's buffers), and reads the socket
// inside directly only once none is left.
func TestTunnelReadsTheSocketOnceDrained(t *testing.T) {
	ours, _, peer := tcpPair(t)
	sc := bufio.NewReader(ours)
	rc := &replayConn{Conn: ours, head: strings.NewReader("CONNECT x:1 HTTP/1.1\r\n\r\n"), br: sc, w: ours}
	rc.r = io.MultiReader(rc.head, rc.br)
	tc := &tunnelConn{Conn: rc, r: bufio.NewReader(rc)}
	if _, ok := drainedReadSide(tc); ok {
		t.Fatal("read directly while the handed-off head was unread")
	}
	if _, err := tc.r.Discard(len("CONNECT x:1 HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, ok := drainedReadSide(tc); !ok {
		t.Fatal("not read directly with nothing read ahead")
	}
	if _, err := peer.Write([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	if b, err := tc.r.ReadByte(); err != nil || b != 'a' { // "b" stays in the tunnel's buffer
		t.Fatalf("ReadByte = %q, %v", b, err)
	}
	if _, ok := drainedReadSide(tc); ok {
		t.Fatal("read directly while a byte was still in the tunnel's buffer")
	}
	_, _ = tc.r.ReadByte()
	if inner, ok := drainedReadSide(tc); !ok || inner != ours {
		t.Fatalf("drainedReadSide = %v, %v; want the socket inside", inner, ok)
	}
}

// TestRawSocketConcurrentWritersEachWriteWhole has two goroutines write large messages to one
// socket at once, as net.Conn allows and net/http does (a transport's writeLoop, an upgrade's
// copier): each Write must reach the peer whole, never interleaved with the other's. The
// messages are larger than the socket takes at once, so each Write waits for room in the
// middle, where an unguarded one would pick up the other's bytes.
func TestRawSocketConcurrentWritersEachWriteWhole(t *testing.T) {
	_, sock, peer := tcpPair(t)
	const size, each = 1 << 20, 4
	done := make(chan error, 2)
	for _, fill := range []byte{'a', 'b'} {
		msg := bytes.Repeat([]byte{fill}, size)
		go func() {
			for range each {
				if _, err := sock.Write(msg); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 2*each*size)
	if n, err := io.ReadFull(peer, got); err != nil {
		t.Fatalf("the peer got %d of the %d bytes written (%v): a write's bytes were lost", n, len(got), err)
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < len(got); i += size {
		if m := got[i : i+size]; bytes.Count(m, m[:1]) != size {
			t.Fatalf("message %d is not one writer's: %d of %d bytes are %q", i/size, bytes.Count(m, m[:1]), size, m[:1])
		}
	}
}

// BenchmarkEmptySocketRead is the system call a read that finds the socket empty costs (every
// request's read of the next one does), read(2) against the recvfrom(2) that rawSocket makes.
func BenchmarkEmptySocketRead(b *testing.B) {
	ours, _, _ := tcpPair(b)
	rc, err := ours.(*net.TCPConn).SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	var fd uintptr
	if err := rc.Control(func(f uintptr) { fd = f }); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	for _, bc := range []struct {
		name string
		call func() syscall.Errno
	}{
		{"read", func() syscall.Errno {
			_, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
			return errno
		}},
		{"recvfrom", func() syscall.Errno {
			_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0)
			return errno
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if errno := bc.call(); errno != syscall.EAGAIN {
					b.Fatalf("%s on an empty socket: %v, want EAGAIN", bc.name, errno)
				}
			}
		})
	}
}

package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"time"

	"swimlane.dev/swimlane/internal/snapshot"
)

// drainTimeout bounds how long a stopping listener waits for requests in flight.
const drainTimeout = 5 * time.Second

// tunnelKey carries a CONNECT tunnel's target into the requests served inside it.
type tunnelKey struct{}

// tunnelConn is the client side of an accepted CONNECT tunnel, with the bytes the HTTP/1
// server already buffered put back in front.
type tunnelConn struct {
	net.Conn
	r      *bufio.Reader
	target string
}

func (c *tunnelConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *tunnelConn) tunnelTarget() string { return c.target }

// CloseWrite half-closes the client side, so a TCP tunnel passes the upstream's EOF on and the
// client can still send.
func (c *tunnelConn) CloseWrite() error { return closeWrite(c.Conn) }

// closeWrite half-closes c where it can, and closes it where it cannot.
func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// connQueue is a net.Listener fed with connections by hand: the tunnels a CONNECT handler
// accepted, served as ordinary HTTP/1.1 or h2c connections.
type connQueue struct {
	ch     chan net.Conn
	once   sync.Once
	closed chan struct{}
	addr   net.Addr
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{ch: make(chan net.Conn), closed: make(chan struct{}), addr: addr}
}

func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.closed:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// pipe copies both ways between a and b until both directions end, half-closing each write
// side as its source reaches EOF so request/response protocols finish cleanly.
func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		copyStream(dst, src)
		_ = closeWrite(dst)
	}
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
	_ = a.Close()
	_ = b.Close()
}

// pooledReader is a socket that reads into a pooled buffer only once it has bytes (rawSocket).
type pooledReader interface {
	readPooled() (buf *[]byte, n int, err error)
}

// copyStream copies src to dst until src ends or either fails. TCP sockets are read and
// written with raw system calls (rawSocket), not io.Copy's splice: splice goes through a pipe
// (two calls per chunk) and, as every syscall.Syscall after an idle moment, wakes the
// runtime's sysmon thread, which for small messages at a steady rate cost more CPU than the
// bytes (strace at 1000 messages a second: 3.3 nanosleeps and a futex per message). A tunnel's
// bytes read ahead by the HTTP servers go first, through the wrappers that hold them; then
// the socket inside is read directly, so an idle tunnel holds no buffer either.
func copyStream(dst, src net.Conn) {
	w := socketIO(writeSide(dst))
	for {
		if inner, ok := drainedReadSide(src); ok {
			if r, ok := socketIO(inner).(pooledReader); ok {
				relayPooled(w, r)
				return
			}
		}
		buf := copyBuffers.get()
		n, err := src.Read(*buf)
		var werr error
		if n > 0 {
			_, werr = w.Write((*buf)[:n])
		}
		copyBuffers.put(buf)
		if err != nil || werr != nil {
			return
		}
	}
}

// relayPooled copies from r to w until r ends or either fails.
func relayPooled(w io.Writer, r pooledReader) {
	for {
		buf, n, err := r.readPooled()
		if err != nil {
			return
		}
		_, werr := w.Write((*buf)[:n])
		copyBuffers.put(buf)
		if werr != nil {
			return
		}
	}
}

// drainedReadSide is the connection inside c once no byte read ahead is left in c's wrappers
// (a tunnel's, a handed-off connection's): from then on, reading it directly loses nothing.
// Only c's reader may call it: it looks at the read-ahead buffers.
func drainedReadSide(c net.Conn) (net.Conn, bool) {
	for {
		if holdsReadAhead(c) {
			return nil, false
		}
		inner := inside(c)
		if inner == nil {
			return c, true
		}
		c = inner
	}
}

// inside is the connection the proxy's wrapper c wraps; nil when c is none of them.
func inside(c net.Conn) net.Conn {
	switch w := c.(type) {
	case *tunnelConn:
		return w.Conn
	case *replayConn:
		return w.Conn
	case *socketConn:
		return w.Conn
	}
	return nil
}

// holdsReadAhead reports whether the wrapper c holds bytes read ahead of the connection
// inside it, which a read of that connection would skip.
func holdsReadAhead(c net.Conn) bool {
	switch w := c.(type) {
	case *tunnelConn:
		return w.r.Buffered() > 0
	case *replayConn:
		return !w.drained()
	}
	return false
}

// socketConn is a connection read and written through its socketIO: given to net/http's
// transports, whose HTTP/2 frames and streamed bodies then take raw system calls (rawSocket)
// as the proxy's own client does, without a sysmon wake-up per request.
type socketConn struct {
	net.Conn
	rw io.ReadWriter
}

func (c *socketConn) Read(p []byte) (int, error)  { return c.rw.Read(p) }
func (c *socketConn) Write(p []byte) (int, error) { return c.rw.Write(p) }

// CloseWrite half-closes the connection inside, for a tunnel's or upgrade's copy.
func (c *socketConn) CloseWrite() error { return closeWrite(c.Conn) }

// withSocketIO is c read and written through socketIO: c itself where that is c.
func withSocketIO(c net.Conn) net.Conn {
	if rw := socketIO(c); rw != io.ReadWriter(c) {
		return &socketConn{Conn: c, rw: rw}
	}
	return c
}

// writeSide is the connection that writes for c: a tunnel's or a handed-off connection's
// reads come through buffers that hold what was read ahead, but its writes go straight to the
// connection inside.
func writeSide(c net.Conn) net.Conn {
	for inner := inside(c); inner != nil; inner = inside(c) {
		c = inner
	}
	return c
}

// serviceProtocol is the protocol a service's endpoints speak; "" when it has none.
func serviceProtocol(svc *snapshot.Service) snapshot.Protocol {
	if len(svc.Endpoints) == 0 {
		return ""
	}
	return svc.Endpoints[0].Protocol
}

// serveTCP accepts connections on lis until ctx ends, handling each in its own goroutine.
func serveTCP(ctx context.Context, lis net.Listener, handle func(net.Conn)) error {
	go func() {
		<-ctx.Done()
		lis.Close()
	}()
	for {
		c, err := lis.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go handle(c)
	}
}

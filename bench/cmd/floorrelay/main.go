// Command floorrelay is the floor of a Go HTTP/1.1 proxy on a machine: a goroutine per
// client connection, pooled upstream connections, reads and writes by raw system calls
// through syscall.RawConn (as Swimlane's rawSocket makes them; PLAIN=1 uses net.Conn's), and
// no work beyond finding a head's end and an answer's Content-Length: no parse into maps, no
// routing, lanes, metrics, error handling or bodies on requests. It tells what Go's
// goroutines and poller cost apart from what a proxy's own work does (bench/README.md, "The
// floor of a Go proxy"). Not a proxy to use: it trusts every byte it gets.
//
//	floorrelay LISTEN UPSTREAM     (both host:port; then load LISTEN as the bench loads a target)
package main

import (
	"bytes"
	"net"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

type raw struct {
	rc     syscall.RawConn
	c      net.Conn
	p      []byte
	n      int
	err    syscall.Errno
	rf, wf func(uintptr) bool
}

func wrap(c net.Conn) *raw {
	if os.Getenv("PLAIN") != "" {
		return &raw{c: c}
	}
	rc, _ := c.(*net.TCPConn).SyscallConn()
	r := &raw{rc: rc, c: c}
	r.rf = func(fd uintptr) bool {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.p[0])), uintptr(len(r.p)))
		if e == syscall.EAGAIN {
			return false
		}
		r.n, r.err = int(n), e
		return true
	}
	r.wf = func(fd uintptr) bool {
		for r.n < len(r.p) {
			n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&r.p[r.n])), uintptr(len(r.p)-r.n))
			if e == syscall.EAGAIN {
				return false
			}
			if e != 0 {
				r.err = e
				return true
			}
			r.n += int(n)
		}
		return true
	}
	return r
}

func (r *raw) Read(p []byte) (int, error) {
	if r.rc == nil {
		return r.c.Read(p)
	}
	r.p, r.n, r.err = p, 0, 0
	if err := r.rc.Read(r.rf); err != nil {
		return 0, err
	}
	if r.err != 0 {
		return 0, r.err
	}
	if r.n == 0 {
		return 0, os.ErrClosed
	}
	return r.n, nil
}

func (r *raw) Write(p []byte) (int, error) {
	if r.rc == nil {
		return r.c.Write(p)
	}
	r.p, r.n, r.err = p, 0, 0
	if err := r.rc.Write(r.wf); err != nil {
		return 0, err
	}
	if r.err != 0 {
		return 0, r.err
	}
	return len(p), nil
}

var pool = make(chan *raw, 256)

func upstream() *raw {
	select {
	case c := <-pool:
		return c
	default:
	}
	c, err := net.Dial("tcp", os.Args[2])
	if err != nil {
		panic(err)
	}
	return wrap(c)
}

func readHead(c *raw, buf []byte, n int) ([]byte, int, int, error) {
	for {
		if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 {
			return buf, n, i + 4, nil
		}
		m, err := c.Read(buf[n:])
		if err != nil {
			return buf, n, 0, err
		}
		n += m
	}
}

func serve(nc net.Conn) {
	defer nc.Close()
	c := wrap(nc)
	buf := make([]byte, 8192)
	rbuf := make([]byte, 8192)
	n := 0
	for {
		var end int
		var err error
		buf, n, end, err = readHead(c, buf, n)
		if err != nil {
			return
		}
		u := upstream()
		if _, err := u.Write(buf[:end]); err != nil {
			return
		}
		copy(buf, buf[end:n])
		n -= end
		rn := 0
		var hend int
		rbuf, rn, hend, err = readHead(u, rbuf, 0)
		if err != nil {
			return
		}
		cl := 0
		if i := bytes.Index(rbuf[:hend], []byte("Content-Length: ")); i >= 0 {
			j := bytes.IndexByte(rbuf[i:hend], '\r')
			cl, _ = strconv.Atoi(string(rbuf[i+16 : i+j]))
		}
		for rn < hend+cl {
			m, err := u.Read(rbuf[rn:])
			if err != nil {
				return
			}
			rn += m
		}
		pool <- u
		if _, err := c.Write(rbuf[:rn]); err != nil {
			return
		}
	}
}

func main() {
	l, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		panic(err)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go serve(c)
	}
}

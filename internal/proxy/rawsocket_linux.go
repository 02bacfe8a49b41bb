//go:build linux

package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// rawSocket reads and writes a TCP connection's socket with raw system calls, and waits for it
// through Go's poller (syscall.RawConn), which keeps deadlines and Close working.
//
// Why by hand: syscall.Syscall tells the scheduler that the call may block, and the first such
// call after the process was idle wakes the runtime's monitor thread (sysmon), which then
// sleeps and wakes every 20 µs until the process is idle again. A proxy at 1000 requests a
// second goes idle between almost every request, so each one paid for about two more
// nanosleeps and a futex wake-up, each a context switch on the proxy's core: the largest share
// of its CPU after the reads and writes themselves. Go opens its sockets non-blocking, so
// these calls never block and need not tell the scheduler.
type rawSocket struct {
	rc syscall.RawConn
	// A Read and a Write may run at once (an answer written while a request body is read),
	// so each has its own state; the functions are bound once, not per call. Each side's
	// state is behind its own lock, because a connection may be read or written from several
	// goroutines, as net.Conn allows: net/http's transport writes a request from its
	// writeLoop, and an upgraded connection's copier may write before that write's end is
	// known to anyone. Uncontended, as on the proxy's own path, a lock costs a few
	// instructions.
	rmu, wmu       sync.Mutex
	rp, wp         []byte
	rn, wn         int
	rerrno, werrno syscall.Errno
	peeked         readState
	// A held write (holdNextWrite) is sent by the next Read from inside its poller wait.
	held     []byte
	heldSent int
	heldErr  syscall.Errno
	holdNext bool
	readFn   func(fd uintptr) bool
	writeFn  func(fd uintptr) bool
	peekFn   func(fd uintptr) bool
	// pooled is readPooled's buffer while a read holds one.
	pooled   *[]byte
	pooledFn func(fd uintptr) bool
}

// socketIO is what reads and writes c: a rawSocket for a TCP connection, else c itself.
func socketIO(c net.Conn) io.ReadWriter {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	s := &rawSocket{rc: rc}
	s.readFn, s.writeFn, s.peekFn, s.pooledFn = s.read, s.write, s.peek, s.readIntoPooled
	return s
}

// holdNextWrite holds the next Write's bytes for the next Read to send. Why: a request's read
// of its answer finds the socket empty (one wasted read, EAGAIN) and only then waits; sent
// from within the Read, after Go's poller has reset the socket's readiness, the request
// leaves with the wait already armed, and the answer's arrival wakes it. The caller must Read
// next, with nothing buffered from this socket.
func (s *rawSocket) holdNextWrite() { s.holdNext = true }

func (s *rawSocket) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.rp, s.rn, s.rerrno = p, 0, 0
	err := s.rc.Read(s.readFn)
	for err == nil && s.heldErr == 0 && s.heldSent < len(s.held) {
		// The socket took only part of the held bytes: send the rest as a plain write,
		// which waits for room, and read as usual.
		rest := s.held[s.heldSent:]
		s.held, s.heldSent = s.held[:0], 0
		if _, werr := s.Write(rest); werr != nil {
			s.rp = nil
			return 0, &heldWriteError{werr}
		}
		err = s.rc.Read(s.readFn)
	}
	n := s.rn
	s.rp = nil
	if s.heldErr != 0 || len(s.held) > 0 {
		errno := s.heldErr
		s.held, s.heldSent, s.heldErr = s.held[:0], 0, 0
		if errno != 0 {
			return 0, &heldWriteError{os.NewSyscallError("write", errno)}
		}
	}
	switch {
	case err != nil:
		return 0, err
	case s.rerrno != 0:
		return 0, os.NewSyscallError("read", s.rerrno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readPooled is Read into a buffer of copyBuffers, taken only once the socket has bytes (or an
// end) to give it. Why: a TCP relay waits on its connections almost all the time, and a
// buffer held through each wait would cost every open connection 32 KiB per direction, where a
// sidecar may keep thousands open. The caller puts buf back; buf is nil with an error.
func (s *rawSocket) readPooled() (buf *[]byte, n int, err error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.rn, s.rerrno = 0, 0
	err = s.rc.Read(s.pooledFn)
	buf, s.pooled, s.rp = s.pooled, nil, nil
	switch {
	case err == nil && s.rerrno != 0:
		err = os.NewSyscallError("read", s.rerrno)
	case err == nil && s.rn == 0:
		err = io.EOF
	}
	if err != nil {
		if buf != nil {
			copyBuffers.put(buf)
		}
		return nil, 0, err
	}
	return buf, s.rn, nil
}

// readIntoPooled is read with a pooled buffer, given back while the poller waits.
func (s *rawSocket) readIntoPooled(fd uintptr) bool {
	if s.pooled == nil {
		s.pooled = copyBuffers.get()
	}
	s.rp = *s.pooled
	if s.read(fd) {
		return true
	}
	copyBuffers.put(s.pooled)
	s.pooled, s.rp = nil, nil
	return false
}

// read is one recv(2); false asks the poller to wait until the socket is readable. Held
// bytes go first: once they are all sent, the read waits for the answer without trying.
// Why recvfrom and not read(2): read goes through the file layer (vfs_read: its position
// lock, permission and notification hooks) before it reaches the socket; recvfrom goes to the
// socket directly, as nginx's recv does.
func (s *rawSocket) read(fd uintptr) bool {
	if s.heldSent < len(s.held) {
		for s.heldSent < len(s.held) {
			n, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&s.held[s.heldSent])),
				uintptr(len(s.held)-s.heldSent), syscall.MSG_NOSIGNAL, 0, 0)
			switch errno {
			case 0:
				s.heldSent += int(n)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return true // Read sends the rest as a plain write
			default:
				s.heldErr = errno
				return true
			}
		}
		s.held, s.heldSent = s.held[:0], 0
		return false
	}
	for {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&s.rp[0])), uintptr(len(s.rp)), 0, 0, 0)
		switch errno {
		case 0:
			s.rn = int(n)
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			s.rerrno = errno
			return true
		}
	}
}

func (s *rawSocket) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.holdNext {
		s.holdNext = false
		if len(s.held) == 0 {
			s.held = append(s.held[:0], p...)
			return len(p), nil
		}
	}
	s.wp, s.wn, s.werrno = p, 0, 0
	err := s.rc.Write(s.writeFn)
	n := s.wn
	s.wp = nil
	if err == nil && s.werrno != 0 {
		err = os.NewSyscallError("write", s.werrno)
	}
	return n, err
}

// write sends what is left of wp; false asks the poller to wait until the socket is writable.
// MSG_NOSIGNAL: a peer that went away fails the call (EPIPE) rather than signalling.
func (s *rawSocket) write(fd uintptr) bool {
	for s.wn < len(s.wp) {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&s.wp[s.wn])), uintptr(len(s.wp)-s.wn),
			syscall.MSG_NOSIGNAL, 0, 0)
		switch errno {
		case 0:
			s.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			s.werrno = errno
			return true
		}
	}
	return true
}

// state is peek's readState of the socket, from one raw MSG_PEEK.
func (s *rawSocket) state() readState {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.peeked = stateUnknown
	if err := s.rc.Read(s.peekFn); err != nil {
		return stateUnknown
	}
	return s.peeked
}

func (s *rawSocket) peek(fd uintptr) bool {
	var b [1]byte
	for {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			s.peeked = stateQuiet
		case errno != 0 || n == 0:
			s.peeked = stateClosed
		default:
			s.peeked = stateData
		}
		return true // never wait for the socket to become readable
	}
}

//go:build unix

package proxy

import (
	"io"
	"net"
	"syscall"
)

// readState is what a connection would give a read now, found without reading or waiting.
type readState int

const (
	stateUnknown readState = iota // not a socket, or the peek failed
	stateQuiet                    // nothing to read yet
	stateData                     // bytes are waiting
	stateClosed                   // the peer closed or reset it, with nothing left unread
)

// peek tells c's readState with one non-blocking MSG_PEEK: a deadline cannot tell, since Go
// refuses a read past its deadline before looking at the socket.
func peek(c net.Conn) readState {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return stateUnknown
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return stateUnknown
	}
	state := stateUnknown
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK:
			state = stateQuiet
		case rerr == syscall.EINTR:
		case rerr != nil || n == 0:
			state = stateClosed
		default:
			state = stateData
		}
		return true // never wait for the socket to become readable
	})
	if err != nil {
		return stateUnknown
	}
	return state
}

// idleQuiet reports whether an idle connection has nothing to read: no bytes and no close.
func idleQuiet(c net.Conn) bool {
	s := peek(c)
	return s == stateQuiet || s == stateUnknown && !isSocket(c)
}

// idleQuietIO is idleQuiet for c read through rw (socketIO's): a rawSocket peeks without the
// per-call costs of peek.
func idleQuietIO(rw io.ReadWriter, c net.Conn) bool {
	if s, ok := rw.(interface{ state() readState }); ok {
		return s.state() == stateQuiet
	}
	return idleQuiet(c)
}

// peerClosed reports whether the peer of c has closed it with nothing left unread.
func peerClosed(c net.Conn) bool { return peek(c) == stateClosed }

func isSocket(c net.Conn) bool { _, ok := c.(syscall.Conn); return ok }

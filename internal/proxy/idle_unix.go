//go:build unix

package proxy

import (
	"net"
	"syscall"
)

// idleQuiet reports whether an idle connection has nothing to read: no bytes and no close
// from the peer. It peeks without blocking, one system call; a deadline cannot tell, since Go
// refuses a read past its deadline before looking at the socket.
func idleQuiet(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	quiet := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		quiet = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // never wait for the socket to become readable
	})
	return err == nil && quiet
}

//go:build !linux

package proxy

import (
	"io"
	"net"
)

// socketIO is what reads and writes c: c itself here (rawSocket is Linux's).
func socketIO(c net.Conn) io.ReadWriter { return c }

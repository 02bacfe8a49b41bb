//go:build !unix

package proxy

import (
	"io"
	"net"
)

// idleQuiet cannot peek here: an idle connection is taken as quiet, and a stale one fails
// its request (retried when replayable).
func idleQuiet(net.Conn) bool { return true }

// peerClosed cannot peek here: a client that went away is noticed when its answer is written.
func peerClosed(net.Conn) bool { return false }

// idleQuietIO is idleQuiet for c read through rw.
func idleQuietIO(io.ReadWriter, net.Conn) bool { return true }

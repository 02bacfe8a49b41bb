// Package demotest holds test helpers for the demo services: they run on real sockets on
// 127.0.0.1, in-process.
package demotest

import (
	"context"
	"net"
	"testing"
	"time"
)

// Listen returns a listener on a free 127.0.0.1 port, closed at the end of the test (services
// close it themselves when they stop; closing twice is harmless).
func Listen(t testing.TB) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	return lis
}

// FreeAddr returns a 127.0.0.1 address on which nothing listens (connections are refused).
func FreeAddr(t testing.TB) string {
	t.Helper()
	lis := Listen(t)
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// Start runs a service's Run function in a goroutine. At the end of the test it cancels the
// context and checks that run returns nil within a bound.
func Start(t testing.TB, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		timer := time.NewTimer(30 * time.Second)
		defer timer.Stop()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("service returned %v, want nil", err)
			}
		case <-timer.C:
			t.Errorf("service did not stop after its context was cancelled")
		}
	})
}

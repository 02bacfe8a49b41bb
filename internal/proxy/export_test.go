package proxy

import (
	"net"
	"sync"
	"testing"
)

// ServeConns runs serve on each connection to a new listener on 127.0.0.1:0, each in its own
// goroutine, and closes the connection when serve returns; it returns the listener's address.
// When the test ends it closes the listener and the connections still open, and waits for
// every serve to return. The one accept loop of this package's test servers; exported for
// its external tests (package proxy_test) too.
func ServeConns(t testing.TB, serve func(c net.Conn)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		open = map[net.Conn]bool{}
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					c.Close()
					mu.Lock()
					delete(open, c)
					mu.Unlock()
				}()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return lis.Addr().String()
}

package echo

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
)

// serveTCP is a line echo like Istio's tcp-echo sample: each line received is answered with
// "<version> <line>" (just "<line>" without a version) until the client closes.
func serveTCP(ctx context.Context, cfg Config) error {
	var (
		mu     sync.Mutex
		conns  = map[net.Conn]struct{}{}
		closed bool
		wg     sync.WaitGroup
	)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		cfg.Listener.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	prefix := ""
	if cfg.Version != "" {
		prefix = cfg.Version + " "
	}
	for {
		c, err := cfg.Listener.Accept()
		if err != nil {
			mu.Lock()
			stopping := closed
			mu.Unlock()
			if stopping || ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			wg.Wait()
			return err
		}
		mu.Lock()
		if closed {
			mu.Unlock()
			c.Close()
			break
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
			r := bufio.NewReader(c)
			w := bufio.NewWriter(c)
			for {
				line, err := r.ReadString('\n')
				if line != "" {
					if _, werr := w.WriteString(prefix + line); werr != nil {
						return
					}
					if err != nil { // last line without a newline: still answered, as one
						w.WriteString("\n")
					}
					if w.Flush() != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
	mu.Lock()
	closed = true
	for c := range conns {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()
	return nil
}

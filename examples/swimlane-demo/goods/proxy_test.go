package goods_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"swimlane.dev/swimlane/examples/swimlane-demo/goods"
	"swimlane.dev/swimlane/examples/swimlane-demo/internal/demotest"
	"swimlane.dev/swimlane/examples/swimlane-demo/pricing"
	demopb "swimlane.dev/swimlane/examples/swimlane-demo/proto"
)

// childEnv marks the re-executed test binary of TestPricingCallViaConnectProxy.
const childEnv = "SWIMLANE_DEMO_PROXY_CHILD"

// TestPricingCallViaConnectProxy checks that, as in the mesh, goods reaches an unresolvable
// "pricing-service:50052" through the CONNECT proxy named by HTTPS_PROXY, which gets the name
// unresolved.
//
// The proxy settings are read once per process (net/http caches ProxyFromEnvironment, which
// grpc-go uses), so a t.Setenv here would be ignored if any earlier test had already consulted
// them. The part that needs HTTPS_PROXY therefore runs in a fresh copy of this test binary;
// pricing and the proxy run here.
func TestPricingCallViaConnectProxy(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		callGoodsBehindProxy(t)
		return
	}
	pl := demotest.Listen(t)
	demotest.Start(t, func(ctx context.Context) error {
		return pricing.RunWith(ctx, pricing.Config{Swimlane: "p-lane", Listener: pl})
	})
	proxy := startConnectProxy(t, map[string]string{"pricing-service:50052": pl.Addr().String()})

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestPricingCallViaConnectProxy$", "-test.v")
	cmd.Env = append(withoutProxyEnv(os.Environ()), childEnv+"=1", "HTTPS_PROXY=http://"+proxy.addr)
	out, err := cmd.CombinedOutput()
	t.Logf("child test output:\n%s", out)
	if err != nil {
		t.Fatalf("child test failed: %v", err)
	}
	if got, want := proxy.requests(), "CONNECT pricing-service:50052"; !slices.Contains(got, want) {
		t.Errorf("proxy saw %q, want %q", got, want)
	}
}

// callGoodsBehindProxy runs in the child, with HTTPS_PROXY set: it starts goods with the
// unresolvable pricing target and calls it (over loopback, which skips the proxy).
func callGoodsBehindProxy(t *testing.T) {
	gl := demotest.Listen(t)
	demotest.Start(t, func(ctx context.Context) error {
		return goods.RunWith(ctx, goods.Config{Swimlane: "g-lane", PricingService: "pricing-service:50052", Listener: gl})
	})
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	resp, err := demopb.NewGoodsServiceClient(conn).GetGoods(ctx, &demopb.GetGoodsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetGoodsSwimlane() != "g-lane" || resp.GetPricingSwimlane() != "p-lane" || len(resp.GetGoodsInfoList()) != 3 {
		t.Errorf("GetGoods = %v", resp)
	}
}

func withoutProxyEnv(env []string) []string {
	return slices.DeleteFunc(env, func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "REQUEST_METHOD":
			return true
		}
		return false
	})
}

// connectProxy is a minimal HTTP CONNECT proxy that records request lines and tunnels to
// the address routes gives for the requested authority.
type connectProxy struct {
	addr   string
	routes map[string]string

	mu     sync.Mutex
	seen   []string
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

func startConnectProxy(t *testing.T, routes map[string]string) *connectProxy {
	lis := demotest.Listen(t)
	p := &connectProxy{addr: lis.Addr().String(), routes: routes, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		p.mu.Lock()
		p.closed = true
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *connectProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

// track adds c to the connections closed at cleanup; once cleanup has started it closes c
// instead and reports false.
func (p *connectProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *connectProxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	c.Close()
}

func (p *connectProxy) serve(c net.Conn) {
	if !p.track(c) {
		return
	}
	defer p.untrack(c)
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.seen = append(p.seen, req.Method+" "+req.RequestURI)
	p.mu.Unlock()
	target, ok := p.routes[req.RequestURI]
	if req.Method != http.MethodConnect || !ok {
		fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, br); done <- struct{}{} }() // br: bytes the client sent early
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
}

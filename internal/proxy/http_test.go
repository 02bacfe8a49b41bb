package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"swimlane.dev/swimlane/internal/snapshot"
)

// TestOutboundHTTP1Ways reaches one service through the outbound listener in every way an app
// can: as its HTTP proxy (absolute-form requests, the service name never resolved by the
// client), directly with the service in the Host header, and through a CONNECT tunnel carrying
// HTTP/1.1. Each way is tried against an app registered by address and against one behind its
// own inbound sidecar.
func TestOutboundHTTP1Ways(t *testing.T) {
	t.Parallel()
	m := newMesh(t, meshYAML("web", "web2"))
	m.register(
		workload("web-main", "web", "main", startHTTPApp(t, "web-app", false), snapshot.HTTP),
		m.sidecarWorkload("web2-main", "web2", "main", startHTTPApp(t, "web2-app", false), snapshot.HTTP),
	)
	p := m.newProxy("sidecar~client")
	out := outbound(t, p)
	viaProxy := httpClient(t, out)
	direct := httpClient(t, "")

	for _, svc := range []struct{ name, app string }{{"web", "web-app"}, {"web2", "web2-app"}} {
		t.Run(svc.name, func(t *testing.T) {
			tests := []struct {
				name     string
				send     func(t *testing.T) response
				wantHost string
			}{
				{"http proxy", func(t *testing.T) response {
					return do(t, viaProxy, "GET", "http://"+svc.name+":80/path?q=1", "", hdr("X-Test", "yes"))
				}, svc.name + ":80"},
				{"http proxy, namespaced host", func(t *testing.T) response {
					return do(t, viaProxy, "GET", "http://"+svc.name+".default/path?q=1", "", hdr("X-Test", "yes"))
				}, svc.name + ".default"},
				{"http proxy, fully qualified host", func(t *testing.T) response {
					return do(t, viaProxy, "GET", "http://"+svc.name+".default.svc.cluster.local:80/path?q=1", "", hdr("X-Test", "yes"))
				}, svc.name + ".default.svc.cluster.local:80"},
				{"direct, Host header", func(t *testing.T) response {
					return do(t, direct, "GET", "http://"+out+"/path?q=1", svc.name+":80", hdr("X-Test", "yes"))
				}, svc.name + ":80"},
				{"CONNECT tunnel", func(t *testing.T) response {
					return connectAndGet(t, out, svc.name+":80", svc.name+":80", "/path?q=1")
				}, svc.name + ":80"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					res := tt.send(t)
					rep := res.reply(t)
					if rep.App != svc.app {
						t.Errorf("served by %q, want %q", rep.App, svc.app)
					}
					if rep.URI != "/path?q=1" {
						t.Errorf("app got request URI %q, want /path?q=1", rep.URI)
					}
					if rep.Host != tt.wantHost {
						t.Errorf("app got Host %q, want %q (the proxy must keep the authority)", rep.Host, tt.wantHost)
					}
					if rep.Header.Get("X-Test") != "yes" {
						t.Errorf("app did not get the request's own header X-Test: %v", rep.Header)
					}
					if rep.Proto != "HTTP/1.1" {
						t.Errorf("app got %s, want HTTP/1.1", rep.Proto)
					}
					if got := res.Header.Get("X-App"); got != svc.app {
						t.Errorf("response header X-App = %q, want %q (upstream headers must come back)", got, svc.app)
					}
				})
			}
		})
	}

	t.Run("request body", func(t *testing.T) {
		req, _ := http.NewRequest("POST", "http://web:80/upload", strings.NewReader("payload-"+strings.Repeat("x", 100000)))
		res, err := viaProxy.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		rep := response{res, string(body)}.reply(t)
		if rep.Method != "POST" || rep.Body != "payload-"+strings.Repeat("x", 100000) {
			t.Errorf("app got %s with a %d-byte body, want POST with the 100008-byte body", rep.Method, len(rep.Body))
		}
	})

	t.Run("CONNECT tunnel routes by its target, keeps the inner Host", func(t *testing.T) {
		// Two requests on one tunnel: the tunnel is served as a keep-alive HTTP/1.1 connection,
		// and the inner Host (which names nothing in the mesh) does not change the route.
		c := mustConnect(t, out, "web:80")
		br := bufio.NewReader(c)
		for i := range 2 {
			fmt.Fprintf(c, "GET /inner/%d HTTP/1.1\r\nHost: not-a-service.example\r\n\r\n", i)
			res := readResponse(t, br)
			rep := res.reply(t)
			if rep.App != "web-app" || rep.URI != fmt.Sprintf("/inner/%d", i) || rep.Host != "not-a-service.example" {
				t.Errorf("request %d: app %q, URI %q, Host %q; want web-app, /inner/%d, not-a-service.example", i, rep.App, rep.URI, rep.Host, i)
			}
		}
	})
}

// connectAndGet opens a CONNECT tunnel to target and sends one HTTP/1.1 GET inside it.
func connectAndGet(t testing.TB, proxyAddr, target, host, uri string) response {
	t.Helper()
	c := mustConnect(t, proxyAddr, target)
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nX-Test: yes\r\nConnection: close\r\n\r\n", uri, host)
	return readResponse(t, bufio.NewReader(c))
}

func readResponse(t testing.TB, br *bufio.Reader) response {
	t.Helper()
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return response{res, string(body)}
}

// TestLaneRouting checks lane resolution end to end: a lane in x-swimlane or in the baggage
// member picks that lane's endpoints, a lane without endpoints falls back to main, no lane is
// main, and an endpoint without a lane label is main. The app must receive the lane in both
// forms with the other baggage members intact, whether it is reached directly or through its
// inbound sidecar.
func TestLaneRouting(t *testing.T) {
	t.Parallel()
	m := newMesh(t, meshYAML("shop", "shop2", "legacy"))
	m.register(
		workload("shop-main", "shop", "main", startHTTPApp(t, "shop-main", false), snapshot.HTTP),
		workload("shop-f1", "shop", "dev-feature1", startHTTPApp(t, "shop-f1", false), snapshot.HTTP),
		m.sidecarWorkload("shop2-main", "shop2", "main", startHTTPApp(t, "shop2-main", false), snapshot.HTTP),
		m.sidecarWorkload("shop2-f1", "shop2", "dev-feature1", startHTTPApp(t, "shop2-f1", false), snapshot.HTTP),
		workload("legacy", "legacy", "", startHTTPApp(t, "legacy", false), snapshot.HTTP),
	)
	p := m.newProxy("sidecar~client")
	c := httpClient(t, outbound(t, p))

	tests := []struct {
		name   string
		header http.Header
		lane   string // the lane the app must see in both forms; "" for none
		served string // which app: "main" or "f1"
		// baggageHas lists members (besides the lane) the app's baggage must still hold.
		baggageHas []string
	}{
		{name: "x-swimlane feature lane", header: hdr("x-swimlane", "dev-feature1"), lane: "dev-feature1", served: "f1"},
		{name: "baggage only", header: hdr("baggage", "swimlane=dev-feature1"), lane: "dev-feature1", served: "f1"},
		{
			name:       "baggage with other members",
			header:     hdr("baggage", "user=alice, swimlane=dev-feature1;ttl=5,tenant=t%201"),
			lane:       "dev-feature1",
			served:     "f1",
			baggageHas: []string{"user=alice", "tenant=t%201"},
		},
		{
			name:       "baggage split over two header lines",
			header:     hdr("baggage", "user=alice", "baggage", "swimlane=dev-feature1"),
			lane:       "dev-feature1",
			served:     "f1",
			baggageHas: []string{"user=alice"},
		},
		{
			name:       "header wins over baggage, baggage rewritten",
			header:     hdr("x-swimlane", "dev-feature1", "baggage", "swimlane=dev-feature2,user=bob"),
			lane:       "dev-feature1",
			served:     "f1",
			baggageHas: []string{"user=bob"},
		},
		{name: "lane without endpoints falls back to main", header: hdr("x-swimlane", "dev-feature2"), lane: "dev-feature2", served: "main"},
		{
			name:       "baggage lane without endpoints falls back to main",
			header:     hdr("baggage", "swimlane=dev-feature2,user=carol"),
			lane:       "dev-feature2",
			served:     "main",
			baggageHas: []string{"user=carol"},
		},
		{name: "baseline lane", header: hdr("x-swimlane", "main"), lane: "main", served: "main"},
		{name: "no lane", header: hdr(), lane: "", served: "main"},
		{name: "unrelated baggage only", header: hdr("baggage", "user=dave"), lane: "", served: "main", baggageHas: []string{"user=dave"}},
	}
	for _, svc := range []string{"shop", "shop2"} {
		for _, tt := range tests {
			t.Run(svc+"/"+tt.name, func(t *testing.T) {
				rep := do(t, c, "GET", "http://"+svc+"/", "", tt.header).reply(t)
				if want := svc + "-" + tt.served; rep.App != want {
					t.Errorf("served by %q, want %q", rep.App, want)
				}
				checkLaneForms(t, rep.Header, tt.lane, tt.baggageHas)
			})
		}
	}

	t.Run("endpoint without lane label is main", func(t *testing.T) {
		for _, h := range []http.Header{hdr(), hdr("x-swimlane", "main"), hdr("x-swimlane", "dev-feature1")} {
			if rep := do(t, c, "GET", "http://legacy/", "", h).reply(t); rep.App != "legacy" {
				t.Errorf("lane %q: served by %q, want legacy", h.Get("x-swimlane"), rep.App)
			}
		}
	})
}

// checkLaneForms asserts the app received the lane in both forms (or neither for ""), and
// that each of others is still a member of its baggage.
func checkLaneForms(t testing.TB, h http.Header, lane string, others []string) {
	t.Helper()
	if got := h.Values("X-Swimlane"); lane == "" && len(got) != 0 || lane != "" && (len(got) != 1 || got[0] != lane) {
		t.Errorf("app got x-swimlane %q, want %q", got, lane)
	}
	members := baggageMembers(h)
	if lane == "" {
		for _, mb := range members {
			if strings.HasPrefix(mb, "swimlane=") {
				t.Errorf("app got baggage member %q, want no lane in baggage", mb)
			}
		}
	} else if !contains(members, "swimlane="+lane) {
		t.Errorf("app got baggage %q, want member swimlane=%s", h.Values("Baggage"), lane)
	}
	for _, o := range others {
		if !contains(members, o) {
			t.Errorf("app got baggage %q, want member %q kept", h.Values("Baggage"), o)
		}
	}
}

// baggageMembers splits every baggage header into trimmed members.
func baggageMembers(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Baggage") {
		for _, m := range strings.Split(v, ",") {
			if m = strings.TrimSpace(m); m != "" {
				out = append(out, m)
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestBadLaneInput checks that malformed or hostile lane input routes to main, is never copied
// from one header into the other, and that a malformed baggage header reaches the app byte for
// byte; and that the debug headers tell which lane served the request.
func TestBadLaneInput(t *testing.T) {
	t.Parallel()
	m := newMesh(t, meshYAML("shop"))
	m.register(
		workload("shop-main", "shop", "main", startHTTPApp(t, "main", false), snapshot.HTTP),
		workload("shop-f1", "shop", "dev-feature1", startHTTPApp(t, "f1", false), snapshot.HTTP),
	)
	p := m.newProxy("sidecar~client")
	c := httpClient(t, outbound(t, p))

	long := strings.Repeat("a", 64)
	tests := []struct {
		name   string
		header http.Header
		served string
		// wantBaggage, if set, is the exact baggage header value the app must receive (one line);
		// "-" means none at all.
		wantBaggage string
		// wantLane is the x-swimlane value the app must receive, exactly ("" for absent).
		wantLane string
	}{
		{
			name:        "malformed baggage",
			header:      hdr("baggage", "swimlane=dev-feature1,=bad"),
			served:      "main",
			wantBaggage: "swimlane=dev-feature1,=bad",
		},
		{
			name:        "malformed baggage with a valid x-swimlane",
			header:      hdr("x-swimlane", "dev-feature1", "baggage", "swimlane=dev-feature2,=bad"),
			served:      "f1",
			wantBaggage: "swimlane=dev-feature2,=bad",
			wantLane:    "dev-feature1",
		},
		{
			name:        "lane with a space",
			header:      hdr("x-swimlane", "a b"),
			served:      "main",
			wantBaggage: "-",
			wantLane:    "a b",
		},
		{
			name:        "lane of 64 characters",
			header:      hdr("x-swimlane", long),
			served:      "main",
			wantBaggage: "-",
			wantLane:    long,
		},
		{
			name:        "lane of 64 characters with other baggage",
			header:      hdr("x-swimlane", long, "baggage", "user=alice"),
			served:      "main",
			wantBaggage: "user=alice",
			wantLane:    long,
		},
		{
			name:        "baggage lane decoding to a bad value",
			header:      hdr("baggage", "swimlane=dev%20feature1"),
			served:      "main",
			wantBaggage: "swimlane=dev%20feature1",
		},
		{
			name:        "baggage lane with a header-smuggling attempt",
			header:      hdr("baggage", "swimlane=dev-feature1%0D%0AX-Evil:%201"),
			served:      "main",
			wantBaggage: "swimlane=dev-feature1%0D%0AX-Evil:%201",
		},
		{
			name:        "invalid x-swimlane, valid baggage: baggage wins and fixes the header",
			header:      hdr("x-swimlane", "bad lane!", "baggage", "swimlane=dev-feature1"),
			served:      "f1",
			wantBaggage: "swimlane=dev-feature1",
			wantLane:    "dev-feature1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := do(t, c, "GET", "http://shop/", "", tt.header).reply(t)
			if rep.App != tt.served {
				t.Errorf("served by %q, want %q", rep.App, tt.served)
			}
			got := rep.Header.Values("Baggage")
			switch {
			case tt.wantBaggage == "-" && len(got) != 0:
				t.Errorf("app got baggage %q, want none (a bad lane must not be copied into baggage)", got)
			case tt.wantBaggage != "-" && (len(got) != 1 || got[0] != tt.wantBaggage):
				t.Errorf("app got baggage %q, want exactly %q", got, tt.wantBaggage)
			}
			if lanes := rep.Header.Values("X-Swimlane"); tt.wantLane == "" && len(lanes) != 0 || tt.wantLane != "" && (len(lanes) != 1 || lanes[0] != tt.wantLane) {
				t.Errorf("app got x-swimlane %q, want %q", lanes, tt.wantLane)
			}
			if rep.Header.Get("X-Evil") != "" {
				t.Errorf("a header was smuggled: X-Evil = %q", rep.Header.Get("X-Evil"))
			}
		})
	}

	t.Run("debug headers", func(t *testing.T) {
		tests := []struct {
			name               string
			header             http.Header
			served, fallback   string
			wantServedPresent  bool
			wantFallbackHeader bool
		}{
			{"feature lane served", hdr("x-swimlane-debug", "1", "x-swimlane", "dev-feature1"), "dev-feature1", "", true, false},
			{"fallback to main", hdr("x-swimlane-debug", "1", "x-swimlane", "dev-feature2"), "main", "dev-feature2 -> main", true, true},
			{"baggage lane falls back", hdr("x-swimlane-debug", "1", "baggage", "swimlane=dev-feature3"), "main", "dev-feature3 -> main", true, true},
			{"no lane", hdr("x-swimlane-debug", "1"), "main", "", true, false},
			{"not asked for", hdr("x-swimlane", "dev-feature2"), "", "", false, false},
			{"asked with another value", hdr("x-swimlane-debug", "true", "x-swimlane", "dev-feature2"), "", "", false, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := do(t, c, "GET", "http://shop/", "", tt.header)
				res.reply(t)
				served, hasServed := res.Header["X-Swimlane-Served"]
				fallback, hasFallback := res.Header["X-Swimlane-Fallback"]
				if hasServed != tt.wantServedPresent || hasServed && served[0] != tt.served {
					t.Errorf("x-swimlane-served = %q (present %v), want %q (present %v)", served, hasServed, tt.served, tt.wantServedPresent)
				}
				if hasFallback != tt.wantFallbackHeader || hasFallback && fallback[0] != tt.fallback {
					t.Errorf("x-swimlane-fallback = %q (present %v), want %q (present %v)", fallback, hasFallback, tt.fallback, tt.wantFallbackHeader)
				}
			})
		}
	})
}

// TestH2C checks HTTP/2 with prior knowledge: a client speaking h2c to the outbound listener
// with :authority naming the service. An h2c upstream (directly, or behind its inbound
// sidecar) is reached over HTTP/2; an HTTP/1.1 upstream over HTTP/1.1.
func TestH2C(t *testing.T) {
	t.Parallel()
	m := newMesh(t, meshYAML("h2", "h2sidecar", "h1"))
	m.register(
		workload("h2-main", "h2", "main", startHTTPApp(t, "h2-app", true), snapshot.HTTP2),
		m.sidecarWorkload("h2sidecar-main", "h2sidecar", "main", startHTTPApp(t, "h2sidecar-app", true), snapshot.HTTP2),
		workload("h1-main", "h1", "main", startHTTPApp(t, "h1-app", false), snapshot.HTTP),
	)
	p := m.newProxy("sidecar~client")
	out := outbound(t, p)
	c := h2cClient(t)

	tests := []struct {
		service, app, wantProto string
	}{
		{"h2", "h2-app", "HTTP/2.0"},
		{"h2sidecar", "h2sidecar-app", "HTTP/2.0"},
		{"h1", "h1-app", "HTTP/1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			res := do(t, c, "GET", "http://"+out+"/h2?x=1", tt.service+":80", hdr("x-swimlane", "dev-feature1"))
			if res.ProtoMajor != 2 {
				t.Errorf("client got %s from the outbound listener, want HTTP/2.0", res.Proto)
			}
			rep := res.reply(t)
			if rep.App != tt.app || rep.Proto != tt.wantProto || rep.URI != "/h2?x=1" {
				t.Errorf("app %q got %s %q, want %q over %s at /h2?x=1", rep.App, rep.Proto, rep.URI, tt.app, tt.wantProto)
			}
			if rep.Host != tt.service+":80" {
				t.Errorf("app got authority %q, want %q", rep.Host, tt.service+":80")
			}
			checkLaneForms(t, rep.Header, "dev-feature1", nil)
		})
	}
}

// startStreamingApp starts an HTTP/1.1 app that answers "first\n", flushes, and writes
// "second\n" only when release is closed: a response streamed in parts, like server-sent
// events.
func startStreamingApp(t testing.TB, release <-chan struct{}) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second\n")
	})}
	lis := listen(t)
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	return lis.Addr().String()
}

// TestStreamedResponse checks that the proxies pass each part of a streamed response on at
// once: the client reads the first part while the app still holds the second back.
func TestStreamedResponse(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	m := newMesh(t, meshYAML("events", "events2"))
	app := startStreamingApp(t, release)
	m.register(
		workload("events-main", "events", "main", app, snapshot.HTTP),
		m.sidecarWorkload("events2-main", "events2", "main", app, snapshot.HTTP),
	)
	c := httpClient(t, outbound(t, m.newProxy("sidecar~client")))

	var bodies []*bufio.Reader
	for _, svc := range []string{"events", "events2"} {
		res, err := c.Get("http://" + svc + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		br := bufio.NewReader(res.Body)
		// Only the first part exists yet: reading it must not wait for the rest.
		if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
			t.Fatalf("%s: first part %q, %v", svc, line, err)
		}
		bodies = append(bodies, br)
	}
	close(release)
	for i, br := range bodies {
		if rest, err := io.ReadAll(br); err != nil || string(rest) != "second\n" {
			t.Errorf("response %d: rest %q, %v; want \"second\\n\"", i, rest, err)
		}
	}
}

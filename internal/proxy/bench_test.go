package proxy_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"swimlane.dev/swimlane/internal/registry"
	"swimlane.dev/swimlane/internal/snapshot"
)

// startKiBApp starts an HTTP/1.1 server on 127.0.0.1:0 answering every request with 1 KiB.
func startKiBApp(tb testing.TB) string { return startKiBServer(tb, false) }

// startKiBServer is startKiBApp, speaking HTTP/2 with prior knowledge too when h2c is set.
func startKiBServer(tb testing.TB, h2c bool) string {
	tb.Helper()
	body := make([]byte, 1024)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(h2c)
	srv := &http.Server{Protocols: &protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(body)
	})}
	lis := listen(tb)
	go srv.Serve(lis)
	tb.Cleanup(func() { srv.Close() })
	return lis.Addr().String()
}

// benchGet sends b.N keep-alive GETs to url with Host host and header, checking each is a 200
// with 1 KiB.
func benchGet(b *testing.B, c *http.Client, url, host string, header http.Header) {
	b.Helper()
	do := func() {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Host = host
		for k, vs := range header {
			req.Header[k] = vs
		}
		res, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK || n != 1024 {
			b.Fatalf("status %d, %d bytes, err %v", res.StatusCode, n, err)
		}
	}
	do() // warm the connection up outside the measurement
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		do()
	}
}

// benchMesh is newMesh with a logger that discards: the harness's test logger would print the
// control plane's connection lines into the benchmark output.
func benchMesh(b *testing.B, yaml string) *mesh {
	b.Helper()
	m := &mesh{t: b, log: slog.New(slog.DiscardHandler), reg: registry.New(), cfg: parseConfig(b, yaml)}
	lis := listen(b)
	m.cpAddr = lis.Addr().String()
	m.startControlPlane(lis, m.cfg)
	return m
}

// BenchmarkOutboundHTTP1 is the per-request hot path of the sidecar: a keep-alive HTTP/1.1
// client sends GET with the service in the Host header to a real proxy's outbound listener,
// which routes and forwards it to a real upstream answering 1 KiB. allocs/op and B/op are the
// whole process's (client, proxy and upstream); BenchmarkDirectHTTP1 is the same client and
// upstream without the proxy, so the proxy's own cost is the difference.
//
//   - no-lane: no lane header, served by the baseline
//   - lane: x-swimlane: dev, served by the dev endpoint
//   - lane-fallback: x-swimlane: gone, a lane without endpoints, falling back to main
//   - baggage: the lane in W3C baggage only, among other members, as an instrumented app sends it
func BenchmarkOutboundHTTP1(b *testing.B) {
	m := benchMesh(b, meshYAML("web"))
	m.register(
		workload("web-main", "web", "main", startKiBApp(b), snapshot.HTTP),
		workload("web-dev", "web", "dev", startKiBApp(b), snapshot.HTTP),
	)
	p := m.newProxy("sidecar~bench")
	out := outbound(b, p)
	c := httpClient(b, "")
	url := "http://" + out + "/api/items?id=42"

	b.Run("no-lane", func(b *testing.B) { benchGet(b, c, url, "web:80", nil) })
	b.Run("lane", func(b *testing.B) { benchGet(b, c, url, "web:80", hdr("X-Swimlane", "dev")) })
	b.Run("lane-fallback", func(b *testing.B) { benchGet(b, c, url, "web:80", hdr("X-Swimlane", "gone")) })
	b.Run("baggage", func(b *testing.B) {
		benchGet(b, c, url, "web:80", hdr("Baggage", "userId=alice,swimlane=dev,region=eu"))
	})
}

// BenchmarkDirectHTTP1 is BenchmarkOutboundHTTP1's baseline: the same client and upstream,
// no proxy in between.
func BenchmarkDirectHTTP1(b *testing.B) {
	app := startKiBApp(b)
	c := httpClient(b, "")
	url := "http://" + app + "/api/items?id=42"
	b.Run("no-lane", func(b *testing.B) { benchGet(b, c, url, "web:80", nil) })
	b.Run("lane", func(b *testing.B) { benchGet(b, c, url, "web:80", hdr("X-Swimlane", "dev")) })
}

// BenchmarkOutboundH2C is BenchmarkOutboundHTTP1/lane over HTTP/2 with prior knowledge on
// both sides: an h2c client, the sidecar's outbound listener, an h2c upstream. The proxy's
// own cost is the difference from BenchmarkDirectH2C.
func BenchmarkOutboundH2C(b *testing.B) {
	m := benchMesh(b, meshYAML("web"))
	m.register(
		workload("web-main", "web", "main", startKiBServer(b, true), snapshot.HTTP2),
		workload("web-dev", "web", "dev", startKiBServer(b, true), snapshot.HTTP2),
	)
	p := m.newProxy("sidecar~bench")
	benchGet(b, h2cClient(b), "http://"+outbound(b, p)+"/api/items?id=42", "web:80", hdr("X-Swimlane", "dev"))
}

// BenchmarkDirectH2C is BenchmarkOutboundH2C's baseline: the same client and upstream, no
// proxy in between.
func BenchmarkDirectH2C(b *testing.B) {
	benchGet(b, h2cClient(b), "http://"+startKiBServer(b, true)+"/api/items?id=42", "web:80", hdr("X-Swimlane", "dev"))
}

// BenchmarkOutboundHTTP1Parallel is BenchmarkOutboundHTTP1/lane with concurrent clients (one
// keep-alive connection each, GOMAXPROCS*4 of them): contention on shared state in the proxy
// (snapshot, ejector, trace memory, transport pool) shows here and not in the serial one.
func BenchmarkOutboundHTTP1Parallel(b *testing.B) {
	m := benchMesh(b, meshYAML("web"))
	m.register(
		workload("web-main", "web", "main", startKiBApp(b), snapshot.HTTP),
		workload("web-dev", "web", "dev", startKiBApp(b), snapshot.HTTP),
	)
	p := m.newProxy("sidecar~bench")
	out := outbound(b, p)
	url := "http://" + out + "/api/items?id=42"
	b.ReportAllocs()
	b.SetBytes(1024)
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		tr := &http.Transport{DisableCompression: true, Proxy: nil}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		for pb.Next() {
			req, _ := http.NewRequestWithContext(context.Background(), "GET", url, nil)
			req.Host = "web:80"
			req.Header.Set("X-Swimlane", "dev")
			res, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
}

// Package proxycmd is the command line of a standalone proxy, shared by `swimlane proxy` and
// the lean `swimlane-proxy` binary. It links only the data plane.
package proxycmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"swimlane.dev/swimlane/internal/proxy"
	"swimlane.dev/swimlane/internal/snapshot"
)

// sidecarConcurrency is a sidecar's default GOMAXPROCS. Every pod runs a sidecar, so on a
// 64-core node Go's default (every CPU) would give each one 64 threads' worth of scheduler,
// heap and GC workers for a few hundred requests a second.
const sidecarConcurrency = 2

// Concurrency is the GOMAXPROCS a proxy runs with: the flag when given, else the environment's
// GOMAXPROCS (envSet; Go applied it already, current), else sidecarConcurrency for a sidecar
// (never more than current, which follows the CPU affinity and quota) and current for a gateway.
func Concurrency(flagValue int, envSet, gateway bool, current int) int {
	switch {
	case flagValue > 0:
		return flagValue
	case envSet, gateway:
		return current
	}
	return min(sidecarConcurrency, current)
}

// Run parses args and runs the proxy until ctx ends. name is the command as the user typed
// it, for --help.
func Run(ctx context.Context, name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s --control ADDR [--outbound ADDR] [--inbound ADDR --app ADDR] [--gateway NAME --listen ADDR]\n\nRuns one proxy: a sidecar (outbound and/or inbound listener) or an ingress gateway.\n\nFlags:\n", name)
		fs.PrintDefaults()
	}
	controlAddr := fs.String("control", "127.0.0.1:15010", "control plane gRPC address")
	node := fs.String("node", "", "this proxy's name, for logs and the control plane (default: derived from the role)")
	outbound := fs.String("outbound", "", "sidecar: outbound listener, e.g. 127.0.0.1:15001 (point the app's HTTP_PROXY and HTTPS_PROXY here)")
	inbound := fs.String("inbound", "", "sidecar: inbound listener, e.g. 127.0.0.1:15006 (needs --app)")
	app := fs.String("app", "", "sidecar: the app's address behind the inbound listener, e.g. 127.0.0.1:8080")
	protocol := fs.String("protocol", "http", "sidecar: the app's protocol: http, http2, grpc or tcp")
	gateway := fs.String("gateway", "", "gateway: the gateway's name in the mesh config (needs --listen)")
	listen := fs.String("listen", "", "gateway: listen address, e.g. 127.0.0.1:8080")
	labels := fs.String("labels", "", "sidecar: the workload's labels, k=v,k2=v2 (for VirtualService sourceLabels)")
	verbose := fs.Bool("v", false, "log every request and snapshot (debug level)")
	adminAddr := fs.String("admin", "127.0.0.1:15000", "admin API: /metrics, /healthz, /proxies (empty to disable)")
	accessLog := fs.Bool("access-log", false, "log one line per request: lane asked, lane served, fallback, endpoint, status")
	concurrency := fs.Int("concurrency", 0, "threads running proxy code at once (GOMAXPROCS). Default: 2 for a sidecar, as Istio's sidecars, and every CPU for a gateway; a GOMAXPROCS environment variable is kept")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *outbound == "" && *inbound == "" && *gateway == "" {
		fs.Usage()
		return errors.New("proxy: give --outbound, --inbound or --gateway")
	}
	if (*inbound == "") != (*app == "") || (*gateway == "") != (*listen == "") {
		return errors.New("proxy: --inbound goes with --app, --gateway with --listen")
	}
	proto, err := snapshot.ParseProtocol(*protocol)
	if err != nil {
		return err
	}
	id := *node
	if id == "" {
		id = "sidecar~" + *app
		if *gateway != "" {
			id = "gateway~" + *gateway
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	runtime.GOMAXPROCS(Concurrency(*concurrency, os.Getenv("GOMAXPROCS") != "", *gateway != "", runtime.GOMAXPROCS(0)))
	log.Info("proxy starting", "node", id, "concurrency", runtime.GOMAXPROCS(0))
	p := proxy.New(id, log)
	if *labels != "" {
		p.Labels = map[string]string{}
		for _, kv := range strings.Split(*labels, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("proxy: --labels %q: want k=v,k2=v2", *labels)
			}
			p.Labels[k] = v
		}
	}
	metrics := proxy.NewMetrics()
	p.UseMetrics(metrics)
	p.AccessLog = *accessLog
	admin := proxy.NewAdmin(metrics)
	admin.Add(p)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	serve := func(role, addr string, run func(net.Listener) error) {
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			errs <- err
			return
		}
		log.Info("proxy listening", "role", role, "addr", lis.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(lis); err != nil {
				errs <- err
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = p.Subscribe(ctx, *controlAddr, nil)
	}()
	if *adminAddr != "" {
		serve("admin", *adminAddr, func(l net.Listener) error {
			srv := &http.Server{Handler: admin.Handler(), ReadHeaderTimeout: 10 * time.Second}
			go func() { <-ctx.Done(); srv.Close() }()
			if err := srv.Serve(l); err != http.ErrServerClosed {
				return err
			}
			return nil
		})
	}
	if *outbound != "" {
		serve("outbound", *outbound, func(l net.Listener) error { return p.ServeOutbound(ctx, l) })
	}
	if *inbound != "" {
		serve("inbound", *inbound, func(l net.Listener) error { return p.ServeInbound(ctx, l, *app, proto) })
	}
	if *gateway != "" {
		serve("gateway", *listen, func(l net.Listener) error { return p.ServeGateway(ctx, l, *gateway) })
	}
	select {
	case <-ctx.Done():
	case err = <-errs:
		cancel()
	}
	wg.Wait()
	return err
}

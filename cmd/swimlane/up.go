package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"swimlane.dev/swimlane/internal/local"
)

func runUp(ctx context.Context, args []string) error {
	fs := newFlags("up", "up -f FILE [-f FILE ...] [flags]")
	var files multiFlag
	fs.Var(&files, "f", "a Mesh file, or an Istio / Gateway API / Service config file or folder (repeatable)")
	common := localFlags(fs)
	logger := logFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(files) == 0 {
		fs.Usage()
		return fmt.Errorf("up: -f FILE is required")
	}
	opts := common()
	opts.Files, opts.Log = files, logger()
	return runLocal(ctx, opts, nil)
}

// localFlags adds the flags `up` and `demo` share and returns a constructor for their options.
func localFlags(fs *flag.FlagSet) func() local.Options {
	controlAddr := fs.String("control-addr", "127.0.0.1:15010", "control plane gRPC address (port 0 picks a free one)")
	adminAddr := fs.String("admin-addr", "127.0.0.1:15000", "proxies' admin API: /metrics, /healthz, /proxies (port 0 picks a free one)")
	accessLog := fs.Bool("access-log", false, "log one line per proxied request: lane asked, lane served, fallback, endpoint, status")
	return func() local.Options {
		return local.Options{ControlAddr: *controlAddr, AdminAddr: *adminAddr, AccessLog: *accessLog}
	}
}

// runLocal starts a local mesh, prints where it listens once every workload is ready, then
// runs until ctx ends and everything has stopped. extra, if set, prints more after the
// summary.
func runLocal(ctx context.Context, opts local.Options, extra func(m *local.Mesh)) error {
	started := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m, err := local.Start(ctx, opts)
	if err != nil {
		return err
	}
	ready, cancelReady := context.WithTimeout(ctx, 60*time.Second)
	err = m.WaitReady(ready)
	cancelReady()
	if err != nil {
		cancel()
		m.Wait()
		return err
	}
	fmt.Printf("\nSwimlane is ready in %.1fs. Control plane: %s. Admin (metrics): http://%s\n", time.Since(started).Seconds(), m.ControlAddr(), m.AdminAddr())
	for _, g := range m.GatewayNames() {
		fmt.Printf("Gateway %s listening on %s\n", g, m.GatewayAddr(g))
	}
	fmt.Printf("Services and the lanes they are deployed in:\n%s", m.Summary())
	if extra != nil {
		extra(m)
	}
	fmt.Println("Press Ctrl-C to stop.")
	<-ctx.Done()
	opts.Log.Info("stopping", "reason", context.Cause(ctx))
	m.Wait()
	slog.Default().Debug("stopped")
	return nil
}

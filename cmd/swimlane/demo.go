package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	swimlanedemo "swimlane.dev/swimlane/examples/swimlane-demo"
	"swimlane.dev/swimlane/internal/local"
)

func runDemo(ctx context.Context, args []string) error {
	fs := newFlags("demo", "demo [flags]")
	routing := fs.String("routing", "auto", "routing config: auto (lane fallback, no rules), istio-api or gateway-api (the seed's own YAML)")
	port := fs.Int("port", 8080, "gateway port (0 picks a free one)")
	common := localFlags(fs)
	logger := logFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "swimlane-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	files, err := swimlanedemo.WriteFiles(dir, *routing)
	if err != nil {
		return err
	}
	opts := common()
	opts.Files, opts.Log = files, logger()
	opts.GatewayAddrs = map[string]string{"ingress": net.JoinHostPort("127.0.0.1", strconv.Itoa(*port))}
	return runLocal(ctx, opts, func(m *local.Mesh) {
		addr := m.GatewayAddr("ingress")
		if strings.HasPrefix(addr, "127.0.0.1:") {
			addr = "localhost:" + strings.TrimPrefix(addr, "127.0.0.1:")
		}
		fmt.Printf("Config (edit it live): %s\nTry:\n", strings.Join(files, " "))
		for _, l := range []string{"", "main", "dev-feature1", "dev-feature2", "not_exist"} {
			h := ""
			if l != "" {
				h = " -H 'x-swimlane: " + l + "'"
			}
			fmt.Printf("  curl -s %s/goods%s\n", addr, h)
		}
	})
}

func runDemoWorkload(ctx context.Context, args []string) error {
	fs := newFlags("demo-workload", "demo-workload NAME (started by swimlane demo; one of "+strings.Join(swimlanedemo.WorkloadNames(), ", ")+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("demo-workload: want one NAME")
	}
	run, ok := swimlanedemo.Workloads[fs.Arg(0)]
	if !ok {
		return fmt.Errorf("demo-workload: unknown workload %q (want one of %s)", fs.Arg(0), strings.Join(swimlanedemo.WorkloadNames(), ", "))
	}
	return run(ctx)
}

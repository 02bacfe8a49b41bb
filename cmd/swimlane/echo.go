package main

import (
	"context"
	"net"
	"os"
	"strings"

	"swimlane.dev/swimlane/internal/echo"
)

func runEcho(ctx context.Context, args []string) error {
	fs := newFlags("echo", "echo [flags] (a test workload: answers with who it is and what it got)")
	port := fs.String("port", os.Getenv("PORT"), "port to listen on, on 127.0.0.1 (default $PORT, else 8080)")
	service := fs.String("service", os.Getenv("WORKLOAD"), "service name to report (default $WORKLOAD)")
	version := fs.String("version", "", "version to report, e.g. v1")
	lane := fs.String("lane", os.Getenv("LANE"), "lane to report (default $LANE)")
	upstream := fs.String("upstream", "", "URL to call on every request, e.g. http://backend:8080/ (through the sidecar)")
	forward := fs.String("forward", strings.Join(echo.DefaultForward, ","), "request headers copied to the upstream call, comma-separated (empty: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *port == "" {
		*port = "8080"
	}
	lis, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", *port))
	if err != nil {
		return err
	}
	var fwd []string
	for _, h := range strings.Split(*forward, ",") {
		if h = strings.TrimSpace(h); h != "" {
			fwd = append(fwd, h)
		}
	}
	return echo.Serve(ctx, echo.Config{Service: *service, Version: *version, Lane: *lane, Upstream: *upstream, Forward: fwd, Listener: lis})
}

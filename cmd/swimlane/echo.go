package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"swimlane.dev/swimlane/internal/echo"
)

func runEcho(ctx context.Context, args []string) error {
	fs := newFlags("echo", "echo [flags] (a test workload: answers with who it is and what it got)")
	port := fs.String("port", os.Getenv("PORT"), "port to listen on, on 127.0.0.1 (default $PORT, else 8080)")
	service := fs.String("service", os.Getenv("WORKLOAD"), "service name to report (default $WORKLOAD)")
	version := fs.String("version", "", "version to report, e.g. v1")
	lane := fs.String("lane", os.Getenv("LANE"), "lane to report (default $LANE)")
	propagate := fs.Bool("propagate-errors", false, "http: answer 502 when the upstream failed, so failures cascade as in seed 002 (default: report it in the answer's upstreamError)")
	protocol := fs.String("protocol", "http", "protocol to serve: http (HTTP/1.1 and h2c), grpc (swimlane.echo.v1.Echo and grpc.health.v1) or tcp (line echo prefixed with the version)")
	upstream := fs.String("upstream", "", "next hop to call on every request (through the sidecar): with http a URL, e.g. http://backend:8080/; with grpc a target, e.g. echo-b:9000; unused with tcp")
	forward := fs.String("forward", strings.Join(echo.DefaultForward, ","), "request headers (grpc: metadata keys) copied to the upstream call, comma-separated (empty: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !slices.Contains(echo.Protocols, *protocol) {
		return fmt.Errorf("echo: --protocol %q: want one of %s", *protocol, strings.Join(echo.Protocols, ", "))
	}
	if *protocol == "tcp" && *upstream != "" {
		return fmt.Errorf("echo: --upstream is not supported with --protocol tcp")
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
	return echo.Serve(ctx, echo.Config{Service: *service, Version: *version, Lane: *lane, Upstream: *upstream, Forward: fwd, Listener: lis, Protocol: *protocol, PropagateErrors: *propagate})
}

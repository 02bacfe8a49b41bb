package main

import (
	"context"
	"errors"
	"net"
	"sync"

	"swimlane.dev/swimlane/internal/proxy"
	"swimlane.dev/swimlane/internal/snapshot"
)

func runProxy(ctx context.Context, args []string) error {
	fs := newFlags("proxy", "proxy --control ADDR [--outbound ADDR] [--inbound ADDR --app ADDR] [--gateway NAME --listen ADDR]")
	controlAddr := fs.String("control", "127.0.0.1:15010", "control plane gRPC address")
	node := fs.String("node", "", "this proxy's name, for logs and the control plane (default: derived from the role)")
	outbound := fs.String("outbound", "", "sidecar: outbound listener, e.g. 127.0.0.1:15001 (point the app's HTTP_PROXY and HTTPS_PROXY here)")
	inbound := fs.String("inbound", "", "sidecar: inbound listener, e.g. 127.0.0.1:15006 (needs --app)")
	app := fs.String("app", "", "sidecar: the app's address behind the inbound listener, e.g. 127.0.0.1:8080")
	protocol := fs.String("protocol", "http", "sidecar: the app's protocol: http, http2, grpc or tcp")
	gateway := fs.String("gateway", "", "gateway: the gateway's name in the mesh config (needs --listen)")
	listen := fs.String("listen", "", "gateway: listen address, e.g. 127.0.0.1:8080")
	logger := logFlags(fs)
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
	name := *node
	if name == "" {
		name = "sidecar~" + *app
		if *gateway != "" {
			name = "gateway~" + *gateway
		}
	}
	log := logger()
	p := proxy.New(name, log)

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	start := func(addr string, serve func(net.Listener) error) {
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			errs <- err
			return
		}
		log.Info("proxy listening", "addr", lis.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(lis); err != nil {
				errs <- err
			}
		}()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = p.Subscribe(ctx, *controlAddr, nil)
	}()
	if *outbound != "" {
		start(*outbound, func(l net.Listener) error { return p.ServeOutbound(ctx, l) })
	}
	if *inbound != "" {
		start(*inbound, func(l net.Listener) error { return p.ServeInbound(ctx, l, *app, proto) })
	}
	if *gateway != "" {
		start(*listen, func(l net.Listener) error { return p.ServeGateway(ctx, l, *gateway) })
	}
	var err2 error
	select {
	case <-ctx.Done():
	case err2 = <-errs:
		cancel()
	}
	wg.Wait()
	return err2
}

package main

import (
	"context"
	"fmt"
	"net"

	"swimlane.dev/swimlane/internal/config"
	"swimlane.dev/swimlane/internal/control"
	"swimlane.dev/swimlane/internal/registry"
	"swimlane.dev/swimlane/internal/snapshot"
)

func runControl(ctx context.Context, args []string) error {
	fs := newFlags("control", "control -f FILE [-f FILE ...] [flags]")
	var files multiFlag
	fs.Var(&files, "f", "config file or folder: a Mesh file (its workloads with an address become endpoints), Istio, Gateway API, Services (repeatable)")
	listen := fs.String("listen", "127.0.0.1:15010", "gRPC address proxies connect to")
	logger := logFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := logger()
	set, err := config.LoadFiles(files...)
	if err != nil {
		return err
	}
	reg := registry.New()
	for _, m := range set.Meshes {
		for _, w := range m.Spec.Workloads {
			if w.Address == "" {
				return fmt.Errorf("control: %s: workload %s has no address; only local mode (swimlane up) starts commands", m.Source, w.Name)
			}
			proto := snapshot.HTTP
			if w.Protocol != "" {
				if proto, err = snapshot.ParseProtocol(w.Protocol); err != nil {
					return fmt.Errorf("control: %s: workload %s: %w", m.Source, w.Name, err)
				}
			}
			reg.Upsert(registry.Workload{Name: w.Name, Address: w.Address, Protocol: proto, Labels: w.Labels})
		}
	}
	cp, err := control.New(reg, log)
	if err != nil {
		return err
	}
	if err := cp.SetConfig(set); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Info("control plane listening", "addr", lis.Addr().String())
	go cp.Run(ctx)
	return cp.Serve(ctx, lis)
}

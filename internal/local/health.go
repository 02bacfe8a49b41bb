package local

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"swimlane.dev/swimlane/internal/config"
)

// healthCheck is one workload's compiled check.
type healthCheck struct {
	interval time.Duration
	failures int
	probe    func(ctx context.Context) error
}

// newHealthCheck builds the check for spec against the app at addr (validated beforehand by
// checkWorkloads, so errors here are not expected).
func newHealthCheck(spec *config.MeshHealth, addr string) (*healthCheck, error) {
	h := &healthCheck{interval: time.Second, failures: 2}
	if spec.Interval != "" {
		d, err := time.ParseDuration(spec.Interval)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("interval %q: want a positive duration like 1s", spec.Interval)
		}
		h.interval = d
	}
	if spec.Failures > 0 {
		h.failures = spec.Failures
	}
	timeout := min(h.interval, 2*time.Second)
	switch {
	case spec.Path != "":
		client := &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		url := "http://" + addr + spec.Path
		h.probe = func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				return fmt.Errorf("GET %s: %s", spec.Path, resp.Status)
			}
			return nil
		}
	case spec.GRPC:
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithNoProxy())
		if err != nil {
			return nil, err
		}
		client := healthpb.NewHealthClient(conn)
		h.probe = func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				return err
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				return fmt.Errorf("grpc health: %s", resp.GetStatus())
			}
			return nil
		}
	default:
		h.probe = func(ctx context.Context) error {
			c, err := (&net.Dialer{Timeout: timeout}).DialContext(ctx, "tcp", addr)
			if err == nil {
				c.Close()
			}
			return err
		}
	}
	return h, nil
}

// watchHealth runs the check until ctx ends or stop closes, marking the workload unhealthy
// after h.failures failures in a row and healthy again after one success.
func (m *Mesh) watchHealth(ctx context.Context, stop <-chan struct{}, name string, h *healthCheck) {
	tick := time.NewTicker(h.interval)
	defer tick.Stop()
	failed := 0
	unhealthy := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-tick.C:
		}
		err := h.probe(ctx)
		switch {
		case err == nil:
			failed = 0
			if unhealthy {
				unhealthy = false
				m.reg.SetHealth(name, "")
				m.log.Info("workload healthy again; it takes traffic", "workload", name)
			}
		case ctx.Err() != nil:
			return
		default:
			failed++
			if !unhealthy && failed >= h.failures {
				unhealthy = true
				m.reg.SetHealth(name, "unhealthy")
				m.log.Warn("workload unhealthy; its lane falls back until it recovers", "workload", name, "err", err)
			}
		}
	}
}

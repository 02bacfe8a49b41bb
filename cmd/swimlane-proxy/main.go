// Command swimlane-proxy is the sidecar and gateway alone: `swimlane proxy` without the
// control plane, config loaders and demo linked in. Every pod runs a proxy, and every package
// linked into it costs memory at start (Go runs each package's init), so the image that
// Kubernetes injects uses this binary. Its flags are those of `swimlane proxy`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"swimlane.dev/swimlane/internal/proxy/proxycmd"
)

// atExit runs when the proxy stops (set by the pgoprofile build).
var atExit = func() {}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := proxycmd.Run(ctx, "swimlane-proxy", os.Args[1:])
	stop()
	atExit()
	if err != nil {
		fmt.Fprintln(os.Stderr, "swimlane-proxy:", err)
		os.Exit(1)
	}
}

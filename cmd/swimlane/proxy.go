package main

import (
	"context"

	"swimlane.dev/swimlane/internal/proxy/proxycmd"
)

func runProxy(ctx context.Context, args []string) error {
	return proxycmd.Run(ctx, "swimlane proxy", args)
}

// Package swimlanedemo is the seed's swimlane demo, built into the swimlane binary: its mesh
// file, the seed's own routing files, and its three workloads (gateway, goods, pricing), which
// `swimlane demo` starts as child processes of itself through `swimlane demo-workload NAME`.
package swimlanedemo

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"swimlane.dev/swimlane/examples/swimlane-demo/gateway"
	"swimlane.dev/swimlane/examples/swimlane-demo/goods"
	"swimlane.dev/swimlane/examples/swimlane-demo/pricing"
)

//go:embed mesh.yaml routing/istio-api/*.yaml routing/gateway-api/*.yaml
var files embed.FS

// Workloads are the demo's programs by name.
var Workloads = map[string]func(context.Context) error{
	"gateway": gateway.Run,
	"goods":   goods.Run,
	"pricing": pricing.Run,
}

// WorkloadNames lists Workloads' keys, sorted.
func WorkloadNames() []string {
	names := make([]string, 0, len(Workloads))
	for n := range Workloads {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Routings are the choices of routing config: "auto" (none: lane fallback does it all) and the
// seed's two variants.
var Routings = []string{"auto", "istio-api", "gateway-api"}

// WriteFiles writes the mesh file, and the routing variant's files unless routing is "auto",
// into dir (so users can edit them live) and returns the paths to pass to local mode.
func WriteFiles(dir, routing string) ([]string, error) {
	switch routing {
	case "auto", "istio-api", "gateway-api":
	default:
		return nil, fmt.Errorf("demo: unknown routing %q (want one of %v)", routing, Routings)
	}
	meshPath := filepath.Join(dir, "mesh.yaml")
	if err := copyFile(meshPath, "mesh.yaml"); err != nil {
		return nil, err
	}
	paths := []string{meshPath}
	if routing == "auto" {
		return paths, nil
	}
	routingDir := filepath.Join(dir, "routing")
	if err := os.MkdirAll(routingDir, 0o755); err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(files, "routing/"+routing)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if err := copyFile(filepath.Join(routingDir, e.Name()), "routing/"+routing+"/"+e.Name()); err != nil {
			return nil, err
		}
	}
	return append(paths, routingDir), nil
}

func copyFile(dst, src string) error {
	data, err := files.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

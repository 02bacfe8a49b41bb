package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoControlPlaneTypes guards the sidecar's memory: every package linked runs its
// init in every pod, and the config types (Istio, Gateway API, Kubernetes) cost megabytes.
func TestLinksNoControlPlaneTypes(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"istio.io/", "k8s.io/", "sigs.k8s.io/", "gopkg.in/yaml", "swimlane.dev/swimlane/internal/config", "swimlane.dev/swimlane/internal/compile", "swimlane.dev/swimlane/examples/"} {
			if strings.HasPrefix(pkg, banned) {
				t.Errorf("swimlane-proxy links %s", pkg)
			}
		}
	}
}

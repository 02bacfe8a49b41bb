package main

import (
	"os"
	"os/exec"
	"path/filepath"
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

// TestProfileBuildWritesProfile runs the pgoprofile build, which must write its CPU profile
// when it stops, even on a start that fails (here: an unknown flag).
func TestProfileBuildWritesProfile(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "swimlane-proxy")
	if out, err := exec.Command("go", "build", "-tags", "pgoprofile", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	profile := filepath.Join(dir, "cpu.pprof")
	cmd := exec.Command(bin, "--no-such-flag")
	cmd.Env = append(os.Environ(), "SWIMLANE_CPUPROFILE="+profile)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("an unknown flag was taken: %s", out)
	}
	b, err := os.ReadFile(profile)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b { // pprof's format is gzipped protobuf
		t.Fatalf("profile is not a pprof file: % x", b[:min(len(b), 8)])
	}
}

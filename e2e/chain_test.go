package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	swimlanedemo "swimlane.dev/swimlane/examples/swimlane-demo"
)

const goodsFeature3 = `  - name: goods-dev-feature3
    labels: {app: goods, swimlane: dev-feature3}
    protocol: grpc
    command: [$SWIMLANE_BIN, demo-workload, goods]
    env: {PRICING_SERVICE: "pricing-service:50052", SWIMLANE: $LANE}
`

// TestThreeLaneChainAddedLive runs the seed demo, and while requests in lane dev-feature3
// flow, declares the lane dev-feature3 -> dev-feature1 -> main, deploys goods into it, and
// removes that deployment again: each edit applies live, and no request fails.
func TestThreeLaneChainAddedLive(t *testing.T) {
	dir := t.TempDir()
	files, err := swimlanedemo.WriteFiles(dir, "auto")
	if err != nil {
		t.Fatal(err)
	}
	meshFile := files[0]
	mesh, _ := os.ReadFile(meshFile)
	original := strings.Replace(string(mesh), "port: 8080\n    service:", "port: 0\n    service:", 1)
	writeAtomically(t, meshFile, original)
	lanesDir := filepath.Join(dir, "lanes")
	os.Mkdir(lanesDir, 0o755)

	p := start(t, "up", "-f", meshFile, "-f", lanesDir, "--control-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	url := "http://" + p.waitFor(`Gateway ingress listening on (\S+)`, 60*time.Second)[1] + "/goods"
	p.waitFor(`Press Ctrl-C`, 10*time.Second)
	tr := startTraffic(t, url, "x-swimlane", "dev-feature3")
	expect := func(goods, pricing string) {
		t.Helper()
		want := "Goods Swimlane: " + goods + "\nPricing Swimlane: " + pricing + "\n"
		eventually(t, 10*time.Second, "dev-feature3 to be served by goods "+goods+" and pricing "+pricing, func() bool {
			return strings.HasPrefix(tr.lastBody(), want)
		})
		tr.waitMore(t, 20)
		if got := tr.lastBody(); !strings.HasPrefix(got, want) {
			t.Fatalf("after the change settled, got %q, want %q", got, want)
		}
	}

	// 1. Undeclared and undeployed: the default chain, dev-feature3 -> main.
	expect("main", "main")

	// 2. Declare the lane with a chain through dev-feature1.
	writeAtomically(t, filepath.Join(lanesDir, "dev-feature3.yaml"), `apiVersion: swimlane.dev/v1alpha1
kind: Lane
metadata: {name: dev-feature3}
spec:
  fallback: [dev-feature1]
  owner: team-goods
  description: the third feature lane, built on dev-feature1
`)
	expect("dev-feature1", "dev-feature1")

	// 3. Deploy goods into dev-feature3: pricing still comes from dev-feature1.
	withWorkload := strings.Replace(original, "  - name: pricing-main\n", goodsFeature3+"  - name: pricing-main\n", 1)
	writeAtomically(t, meshFile, withWorkload)
	p.waitFor(`workload ready" workload=goods-dev-feature3`, 30*time.Second)
	expect("dev-feature3", "dev-feature1")

	// 4. Remove the deployment again: drained, then stopped; back to dev-feature1.
	writeAtomically(t, meshFile, original)
	p.waitFor(`workload removed from the mesh; stopping it" workload=goods-dev-feature3`, 30*time.Second)
	expect("dev-feature1", "dev-feature1")

	tr.check(t)
	t.Logf("%d requests in lane dev-feature3 across three live changes, %d failed", tr.total.Load(), tr.failed.Load())
}

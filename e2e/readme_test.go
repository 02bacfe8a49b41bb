package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReadmeMeshFile runs the Mesh file the README documents, so the documentation cannot
// drift from what `swimlane up` accepts.
func TestReadmeMeshFile(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)[strings.Index(string(readme), "## Local mode"):]
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(section)
	if block == nil {
		t.Fatal("no yaml block in the README's local mode section")
	}
	// Free ports instead of the documented 8080, so the test runs beside anything.
	mesh := strings.Replace(block[1], "port: 8080              #", "port: 0 #", 1)
	dir := t.TempDir()
	file := filepath.Join(dir, "shop.yaml")
	if err := os.WriteFile(file, []byte(mesh), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "up", "-f", file, "--control-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	addr := p.waitFor(`Gateway ingress listening on (\S+)`, 60*time.Second)[1]
	code, body := get(t, "http://"+addr+"/goods", "x-swimlane", "feat-123")
	if code != 200 || !strings.HasPrefix(body, "Goods Swimlane: feat-123\nPricing Swimlane: main\n") {
		t.Fatalf("got %d %q", code, body)
	}
}

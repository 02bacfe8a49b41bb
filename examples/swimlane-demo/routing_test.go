package swimlanedemo

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestRoutingCopiesAreTheSeeds checks the embedded routing files are the seed's own,
// byte for byte: `swimlane demo --routing istio-api|gateway-api` must run them unchanged.
func TestRoutingCopiesAreTheSeeds(t *testing.T) {
	const seed = "../../../shared/examples/seed-swimlane-demo"
	for _, variant := range []string{"istio-api", "gateway-api"} {
		entries, err := files.ReadDir("routing/" + variant)
		if err != nil || len(entries) != 2 {
			t.Fatalf("%s: %d embedded files (%v), want 2", variant, len(entries), err)
		}
		for _, e := range entries {
			ours, _ := files.ReadFile("routing/" + variant + "/" + e.Name())
			theirs, err := os.ReadFile(filepath.Join(seed, variant, e.Name()))
			if err != nil {
				t.Fatalf("the seed's files must sit beside the repo: %v", err)
			}
			if !bytes.Equal(ours, theirs) {
				t.Errorf("routing/%s/%s differs from the seed's", variant, e.Name())
			}
		}
	}
}

func TestWriteFiles(t *testing.T) {
	for _, routing := range Routings {
		paths, err := WriteFiles(t.TempDir(), routing)
		if err != nil {
			t.Fatalf("%s: %v", routing, err)
		}
		want := 2
		if routing == "auto" {
			want = 1
		}
		if len(paths) != want {
			t.Errorf("%s: paths %v", routing, paths)
		}
	}
	if _, err := WriteFiles(t.TempDir(), "nope"); err == nil {
		t.Error("an unknown routing was accepted")
	}
}

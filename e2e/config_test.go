package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	swimlanedemo "swimlane.dev/swimlane/examples/swimlane-demo"
)

// writeAtomically replaces a file as editors do: write a sibling, rename it over.
func writeAtomically(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp~"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestConfigEditLive runs the demo with the seed's Istio YAML, edits it while requests flow,
// and checks the edit applies within a second with no failed request; then a bad edit is
// rejected whole with file, line, object and field, and the last good config keeps serving.
func TestConfigEditLive(t *testing.T) {
	dir := t.TempDir()
	files, err := swimlanedemo.WriteFiles(dir, "istio-api")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"up", "--control-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}
	for _, f := range files {
		args = append(args, "-f", f)
	}
	// The mesh file's gateway port, 8080, may be taken on a shared machine: use a free one.
	meshData, _ := os.ReadFile(files[0])
	os.WriteFile(files[0], []byte(strings.Replace(string(meshData), "port: 8080\n    service:", "port: 0\n    service:", 1)), 0o644)
	p := start(t, args...)
	url := "http://" + p.waitFor(`Gateway ingress listening on (\S+)`, 60*time.Second)[1] + "/goods"
	p.waitFor(`Press Ctrl-C`, 10*time.Second)

	pricingFile := filepath.Join(dir, "routing", "pricing-istio-routing.yaml")
	original, err := os.ReadFile(pricingFile)
	if err != nil {
		t.Fatal(err)
	}

	// Traffic in lane dev-feature1 for the whole test; every answer must be a 200.
	tr := startTraffic(t, url, "x-swimlane", "dev-feature1")
	pricing := func() string {
		lines := strings.SplitN(tr.lastBody(), "\n", 3)
		if len(lines) < 2 {
			return ""
		}
		return lines[1]
	}
	eventually(t, 10*time.Second, "traffic in dev-feature1", func() bool {
		return pricing() == "Pricing Swimlane: dev-feature1"
	})

	// Good edit: pin dev-feature1's pricing traffic to the main subset.
	edited := strings.Replace(string(original), "subset: dev-feature1", "subset: main", 1)
	edit := time.Now()
	writeAtomically(t, pricingFile, edited)
	eventually(t, 5*time.Second, "the edit to apply", func() bool {
		return pricing() == "Pricing Swimlane: main"
	})
	took := time.Since(edit)
	t.Logf("edit applied %s after the write (%d requests so far, %d failed)", took.Round(time.Millisecond), tr.total.Load(), tr.failed.Load())
	if took > time.Second {
		t.Errorf("edit took %s to apply, want under a second", took)
	}

	// Bad edit: an unknown field. Rejected whole; the last good config keeps serving.
	bad := strings.Replace(edited, "  - match:", "  - timeoutz: 3s\n    match:", 1)
	writeAtomically(t, pricingFile, bad)
	p.waitFor(`config rejected; the last good config keeps serving.*pricing-istio-routing\.yaml:\d+: VirtualService/pricing: spec\.http\[0\]\.timeoutz`, 5*time.Second)
	tr.waitMore(t, 20)
	if got := pricing(); got != "Pricing Swimlane: main" {
		t.Errorf("after the bad edit, pricing answered %q; want the last good config's main", got)
	}
	tr.check(t)
}

// TestStartupRejectsBadConfig checks that an invalid file stops `up` before anything starts,
// naming file, line, object and field.
func TestStartupRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		wantErr string
	}{
		{
			name:    "unknown field in the mesh file",
			give:    "apiVersion: swimlane.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\nspec:\n  workloads:\n  - name: a\n    comand: [sleep, '100']\n",
			wantErr: `mesh.yaml:7: Mesh/m: spec.workloads[0].comand: unknown field`,
		},
		{
			name: "dangling subset",
			give: "apiVersion: swimlane.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\nspec:\n  services:\n  - {name: svc, port: 80, selector: {app: a}}\n" +
				"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs}\nspec:\n  hosts: [svc]\n  http:\n  - route:\n    - destination:\n        host: svc\n        subset: canary\n",
			wantErr: `mesh.yaml:17: VirtualService/vs: spec.http[0].route[0].destination.subset: subset "canary" of host "svc" is not defined by any DestinationRule`,
		},
		{
			name:    "malformed yaml",
			give:    "apiVersion: swimlane.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\nspec:\n  services:\n  - name: a\n   port: 80\n",
			wantErr: `mesh.yaml:7`,
		},
		{
			name:    "unknown variable in a command",
			give:    "apiVersion: swimlane.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\nspec:\n  workloads:\n  - name: a\n    command: [sleep, $SECONDS]\n",
			wantErr: `mesh.yaml:6: Mesh/m: spec.workloads[0]: unknown variable $SECONDS`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "mesh.yaml")
			if err := os.WriteFile(file, []byte(tt.give), 0o644); err != nil {
				t.Fatal(err)
			}
			p := start(t, "up", "-f", file, "--control-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
			if err := p.exited(20 * time.Second); err == nil {
				t.Fatalf("swimlane up accepted a bad file:\n%s", p.out.String())
			}
			if out := p.out.String(); !strings.Contains(out, tt.wantErr) {
				t.Errorf("output lacks %q:\n%s", tt.wantErr, out)
			}
			if pids := p.workloadPIDs(); len(pids) != 0 {
				t.Errorf("workloads were started from a bad file: %v", pids)
			}
		})
	}
}

// TestStandaloneControlAndProxy runs `swimlane control` and `swimlane proxy` as separate
// processes: the proxy routes by lane with what the control plane streams, keeps serving when
// the control plane dies, and picks up a new config when one comes back.
func TestStandaloneControlAndProxy(t *testing.T) {
	// Two upstream apps, lanes main and feat.
	upstream := func(name string) string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s lane=%s", name, r.Header.Get("x-swimlane"))
		})}
		go srv.Serve(lis)
		t.Cleanup(func() { srv.Close() })
		return lis.Addr().String()
	}
	mainAddr, featAddr := upstream("app-main"), upstream("app-feat")
	mesh := func(featLane string) string {
		return fmt.Sprintf("apiVersion: swimlane.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\nspec:\n"+
			"  services:\n  - {name: app, port: 80, selector: {app: app}}\n"+
			"  workloads:\n  - {name: app-main, labels: {app: app, swimlane: main}, address: %q}\n"+
			"  - {name: app-feat, labels: {app: app, swimlane: %s}, address: %q}\n", mainAddr, featLane, featAddr)
	}
	file := filepath.Join(t.TempDir(), "mesh.yaml")
	os.WriteFile(file, []byte(mesh("feat")), 0o644)

	cp := start(t, "control", "-f", file, "--listen", "127.0.0.1:0")
	cpAddr := cp.waitFor(`control plane listening" addr=(\S+)`, 30*time.Second)[1]
	px := start(t, "proxy", "--control", cpAddr, "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--node", "test-sidecar")
	outAddr := px.waitFor(`proxy listening" role=outbound addr=(\S+)`, 30*time.Second)[1]

	call := func(lane string) string {
		req, _ := http.NewRequest("GET", "http://127.0.0.1:1/", nil) // overwritten: the proxy routes by Host
		req.URL.Host = outAddr
		req.Host = "app:80"
		if lane != "" {
			req.Header.Set("x-swimlane", lane)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return b.String()
	}
	eventually(t, 10*time.Second, "the proxy to route lane feat", func() bool { return call("feat") == "app-feat lane=feat" })
	if got := call(""); got != "app-main lane=" {
		t.Errorf("no lane: got %q", got)
	}
	if got := call("other"); got != "app-main lane=other" {
		t.Errorf("unknown lane: got %q, want main with the lane kept", got)
	}

	// The control plane goes away: the proxy keeps its last snapshot.
	cp.stop()
	px.waitFor(`control plane stream ended; keeping the last snapshot`, 10*time.Second)
	if got := call("feat"); got != "app-feat lane=feat" {
		t.Errorf("without control plane: got %q", got)
	}

	// It comes back on the same address with a config where the feature lane is renamed.
	os.WriteFile(file, []byte(mesh("feat2")), 0o644)
	start(t, "control", "-f", file, "--listen", cpAddr)
	eventually(t, 15*time.Second, "the proxy to reconnect and apply the new config", func() bool {
		return call("feat2") == "app-feat lane=feat2"
	})
	if got := call("feat"); got != "app-main lane=feat" {
		t.Errorf("old lane after the new config: got %q, want fallback to main", got)
	}
}

package compile

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/config"
	"swimlane.dev/swimlane/internal/registry"
	"swimlane.dev/swimlane/internal/snapshot"
)

// Size of the large-mesh fixture: every service has endpoints in 3 lanes (main and two feature
// lanes out of 100 shared ones), and every tenth service has a VirtualService and a
// DestinationRule (subsets by lane, a header+regex match and a weighted default route).
const (
	benchServices     = 10_000
	benchEndpointsPer = 10 // 4 main, 3 in each feature lane: 100,000 endpoints in all
	benchRoutedEvery  = 10 // a VirtualService + DestinationRule for 10% of services
)

// largeMesh is the parsed config and the registry's workloads of the fixture, plus one compiled
// (unprepared) snapshot and its encoding for the later stages. Built once per process.
type largeMesh struct {
	set       *config.Set
	workloads []registry.Workload
	snap      *snapshot.Snapshot
	body      []byte
}

var (
	largeMeshOnce sync.Once
	largeMeshVal  *largeMesh
	largeMeshErr  error
)

func benchLanes(i int) [3]string {
	return [3]string{"main", fmt.Sprintf("feature-%d", i%50), fmt.Sprintf("feature-%d", 50+i%50)}
}

func largeMeshYAML(services int) string {
	var b strings.Builder
	b.Grow(services * 200)
	b.WriteString("apiVersion: swimlane.dev/v1alpha1\nkind: Mesh\nmetadata: {name: bench}\nspec:\n  services:\n")
	for i := 0; i < services; i++ {
		fmt.Fprintf(&b, "  - {name: svc-%d, port: 80, selector: {app: svc-%d}}\n", i, i)
	}
	for i := 0; i < services; i += benchRoutedEvery {
		lanes := benchLanes(i)
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc-%[1]d}
spec:
  host: svc-%[1]d
  subsets:
  - {name: stable, labels: {swimlane: main}}
  - {name: canary, labels: {swimlane: %[2]s}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc-%[1]d}
spec:
  hosts: [svc-%[1]d]
  http:
  - name: canary-users
    match:
    - uri: {prefix: /api}
      headers:
        baggage: {regex: ".*canary=yes.*"}
    route:
    - destination: {host: svc-%[1]d, subset: canary}
  - name: default
    route:
    - destination: {host: svc-%[1]d, subset: stable}
      weight: 90
    - destination: {host: svc-%[1]d, subset: canary}
      weight: 10
`, i, lanes[1])
	}
	return b.String()
}

func largeMeshWorkloads(services int) []registry.Workload {
	ws := make([]registry.Workload, 0, services*benchEndpointsPer)
	for i := 0; i < services; i++ {
		lanes := benchLanes(i)
		for j := 0; j < benchEndpointsPer; j++ {
			l := lanes[0]
			if j >= 4 {
				l = lanes[1+(j-4)%2]
			}
			n := i*benchEndpointsPer + j
			ws = append(ws, registry.Workload{
				Name:     fmt.Sprintf("svc-%d-%s-%d", i, l, j),
				Address:  fmt.Sprintf("10.%d.%d.%d:8080", n>>16&0xff, n>>8&0xff, n&0xff),
				Protocol: snapshot.HTTP,
				Labels:   map[string]string{"app": fmt.Sprintf("svc-%d", i), "swimlane": l},
			})
		}
	}
	return ws
}

func loadLargeMesh(b *testing.B) *largeMesh {
	b.Helper()
	largeMeshOnce.Do(func() {
		set, err := config.Parse("bench.yaml", []byte(largeMeshYAML(benchServices)))
		if err != nil {
			largeMeshErr = err
			return
		}
		m := &largeMesh{set: set, workloads: largeMeshWorkloads(benchServices)}
		res, err := Compile(m.set, m.workloads, time.Now())
		if err != nil {
			largeMeshErr = err
			return
		}
		if len(res.Snapshot.Services) != benchServices {
			largeMeshErr = fmt.Errorf("compiled %d services, want %d", len(res.Snapshot.Services), benchServices)
			return
		}
		m.snap = res.Snapshot
		if m.body, err = json.Marshal(m.snap); err != nil {
			largeMeshErr = err
			return
		}
		largeMeshVal = m
	})
	if largeMeshErr != nil {
		b.Fatal(largeMeshErr)
	}
	return largeMeshVal
}

// BenchmarkCompile10kServices measures what one config or registry change costs for a mesh of
// 10,000 services and 100,000 endpoints, stage by stage:
//
//   - compile: Compile (the control plane, per change)
//   - prepare: Snapshot.Prepare (the control plane, per change, for its own copy)
//   - encode: json.Marshal of the snapshot (the control plane, once per change)
//   - decode+prepare: snapshot.Decode (every proxy, per change it receives)
//
// Target: compile under 1 s.
func BenchmarkCompile10kServices(b *testing.B) {
	m := loadLargeMesh(b)
	sizeMB := float64(len(m.body)) / 1e6

	b.Run("compile", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res, err := Compile(m.set, m.workloads, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Snapshot.Services) != benchServices {
				b.Fatalf("%d services", len(res.Snapshot.Services))
			}
		}
	})
	b.Run("prepare", func(b *testing.B) {
		// Prepare rebuilds every index from scratch, so preparing the same snapshot again costs
		// what preparing a fresh one does.
		b.ReportAllocs()
		for b.Loop() {
			if err := m.snap.Prepare(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		var body []byte
		for b.Loop() {
			var err error
			if body, err = json.Marshal(m.snap); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(body))/1e6, "MB")
	})
	b.Run("decode+prepare", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(m.body)))
		for b.Loop() {
			s, err := snapshot.Decode(m.body)
			if err != nil {
				b.Fatal(err)
			}
			if len(s.Services) != benchServices {
				b.Fatalf("%d services", len(s.Services))
			}
		}
		b.ReportMetric(sizeMB, "MB")
	})
}

// BenchmarkCompileScaling compiles the same shape of mesh (10 endpoints and 3 lanes a service,
// routes for 10%) at growing sizes, to show how compile time grows with the mesh: linear
// growth doubles the time per doubling of services, quadratic growth quadruples it.
func BenchmarkCompileScaling(b *testing.B) {
	for _, n := range []int{250, 500, 1000, 2000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			set, err := config.Parse("bench.yaml", []byte(largeMeshYAML(n)))
			if err != nil {
				b.Fatal(err)
			}
			ws := largeMeshWorkloads(n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(set, ws, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/service")
		})
	}
}

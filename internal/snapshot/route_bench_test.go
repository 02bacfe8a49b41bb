package snapshot

import (
	"fmt"
	"net/http"
	"testing"

	"swimlane.dev/swimlane/internal/lane"
)

// BenchmarkRouteHTTP measures one routing decision (lane parse, service lookup, lane
// resolution, endpoint pick) as the number of lanes grows: the cost must not grow with it.
func BenchmarkRouteHTTP(b *testing.B) {
	for _, lanes := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("lanes=%d", lanes), func(b *testing.B) {
			snap := &Snapshot{Mesh: Mesh{LaneHeader: "x-swimlane", BaggageKey: "swimlane", LaneLabel: "swimlane", Baseline: "main", Namespace: "default"}}
			for s := 0; s < 100; s++ {
				svc := &Service{Name: fmt.Sprintf("svc-%d", s), Port: 80}
				for l := 0; l < lanes; l++ {
					name := "main"
					if l > 0 {
						name = fmt.Sprintf("lane-%d", l)
					}
					svc.Endpoints = append(svc.Endpoints, Endpoint{Address: "127.0.0.1:1", Protocol: HTTP, Workload: svc.Name + "-" + name, Labels: map[string]string{"swimlane": name}})
				}
				snap.Services = append(snap.Services, svc)
			}
			if err := snap.Prepare(); err != nil {
				b.Fatal(err)
			}
			req, _ := http.NewRequest("GET", "http://svc-42:80/", nil)
			asked := lane.Lane(fmt.Sprintf("lane-%d", lanes/2))
			if lanes == 1 {
				asked = "main"
			}
			req.Header.Set("x-swimlane", string(asked))
			names := snap.Mesh.LaneNames()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l, _ := names.FromHeaders(req.Header)
				svc := snap.Service(req.Host)
				d := snap.RouteHTTP(svc, req, l, nil)
				if d.Endpoint == nil || d.Served != asked {
					b.Fatalf("routed to %v", d.Served)
				}
			}
		})
	}
}

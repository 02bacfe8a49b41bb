package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// propagationForm is a front service that forwards only some headers to back.
type propagationForm struct {
	name    string // gateway, service and workload suffix
	forward string // echo --forward
}

// propagationMesh builds a mesh with one gateway and one front service per form, each calling
// back (deployed in main and feat) and forwarding only the form's headers.
func propagationMesh(forms []propagationForm) string {
	var gateways, services, workloads []string
	for _, f := range forms {
		svc := "front-" + f.name
		gateways = append(gateways, "gw-"+f.name+"="+svc)
		services = append(services, svc)
		workloads = append(workloads, echoWorkload(svc, svc, "main", "--upstream", "http://back:80/", "--forward", f.forward))
	}
	services = append(services, "back")
	workloads = append(workloads, echoWorkload("back-main", "back", "main"), echoWorkload("back-feat", "back", "feat"))
	return lanesMeshYAML(gateways, services, workloads)
}

// newTraceparent returns a W3C traceparent with a random trace id.
func newTraceparent() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	b[0] |= 1 // never all zero
	return "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + "-01"
}

// TestPropagationFormats sends lane feat into a chain front -> back whose front forwards only
// one form of the lane: back must be served in feat whichever form it is.
func TestPropagationFormats(t *testing.T) {
	forms := []struct {
		propagationForm
		client laneHdrs // what the client sends besides x-swimlane: feat
	}{
		{propagationForm: propagationForm{"xs", "x-swimlane"}},
		{propagationForm: propagationForm{"bag", "baggage"}, client: laneHdrs{"baggage", "user=42"}},
		// The sidecar adds the lane to an existing tracestate only, so the client starts a trace.
		{propagationForm: propagationForm{"ts", "tracestate"}, client: laneHdrs{"tracestate", "congo=t61rcWkgMzE"}},
		{propagationForm: propagationForm{"tstp", "tracestate,traceparent"}, client: laneHdrs{"tracestate", "congo=t61rcWkgMzE"}},
		{propagationForm: propagationForm{"uber", "uberctx-swimlane"}},
		{propagationForm: propagationForm{"ot", "ot-baggage-swimlane"}},
		// Control: nothing forwarded, the lane is lost.
		{propagationForm: propagationForm{"none", ""}},
	}
	var pf []propagationForm
	for _, f := range forms {
		pf = append(pf, f.propagationForm)
	}
	m := startLanesMesh(t, propagationMesh(pf))
	c := lanesClient()
	defer c.CloseIdleConnections()

	for _, f := range forms {
		t.Run(f.name+" ("+f.forward+")", func(t *testing.T) {
			url := m.gateway(t, "gw-"+f.name) + "/"
			want := "feat"
			if f.forward == "" {
				want = "main"
			}
			for i := 0; i < 30; i++ {
				headers := append(laneHdrs{"x-swimlane", "feat", "traceparent", newTraceparent()}, f.client...)
				r := mustLaneGet(t, c, url, headers)
				if got := backLane(&r.answer); got != want {
					t.Fatalf("request %d: back served in %q, want %q (front sent %v)", i, got, want, r.answer.Headers)
				}
				// What front forwarded is all back's sidecar saw: check it held only that form.
				up := r.answer.Upstream.Headers
				if f.name == "bag" && !strings.Contains(up["baggage"], "user=42") {
					t.Fatalf("baggage lost its other members on the way: %q", up["baggage"])
				}
				if f.name == "ts" || f.name == "tstp" {
					if !strings.Contains(up["tracestate"], "congo=t61rcWkgMzE") {
						t.Fatalf("tracestate lost its other members on the way: %q", up["tracestate"])
					}
				}
			}
			// The lane came from the forwarded form, not from the sidecar's trace memory.
			hits, ok := m.metric(t, "swimlane_trace_lane_hits_total", `proxy="sidecar~front-`+f.name+`"`)
			if !ok {
				t.Fatalf("no swimlane_trace_lane_hits_total for sidecar~front-%s", f.name)
			}
			if hits != 0 {
				t.Errorf("front-%s's sidecar restored %v lanes from trace ids; the lane should have come from %s", f.name, hits, f.forward)
			}
		})
	}
}

// TestTraceIDRestoration: front forwards only trace context, never the lane. Its sidecar
// remembers each inbound trace's lane and restores it on the outbound call, so back stays in
// the lane; with nothing forwarded (control) the lane is lost.
func TestTraceIDRestoration(t *testing.T) {
	m := startLanesMesh(t, propagationMesh([]propagationForm{
		{"tp", "traceparent"},
		{"b3", "b3"},
		{"rid", "x-request-id"},
		{"none", ""},
	}))

	share := func(t *testing.T, gateway string, n int, traceHeaders func(i int) laneHdrs) float64 {
		url := m.gateway(t, gateway) + "/"
		stayed := make([]bool, n)
		laneMany(t, n, func(c *http.Client, i int) error {
			r, err := laneGet(c, url, append(laneHdrs{"x-swimlane", "feat"}, traceHeaders(i)...))
			if err != nil {
				return err
			}
			if r.status != http.StatusOK {
				return fmt.Errorf("status %d: %s", r.status, r.body)
			}
			switch got := backLane(&r.answer); got {
			case "feat":
				stayed[i] = true
			case "main":
			default:
				return fmt.Errorf("back: %s", got)
			}
			return nil
		})
		k := 0
		for _, s := range stayed {
			if s {
				k++
			}
		}
		return float64(k) / float64(n)
	}

	const n = 500
	t.Run("traceparent only", func(t *testing.T) {
		before, _ := m.metric(t, "swimlane_trace_lane_hits_total", `proxy="sidecar~front-tp"`)
		s := share(t, "gw-tp", n, func(int) laneHdrs { return laneHdrs{"traceparent", newTraceparent()} })
		t.Logf("trace-only app (forwards traceparent): %.1f%% of %d requests stayed in lane feat at the second hop", 100*s, n)
		if s < 0.99 {
			t.Errorf("only %.1f%% of requests stayed in the lane, want >= 99%%", 100*s)
		}
		hits, ok := m.metric(t, "swimlane_trace_lane_hits_total", `proxy="sidecar~front-tp"`)
		t.Logf("sidecar~front-tp: swimlane_trace_lane_hits_total %v", hits)
		if !ok || hits <= 0 || hits-before < s*n {
			t.Errorf("swimlane_trace_lane_hits_total for sidecar~front-tp = %v (found %v), want >= %v", hits, ok, before+s*n)
		}
	})
	t.Run("b3 only", func(t *testing.T) {
		s := share(t, "gw-b3", 100, func(int) laneHdrs {
			tp := newTraceparent()
			return laneHdrs{"b3", tp[3:35] + "-" + tp[36:52] + "-1"}
		})
		t.Logf("trace-only app (forwards b3): %.1f%% stayed in lane feat", 100*s)
		if s < 0.99 {
			t.Errorf("only %.1f%% of requests stayed in the lane, want >= 99%%", 100*s)
		}
	})
	t.Run("x-request-id only", func(t *testing.T) {
		s := share(t, "gw-rid", 100, func(i int) laneHdrs { return laneHdrs{"x-request-id", newTraceparent()[3:35]} })
		t.Logf("trace-only app (forwards x-request-id): %.1f%% stayed in lane feat", 100*s)
		if s < 0.99 {
			t.Errorf("only %.1f%% of requests stayed in the lane, want >= 99%%", 100*s)
		}
	})
	t.Run("control: nothing forwarded", func(t *testing.T) {
		s := share(t, "gw-none", 200, func(int) laneHdrs { return laneHdrs{"traceparent", newTraceparent()} })
		t.Logf("app forwarding nothing: %.1f%% stayed in lane feat", 100*s)
		if s > 0.01 {
			t.Errorf("%.1f%% of requests stayed in the lane with nothing forwarded, want ~0", 100*s)
		}
	})
}

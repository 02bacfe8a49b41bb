package laneentry

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/lane"
	"swimlane.dev/swimlane/internal/snapshot"
)

// TestOverTheWire applies a policy in the handler of a real http.Server, the way a gateway
// does, to show that cookies and query parameters as sent by a real client are read, and
// that what the upstream would see has exactly one lane, the decided one.
func TestOverTheWire(t *testing.T) {
	pol := Prepare(&snapshot.LaneEntry{
		Gateway:  "public",
		Incoming: snapshot.IncomingStrip,
		Rules: []snapshot.EntryRule{
			{Name: "preview", LaneFrom: &snapshot.ValueFrom{Query: "lane"}},
			{Name: "staff", Lane: "staff", Users: &snapshot.EntryUsers{From: snapshot.ValueFrom{Cookie: "uid"}, IDs: []string{"alice"}}},
			{Name: "split", Buckets: &snapshot.EntryBucket{From: snapshot.ValueFrom{Cookie: "uid"}, Lanes: []lane.Lane{"even", "odd"}, Numeric: true}},
		},
	})
	type seen struct {
		Decision Decision
		Lane     []string // X-Swimlane as forwarded upstream
		Baggage  []string
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d := pol.Apply(names, r)
			names.Write(r.Header, d.Lane)
			_ = json.NewEncoder(w).Encode(seen{Decision: d, Lane: r.Header.Values("X-Swimlane"), Baggage: r.Header.Values("Baggage")})
		}),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	base := "http://" + lis.Addr().String()

	tests := []struct {
		name    string
		path    string
		cookies []*http.Cookie
		header  http.Header
		want    seen
	}{
		{
			name:   "query lane, smuggled lanes stripped",
			path:   "/shop?q=shoes&lane=dev-feature1",
			header: http.Header{"X-Swimlane": {"evil"}, "Baggage": {"swimlane=evil,user=7"}},
			want: seen{
				Decision: Decision{Lane: "dev-feature1", Incoming: "evil", Stripped: true, Rule: "preview"},
				Lane:     []string{"dev-feature1"},
				Baggage:  []string{"user=7,swimlane=dev-feature1"},
			},
		},
		{
			name:    "user cookie",
			path:    "/shop",
			cookies: []*http.Cookie{{Name: "session", Value: "xyz"}, {Name: "uid", Value: "alice"}},
			want: seen{
				Decision: Decision{Lane: "staff", Rule: "staff"},
				Lane:     []string{"staff"},
				Baggage:  []string{"swimlane=staff"},
			},
		},
		{
			name:    "numeric bucket from cookie",
			path:    "/shop?lane=not%20a%20lane",
			cookies: []*http.Cookie{{Name: "uid", Value: "1337"}},
			want: seen{
				Decision: Decision{Lane: "odd", Rule: "split"},
				Lane:     []string{"odd"},
				Baggage:  []string{"swimlane=odd"},
			},
		},
		{
			name:   "no rule matches: no lane upstream",
			path:   "/shop",
			header: http.Header{"Baggage": {"swimlane=evil"}},
			want:   seen{Decision: Decision{Incoming: "evil", Stripped: true}},
		},
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, base+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header[k] = v
			}
			for _, c := range tt.cookies {
				req.AddCookie(c)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got seen
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if got.Decision != tt.want.Decision {
				t.Errorf("decision = %+v, want %+v", got.Decision, tt.want.Decision)
			}
			if !slices.Equal(got.Lane, tt.want.Lane) || !slices.Equal(got.Baggage, tt.want.Baggage) {
				t.Errorf("upstream headers: x-swimlane %q baggage %q, want %q %q", got.Lane, got.Baggage, tt.want.Lane, tt.want.Baggage)
			}
		})
	}
}

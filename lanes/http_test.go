package lanes_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"swimlane.dev/swimlane/lanes"
)

// seen is what the servers of the HTTP chain report back to the test.
type seen struct {
	ALane     string      // lane server A found in its request context ("" for none)
	AMutated  bool        // whether A's outgoing request was changed by RoundTrip
	BLane     []string    // x-swimlane values server B received
	BBaggage  []string    // baggage values server B received
	AOutgoing http.Header // A's outgoing request headers after the call
}

// startChain starts server B, which reports the lane headers it receives, and server A, which
// (behind Middleware) calls B through lanes.Transport with the extra headers given in the
// request's "X-Out-*" headers ("X-Out-Baggage: a=1" becomes "Baggage: a=1" on A's call).
func startChain(t *testing.T) (aURL string) {
	t.Helper()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(seen{BLane: r.Header.Values("X-Swimlane"), BBaggage: r.Header.Values("Baggage")})
	}))
	t.Cleanup(b.Close)

	client := &http.Client{Transport: lanes.Transport(nil)}
	t.Cleanup(client.CloseIdleConnections)
	a := httptest.NewServer(lanes.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, err := http.NewRequestWithContext(r.Context(), http.MethodGet, b.URL, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for k, vs := range r.Header {
			if name, ok := strings.CutPrefix(k, "X-Out-"); ok {
				out.Header[name] = vs
			}
		}
		before := out.Header.Clone()
		resp, err := client.Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var s seen
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		s.ALane, _ = lanes.FromContext(r.Context())
		s.AMutated = !reflect.DeepEqual(before, out.Header)
		s.AOutgoing = out.Header
		json.NewEncoder(w).Encode(s)
	})))
	t.Cleanup(a.Close)
	return a.URL
}

func TestHTTPChain(t *testing.T) {
	aURL := startChain(t)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	long := strings.Repeat("a", 64)

	tests := []struct {
		name        string
		in          http.Header // the request to server A (as the sidecar delivers it)
		out         http.Header // headers A's own code sets on its call to B
		wantALane   string
		wantBLane   []string
		wantBaggage []string
	}{
		{
			name:        "header only",
			in:          http.Header{"X-Swimlane": {"dev-feature1"}},
			wantALane:   "dev-feature1",
			wantBLane:   []string{"dev-feature1"},
			wantBaggage: []string{"swimlane=dev-feature1"},
		},
		{
			name:        "both forms, app baggage kept and stale lane member replaced",
			in:          http.Header{"X-Swimlane": {"dev-feature1"}, "Baggage": {"swimlane=dev-feature1,user=7"}},
			out:         http.Header{"Baggage": {"app=a, swimlane=old;p=1", "tenant=t1"}},
			wantALane:   "dev-feature1",
			wantBLane:   []string{"dev-feature1"},
			wantBaggage: []string{"app=a,swimlane=dev-feature1,tenant=t1"},
		},
		{
			name:        "baggage only at A",
			in:          http.Header{"Baggage": {"k=v, swimlane=dev-b"}},
			out:         http.Header{"Baggage": {"app=a"}},
			wantALane:   "dev-b",
			wantBLane:   []string{"dev-b"},
			wantBaggage: []string{"app=a,swimlane=dev-b"},
		},
		{
			name:        "header wins over baggage",
			in:          http.Header{"X-Swimlane": {"dev-h"}, "Baggage": {"swimlane=dev-b"}},
			wantALane:   "dev-h",
			wantBLane:   []string{"dev-h"},
			wantBaggage: []string{"swimlane=dev-h"},
		},
		{
			name:        "invalid header falls back to baggage",
			in:          http.Header{"X-Swimlane": {"a b"}, "Baggage": {"swimlane=dev-b"}},
			wantALane:   "dev-b",
			wantBLane:   []string{"dev-b"},
			wantBaggage: []string{"swimlane=dev-b"},
		},
		{
			name: "other carriers are not read",
			in:   http.Header{"Uberctx-Swimlane": {"dev-j"}, "Tracestate": {"swimlane=dev-t"}},
		},
		{
			name: "invalid lane with a space",
			in:   http.Header{"X-Swimlane": {"a b"}},
		},
		{
			name: "invalid lane of 64 characters",
			in:   http.Header{"X-Swimlane": {long}, "Baggage": {"swimlane=" + long}},
			out:  http.Header{"Baggage": {"app=a"}},
			// nothing added; the app's own baggage passes untouched
			wantBaggage: []string{"app=a"},
		},
		{
			name:        "no lane",
			out:         http.Header{"Baggage": {"app=a"}},
			wantBaggage: []string{"app=a"},
		},
		{
			name:        "explicit x-swimlane from the app is kept",
			in:          http.Header{"X-Swimlane": {"dev-feature1"}},
			out:         http.Header{"X-Swimlane": {"dev-explicit"}, "Baggage": {"app=a"}},
			wantALane:   "dev-feature1",
			wantBLane:   []string{"dev-explicit"},
			wantBaggage: []string{"app=a"},
		},
		{
			name:        "malformed app baggage left as is, header still set",
			in:          http.Header{"X-Swimlane": {"dev-feature1"}},
			out:         http.Header{"Baggage": {"not baggage"}},
			wantALane:   "dev-feature1",
			wantBLane:   []string{"dev-feature1"},
			wantBaggage: []string{"not baggage"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, aURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, vs := range tt.in {
				req.Header[k] = vs
			}
			for k, vs := range tt.out {
				req.Header["X-Out-"+k] = vs
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				body, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var got seen
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if got.ALane != tt.wantALane {
				t.Errorf("lane at A = %q, want %q", got.ALane, tt.wantALane)
			}
			if !reflect.DeepEqual(got.BLane, tt.wantBLane) {
				t.Errorf("x-swimlane at B = %q, want %q", got.BLane, tt.wantBLane)
			}
			if !reflect.DeepEqual(got.BBaggage, tt.wantBaggage) {
				t.Errorf("baggage at B = %q, want %q", got.BBaggage, tt.wantBaggage)
			}
			if got.AMutated {
				t.Errorf("RoundTrip modified A's outgoing request: headers now %v", got.AOutgoing)
			}
		})
	}
}

// recordingTransport is a real RoundTripper chain end: it records the request it is given and
// passes it on to http.DefaultTransport.
type recordingTransport struct{ got *http.Request }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.got = req
	return http.DefaultTransport.RoundTrip(req)
}

func TestTransportDoesNotMutateRequest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Swimlane")+"|"+r.Header.Get("Baggage"))
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(http.DefaultTransport.(*http.Transport).CloseIdleConnections)

	rec := &recordingTransport{}
	rt := lanes.Transport(rec)
	ctx := lanes.NewContext(t.Context(), "dev-x")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Baggage", "app=a")
	before := req.Header.Clone()

	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	if got, want := string(body), "dev-x|app=a,swimlane=dev-x"; got != want {
		t.Errorf("server saw %q, want %q", got, want)
	}
	if !reflect.DeepEqual(req.Header, before) {
		t.Errorf("caller's headers changed to %v, want %v", req.Header, before)
	}
	if rec.got == req {
		t.Error("the caller's *http.Request itself was sent on, want a clone")
	}
}

func TestTransportWithoutLanePassesRequestThrough(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	t.Cleanup(http.DefaultTransport.(*http.Transport).CloseIdleConnections)

	rec := &recordingTransport{}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := lanes.Transport(rec).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if rec.got != req {
		t.Error("a request without a lane was cloned, want it passed through unchanged")
	}
}

func TestContext(t *testing.T) {
	tests := []struct {
		name   string
		lane   string
		want   string
		wantOK bool
	}{
		{name: "valid", lane: "dev-feature1", want: "dev-feature1", wantOK: true},
		{name: "all allowed characters", lane: "A.z_0-9", want: "A.z_0-9", wantOK: true},
		{name: "63 characters", lane: strings.Repeat("x", 63), want: strings.Repeat("x", 63), wantOK: true},
		{name: "64 characters", lane: strings.Repeat("x", 64)},
		{name: "space", lane: "a b"},
		{name: "comma", lane: "a,b"},
		{name: "empty", lane: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			got, ok := lanes.FromContext(lanes.NewContext(ctx, tt.lane))
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("FromContext(NewContext(%q)) = %q, %v; want %q, %v", tt.lane, got, ok, tt.want, tt.wantOK)
			}
			if !tt.wantOK && lanes.NewContext(ctx, tt.lane) != ctx {
				t.Errorf("NewContext(%q) changed ctx, want it unchanged", tt.lane)
			}
		})
	}
}

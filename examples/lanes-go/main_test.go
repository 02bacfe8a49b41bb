package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"swimlane.dev/swimlane/lanes"
)

// TestChain runs two copies of the service, A calling B, on real HTTP servers, and checks that
// the lane of the request to A reaches B.
func TestChain(t *testing.T) {
	b := httptest.NewServer(NewHandler(http.DefaultClient, ""))
	t.Cleanup(b.Close)
	client := &http.Client{Transport: lanes.Transport(nil)}
	t.Cleanup(client.CloseIdleConnections)
	a := httptest.NewServer(NewHandler(client, b.URL))
	t.Cleanup(a.Close)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)

	tests := []struct {
		name   string
		header http.Header
		want   string
	}{
		{name: "x-swimlane", header: http.Header{"X-Swimlane": {"dev-feature1"}}, want: "lane=dev-feature1 upstream=lane=dev-feature1 upstream=\n"},
		{name: "baggage", header: http.Header{"Baggage": {"user=1,swimlane=dev-b"}}, want: "lane=dev-b upstream=lane=dev-b upstream=\n"},
		{name: "no lane", want: "lane= upstream=lane= upstream=\n"},
		{name: "invalid lane", header: http.Header{"X-Swimlane": {"a b"}}, want: "lane= upstream=lane= upstream=\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, a.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tt.header.Clone()
			if req.Header == nil {
				req.Header = http.Header{}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || string(body) != tt.want {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, tt.want)
			}
		})
	}
}

func TestUpstreamDown(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	url := down.URL
	down.Close() // nothing listens there any more

	a := httptest.NewServer(NewHandler(&http.Client{Transport: lanes.Transport(nil)}, url))
	t.Cleanup(a.Close)
	resp, err := http.Get(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want %d", resp.StatusCode, http.StatusBadGateway)
	}
}

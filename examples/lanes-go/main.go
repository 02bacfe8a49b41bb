// Command lanes-go is a tiny HTTP service that keeps the Swimlane lane of each request on the
// call it makes while serving it, using package swimlane.dev/swimlane/lanes.
//
// On GET / it calls the URL in $UPSTREAM (if set) and answers
//
//	lane=<lane of this request> upstream=<upstream's answer>
//
// It listens on 127.0.0.1:$PORT (default 8080). Two copies chained (A's UPSTREAM is B's
// address) show the lane reaching B although A's code never touches it.
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"swimlane.dev/swimlane/lanes"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	client := &http.Client{Transport: lanes.Transport(nil), Timeout: 10 * time.Second}
	srv := &http.Server{
		Addr:              net.JoinHostPort("127.0.0.1", port),
		Handler:           NewHandler(client, os.Getenv("UPSTREAM")),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Printf("lanes-go listening on http://%s (upstream %q)", srv.Addr, os.Getenv("UPSTREAM"))
	log.Fatal(srv.ListenAndServe())
}

// NewHandler returns the service's handler: GET / answers with the request's lane and, if
// upstream is set, the answer of upstream, fetched with client. client should be built on
// lanes.Transport so that the call stays in the request's lane.
func NewHandler(client *http.Client, upstream string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		answer := ""
		if upstream != "" {
			var err error
			if answer, err = get(r, client, upstream); err != nil {
				http.Error(w, "upstream: "+err.Error(), http.StatusBadGateway)
				return
			}
		}
		lane, _ := lanes.FromContext(r.Context())
		fmt.Fprintf(w, "lane=%s upstream=%s\n", lane, answer)
	})
	return lanes.Middleware(mux)
}

// get fetches url with the context of the incoming request r, which carries its lane.
func get(r *http.Request, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return strings.TrimSpace(string(body)), nil
}

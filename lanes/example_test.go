package lanes_test

import (
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"swimlane.dev/swimlane/lanes"
)

// An app keeps the lane of each request it serves on the calls it makes while serving it. The
// outgoing calls must use the incoming request's context.
func Example() {
	client := &http.Client{Transport: lanes.Transport(nil)} // client: send the lane on

	var handler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://inventory/items", nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := client.Do(req) // carries x-swimlane and baggage swimlane=<lane>
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
	})
	handler = lanes.Middleware(handler) // server: remember the request's lane

	srv := &http.Server{Addr: ":8080", Handler: handler}
	_ = srv // srv.ListenAndServe()
}

// The same for gRPC: server interceptors remember the lane of each call, client interceptors
// send it on.
func Example_grpc() {
	server := grpc.NewServer(
		grpc.ChainUnaryInterceptor(lanes.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(lanes.StreamServerInterceptor()))
	defer server.Stop()

	conn, err := grpc.NewClient("inventory:443",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(lanes.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(lanes.StreamClientInterceptor()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
}

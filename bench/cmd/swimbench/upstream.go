package main

import (
	"bytes"
	"flag"
	"io"
	"log"
	"net/http"
	"time"
)

// payloadSize is the response body of every HTTP request and the message size of the gRPC
// and TCP runs.
const payloadSize = 1024

// runUpstream is `swimbench upstream`: the same tiny HTTP server behind every target, serving
// HTTP/1.1 and h2c (prior knowledge) on one port and answering 1 KiB to any request.
func runUpstream(args []string) {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:18000", "listen address")
	_ = fs.Parse(args)
	body := bytes.Repeat([]byte("x"), payloadSize)
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Addr:              *listen,
		Protocols:         &p,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			h := w.Header()
			h["Content-Type"] = []string{"application/octet-stream"}
			h["Content-Length"] = []string{"1024"}
			_, _ = w.Write(body)
		}),
	}
	log.Fatal(srv.ListenAndServe())
}

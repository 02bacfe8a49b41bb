// Command goproxy is the floor of the benchmark: Go's httputil.ReverseProxy in a few lines,
// forwarding every request to one upstream over a keep-alive pool as large as the load's
// connection count. With -h2c it speaks h2c on both sides (for the h2c and gRPC runs).
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18080", "listen address")
	upstream := flag.String("upstream", "http://127.0.0.1:18000", "upstream URL")
	h2c := flag.Bool("h2c", false, "serve and forward h2c (prior knowledge) instead of HTTP/1.1")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil {
		log.Fatal(err)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 1024, 1024
	var p http.Protocols
	if *h2c {
		t.Protocols = new(http.Protocols)
		t.Protocols.SetUnencryptedHTTP2(true)
		p.SetUnencryptedHTTP2(true)
	}
	p.SetHTTP1(true)
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u); r.Out.Host = r.In.Host }, Transport: t}
	srv := &http.Server{Addr: *listen, Handler: rp, Protocols: &p}
	log.Fatal(srv.ListenAndServe())
}

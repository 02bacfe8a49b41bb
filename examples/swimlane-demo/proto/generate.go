// Package demopb holds the seed demo's gRPC API (service.proto, copied unchanged from the seed)
// and the code generated from it. Regenerate with `go generate` (needs protoc, protoc-gen-go and
// protoc-gen-go-grpc); the generated files are committed so building needs neither.
package demopb

//go:generate protoc -I . --go_out=. --go_opt=paths=source_relative --go_opt=Mservice.proto=swimlane.dev/swimlane/examples/swimlane-demo/proto;demopb --go-grpc_out=. --go-grpc_opt=paths=source_relative --go-grpc_opt=Mservice.proto=swimlane.dev/swimlane/examples/swimlane-demo/proto;demopb service.proto

// Package controlapi is the generated gRPC code of the control plane's snapshot-streaming API
// (api/control/v1/control.proto). Regenerate with `go generate` from this folder.
package controlapi

//go:generate protoc -I ../../api/control/v1 --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative control.proto

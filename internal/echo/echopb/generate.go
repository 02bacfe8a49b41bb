// Package echopb is the generated gRPC code of `swimlane echo --protocol grpc`
// (api/echo/v1/echo.proto). Regenerate with `go generate` from this folder.
package echopb

//go:generate protoc -I ../../../api/echo/v1 --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative echo.proto

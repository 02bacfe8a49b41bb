package compile

import (
	"testing"
	"time"

	"swimlane.dev/swimlane/internal/config"
)

// TestPortLevelSettings checks a port-level setting for the service's port replaces the
// policy's own, and one for another port applies to nothing.
func TestPortLevelSettings(t *testing.T) {
	set, err := config.Parse("test.yaml", []byte(demoServices+`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: goods}
spec:
  host: goods-service
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool: {http: {http2MaxRequests: 10}}
    portLevelSettings:
    - port: {number: 50051}
      loadBalancer: {simple: LEAST_REQUEST}
    - port: {number: 9999}
      connectionPool: {http: {http2MaxRequests: 1}}
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Compile(set, demoWorkloads, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res.Snapshot.Prepare()
	p := res.Snapshot.Service("goods-service").Policy
	if p == nil || p.LB != "LEAST_REQUEST" || p.MaxRequests != 10 {
		t.Errorf("policy = %+v, want LEAST_REQUEST from the port level and the service's limit of 10", p)
	}
	if len(res.Warnings) == 0 {
		t.Error("no warning for the setting on a port the service does not have")
	}
}

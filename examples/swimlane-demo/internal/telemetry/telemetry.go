// Package telemetry holds the demo services' shared OpenTelemetry and logging setup.
//
// The services need no tracing SDK or exporter: with the global no-op tracer provider the
// otelhttp/otelgrpc instrumentation still extracts the incoming W3C traceparent and baggage and
// injects them into outgoing calls, which is all the mesh needs to keep a request in its lane.
package telemetry

import (
	"log/slog"
	"os"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

var setupOnce sync.Once

// Setup sets the global text map propagator to W3C TraceContext + Baggage. It is idempotent.
func Setup() {
	setupOnce.Do(func() {
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
			propagation.TraceContext{},
			propagation.Baggage{},
		))
	})
}

// Logger returns a text logger on stderr tagged with the service name.
func Logger(service string) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, nil)).With("service", service)
}

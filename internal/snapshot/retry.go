package snapshot

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy is Istio's HTTPRetry, compiled.
type RetryPolicy struct {
	// Attempts is the number of retries after the first try (Istio's meaning).
	Attempts int `json:"attempts"`
	// PerTry bounds each try; zero for none (the route's Timeout still bounds them all).
	PerTry Duration `json:"perTry,omitzero"`
	// Backoff is the base interval between tries, doubled each time with jitter (default 25ms,
	// Envoy's).
	Backoff Duration `json:"backoff,omitzero"`
	// On lists the retry conditions as written: Envoy's names (5xx, gateway-error, reset,
	// connect-failure, refused-stream, retriable-4xx, retriable-status-codes), gRPC status
	// names (cancelled, deadline-exceeded, internal, resource-exhausted, unavailable), and
	// HTTP status codes.
	On []string `json:"on"`

	on retryOn
}

type retryOn struct {
	http5xx, gatewayError, reset, retriable4xx bool
	statuses                                   []int
	grpc                                       []int
}

// DefaultRetryOn is used when a VirtualService sets retries without retryOn. It is Istio's
// default list plus 5xx: seed 002 shows `retries: {attempts: 3}` hiding an app's 500s, which
// Istio did when that demo was written; today's Istio would not retry a 500. An explicit
// retryOn is honoured exactly. See README, "Retries".
const DefaultRetryOn = "5xx,connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"

// IstioDefaultRetry is what a route without a retries field gets, as in Istio: 2 retries on
// connection failures, refused streams, gRPC cancelled/unavailable and HTTP 503.
func IstioDefaultRetry() *RetryPolicy {
	p := &RetryPolicy{Attempts: 2, On: strings.Split("connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", ",")}
	_ = p.prepare()
	return p
}

var grpcCodes = map[string]int{"cancelled": 1, "deadline-exceeded": 4, "resource-exhausted": 8, "internal": 13, "unavailable": 14}

// ParseRetryOn checks a retryOn list and returns its conditions.
func ParseRetryOn(s string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		switch c {
		case "5xx", "gateway-error", "reset", "connect-failure", "refused-stream", "retriable-4xx",
			"retriable-status-codes", "cancelled", "deadline-exceeded", "resource-exhausted", "internal", "unavailable":
		default:
			if n, err := strconv.Atoi(c); err != nil || n < 100 || n > 599 {
				return nil, fmt.Errorf("unknown retry condition %q", c)
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func (p *RetryPolicy) prepare() error {
	p.on = retryOn{}
	for _, c := range p.On {
		switch c {
		case "5xx":
			p.on.http5xx = true
		case "gateway-error":
			p.on.gatewayError = true
		case "reset", "refused-stream":
			p.on.reset = true
		case "retriable-4xx":
			p.on.retriable4xx = true
		case "retriable-status-codes":
			// Istio's default list makes 503 retriable with this condition.
			p.on.statuses = append(p.on.statuses, 503)
		case "connect-failure":
			// always handled: the proxy re-routes refused connections (see proxy.rerouting)
		default:
			if code, ok := grpcCodes[c]; ok {
				p.on.grpc = append(p.on.grpc, code)
			} else if n, err := strconv.Atoi(c); err == nil {
				p.on.statuses = append(p.on.statuses, n)
			} else {
				return fmt.Errorf("unknown retry condition %q", c)
			}
		}
	}
	if p.Backoff.Duration <= 0 {
		p.Backoff.Duration = 25 * time.Millisecond
	}
	return nil
}

// RetryStatus reports whether an answer with HTTP status and gRPC status grpc (-1 for none)
// may be retried under p.
func (p *RetryPolicy) RetryStatus(status, grpc int) bool {
	on := &p.on
	switch {
	case on.http5xx && status >= 500 && status <= 599,
		on.gatewayError && (status == 502 || status == 503 || status == 504),
		on.retriable4xx && status == 409:
		return true
	}
	for _, s := range on.statuses {
		if s == status {
			return true
		}
	}
	for _, g := range on.grpc {
		if g == grpc {
			return true
		}
	}
	return false
}

// RetryReset reports whether a connection reset or a per-try timeout may be retried.
func (p *RetryPolicy) RetryReset(timeout bool) bool {
	if timeout {
		return p.on.http5xx || p.on.gatewayError
	}
	return p.on.reset || p.on.http5xx || p.on.gatewayError
}

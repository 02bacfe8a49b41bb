package lanes

import (
	"net/http"

	"swimlane.dev/swimlane/internal/lane"
)

// Middleware returns a handler that reads the lane of each request (the x-swimlane header,
// else the swimlane member of the baggage header) and, when it is valid, stores it in the
// request's context before calling next. Requests without a valid lane are passed on as they
// are.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if l := fromValues(r.Header.Values(Header), r.Header.Values(baggageHeader)); l != "" {
			r = r.WithContext(NewContext(r.Context(), l))
		}
		next.ServeHTTP(w, r)
	})
}

// Transport returns a RoundTripper that sends each request through base, first adding the lane
// of the request's context when the request has one and carries no x-swimlane header yet: it
// sets x-swimlane and the swimlane member of the baggage header (appended to the request's
// baggage, replacing any swimlane member). The caller's request is never modified; a clone
// with the added headers is sent instead. A nil base means http.DefaultTransport.
func Transport(base http.RoundTripper) http.RoundTripper {
	return &transport{base: base}
}

type transport struct {
	base http.RoundTripper // nil: http.DefaultTransport, looked up on each request
}

var _ http.RoundTripper = (*transport)(nil)

func (t *transport) next() http.RoundTripper {
	if t.base == nil {
		return http.DefaultTransport
	}
	return t.base
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	l, ok := FromContext(req.Context())
	if !ok || req.Header.Get(Header) != "" {
		return t.next().RoundTrip(req)
	}
	out := req.Clone(req.Context()) // a RoundTripper must not modify the caller's request
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	names.Write(out.Header, lane.Lane(l))
	return t.next().RoundTrip(out)
}

// CloseIdleConnections closes the idle connections of base, if it can, so that
// http.Client.CloseIdleConnections keeps working through this transport.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.next().(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

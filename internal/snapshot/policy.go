package snapshot

import (
	"math/rand/v2"
	"net"
	"net/http"
)

// TrafficPolicy is a DestinationRule's trafficPolicy for a service or a subset, compiled.
type TrafficPolicy struct {
	// LB is ROUND_ROBIN (default), LEAST_REQUEST or RANDOM; Hash, when set, replaces it.
	LB   string      `json:"lb,omitempty"`
	Hash *HashPolicy `json:"hash,omitempty"`
	// MaxRequests bounds the requests one proxy has in flight to the service; beyond it the
	// proxy answers 503 at once (circuit breaking). 0: no bound.
	MaxRequests int            `json:"maxRequests,omitempty"`
	Outlier     *OutlierPolicy `json:"outlier,omitempty"`
}

// HashPolicy is consistentHash: requests with the same key go to the same endpoint while the
// set of endpoints stays the same (rendezvous hashing: an endpoint leaving moves only its own
// keys).
type HashPolicy struct {
	Header   string `json:"header,omitempty"`
	Cookie   string `json:"cookie,omitempty"`
	Query    string `json:"query,omitempty"`
	SourceIP bool   `json:"sourceIp,omitempty"`
}

// OutlierPolicy ejects an endpoint after Consecutive5xx (or ConsecutiveGateway: 502, 503,
// 504) failures in a row, for BaseEjection times the number of its ejections, with at most
// MaxEjectionPercent of a set ejected at once.
type OutlierPolicy struct {
	Consecutive5xx     int      `json:"consecutive5xx,omitempty"`
	ConsecutiveGateway int      `json:"consecutiveGateway,omitempty"`
	BaseEjection       Duration `json:"baseEjection"`
	MaxEjectionPercent int      `json:"maxEjectionPercent"`
}

// Picker is what one request brings to picking an endpoint: which endpoints the proxy may
// use now, the request (for consistent hashing), and the proxy's in-flight counts (for
// LEAST_REQUEST). A nil Picker, or nil fields, mean all usable, no hash key, no load.
type Picker struct {
	Usable  Usable
	Request *http.Request
	Load    func(*Endpoint) int64
	// Source is the calling workload's labels, for sourceLabels matches.
	Source map[string]string
}

func (pk *Picker) source() map[string]string {
	if pk == nil {
		return nil
	}
	return pk.Source
}

func (pk *Picker) usable(ep *Endpoint) bool {
	return pk == nil || pk.Usable == nil || pk.Usable(ep)
}

// Pick returns an endpoint of the set by its policy, or nil when none is usable.
func (s *EndpointSet) Pick(pk *Picker) *Endpoint {
	n := len(s.Endpoints)
	if n == 0 {
		return nil
	}
	policy := s.Policy
	if policy != nil && policy.Hash != nil && pk != nil && pk.Request != nil {
		if key, ok := policy.Hash.key(pk.Request); ok {
			return s.pickHash(key, pk)
		}
	}
	start := 0
	switch {
	case policy != nil && policy.LB == "RANDOM":
		start = rand.IntN(n)
	case policy != nil && policy.LB == "LEAST_REQUEST" && pk != nil && pk.Load != nil:
		// Power of two choices: the less loaded of two random usable endpoints.
		a, b := s.Endpoints[rand.IntN(n)], s.Endpoints[rand.IntN(n)]
		if pk.usable(&a) && pk.usable(&b) {
			if pk.Load(&b) < pk.Load(&a) {
				a = b
			}
			for i := range s.Endpoints {
				if s.Endpoints[i].Address == a.Address {
					return &s.Endpoints[i]
				}
			}
		}
		start = rand.IntN(n)
	default:
		start = int(s.next.Add(1)-1) % n
	}
	for i := 0; i < n; i++ {
		ep := &s.Endpoints[(start+i)%n]
		if pk.usable(ep) {
			return ep
		}
	}
	return nil
}

// pickHash is rendezvous hashing: the usable endpoint with the highest mix of key and address.
func (s *EndpointSet) pickHash(key uint64, pk *Picker) *Endpoint {
	var best *Endpoint
	var bestScore uint64
	for i := range s.Endpoints {
		ep := &s.Endpoints[i]
		if !pk.usable(ep) {
			continue
		}
		if score := mix(key ^ fnv(ep.Address)); best == nil || score > bestScore {
			best, bestScore = ep, score
		}
	}
	return best
}

func (h *HashPolicy) key(r *http.Request) (uint64, bool) {
	var v string
	switch {
	case h.Header != "":
		v = r.Header.Get(h.Header)
	case h.Cookie != "":
		if c, err := r.Cookie(h.Cookie); err == nil {
			v = c.Value
		}
	case h.Query != "":
		v = r.URL.Query().Get(h.Query)
	case h.SourceIP:
		v, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	if v == "" {
		return 0, false
	}
	return fnv(v), true
}

func fnv(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix is splitmix64's finaliser: FNV alone spreads its low bits poorly.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

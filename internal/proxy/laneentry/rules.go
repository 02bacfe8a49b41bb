package laneentry

import (
	"math"
	"net/http"
	"net/url"
	"strconv"

	"swimlane.dev/swimlane/internal/lane"
	"swimlane.dev/swimlane/internal/snapshot"
)

type ruleKind uint8

const (
	kindNever ruleKind = iota // malformed: yields nothing
	kindMatch
	kindLaneFrom
	kindUsers
	kindBuckets
	kindPercent
)

// rule is a compiled [snapshot.EntryRule].
type rule struct {
	label string
	kind  ruleKind
	from  source
	lane  lane.Lane // Match, Users, Percent: the lane assigned

	value string // Match: the required value; "" for any

	users stringSet // Users: the IDs

	lanes   []lane.Lane // Buckets: one lane per bucket ("" where the configured lane is invalid)
	numeric bool        // Buckets: integer IDs pick their bucket directly

	threshold float64 // Percent: a user is in when hash%10000 < threshold
}

func compileRule(r *snapshot.EntryRule, i int) rule {
	c := rule{label: ruleLabel(r, i)}
	kinds := 0
	for _, set := range [...]bool{
		r.Match != nil, r.LaneFrom != nil, r.Users != nil, r.Buckets != nil, r.Percent != nil,
	} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return c
	}
	var from snapshot.ValueFrom
	target := lane.Lane("")
	switch {
	case r.Match != nil:
		c.kind, from, target = kindMatch, r.Match.From, r.Lane
		c.value = r.Match.Value
	case r.LaneFrom != nil:
		c.kind, from = kindLaneFrom, *r.LaneFrom
	case r.Users != nil:
		c.kind, from, target = kindUsers, r.Users.From, r.Lane
		ids := make([]string, 0, len(r.Users.IDs))
		for _, id := range r.Users.IDs {
			if id != "" { // an empty ID would match nobody: absent values never match
				ids = append(ids, id)
			}
		}
		c.users = newStringSet(ids)
	case r.Buckets != nil:
		c.kind, from = kindBuckets, r.Buckets.From
		c.numeric = r.Buckets.Numeric
		c.lanes = make([]lane.Lane, len(r.Buckets.Lanes))
		for j, l := range r.Buckets.Lanes {
			if lane.Valid(string(l)) {
				c.lanes[j] = l
			}
		}
		if len(c.lanes) == 0 {
			c.kind = kindNever
		}
	case r.Percent != nil:
		c.kind, from, target = kindPercent, r.Percent.From, r.Lane
		// Buckets are 0..9999, so 100% (threshold 10000) takes everyone; 0, negative and
		// NaN take no one.
		v := r.Percent.Value
		if !(v > 0) {
			c.kind = kindNever
		}
		c.threshold = math.Min(v, 100) * 100
	}
	if c.kind != kindLaneFrom && c.kind != kindBuckets && !lane.Valid(string(target)) {
		c.kind = kindNever
	}
	c.lane = target
	var ok bool
	if c.from, ok = compileSource(from); !ok {
		c.kind = kindNever
	}
	return c
}

// eval returns the lane the rule assigns to the request, or "".
func (c *rule) eval(req *request) lane.Lane {
	switch c.kind {
	case kindMatch:
		return c.evalMatch(req)
	case kindLaneFrom:
		return c.evalLaneFrom(req)
	case kindUsers:
		return c.evalUsers(req)
	case kindBuckets:
		return c.evalBuckets(req)
	case kindPercent:
		return c.evalPercent(req)
	}
	return ""
}

// evalMatch: Match + Lane. The rule yields Lane when the From value is present and, if
// Match.Value is not empty, equal to it (exact, case-sensitive). With an empty Value, mere
// presence matches, even of an empty value (a bare "?beta" flag, an empty header).
func (c *rule) evalMatch(req *request) lane.Lane {
	v, present := req.lookup(&c.from)
	if !present || (c.value != "" && v != c.value) {
		return ""
	}
	return c.lane
}

// evalLaneFrom: LaneFrom. The From value itself is the lane if it is a valid lane name
// ([lane.Valid]); otherwise, or when absent, the rule yields nothing and the next one runs.
// Whether the lane is declared or expired is for routing to judge, as for any lane.
func (c *rule) evalLaneFrom(req *request) lane.Lane {
	v, _ := req.lookup(&c.from)
	if !lane.Valid(v) {
		return ""
	}
	return lane.Lane(v)
}

// evalUsers: Users + Lane. The rule yields Lane when the From value is exactly one of the
// listed IDs. Lists longer than 16 IDs are looked up in a set built by [Prepare].
func (c *rule) evalUsers(req *request) lane.Lane {
	v, _ := req.lookup(&c.from)
	if v == "" || !c.users.has(v) {
		return ""
	}
	return c.lane
}

// evalBuckets: Buckets. The From value is the user ID; an empty or absent ID yields nothing.
// With Numeric, an ID that parses as a non-negative decimal integer (fitting in 64 bits)
// picks bucket ID % len(Lanes), so two lanes split users into even and odd; any other ID,
// and every ID without Numeric, picks bucket FNV-1a-64(ID) % len(Lanes). The choice depends
// on the ID alone, so a user always lands in the same lane (sticky by construction) as long
// as the list of lanes does not change. A bucket whose lane is invalid yields nothing.
func (c *rule) evalBuckets(req *request) lane.Lane {
	id, _ := req.lookup(&c.from)
	if id == "" {
		return ""
	}
	n := uint64(len(c.lanes))
	if c.numeric {
		if u, err := strconv.ParseUint(id, 10, 64); err == nil {
			return c.lanes[u%n]
		}
	}
	return c.lanes[userHash(id)%n]
}

// evalPercent: Percent + Lane. The From value is the user ID; an empty or absent ID yields
// nothing. The user gets Lane when FNV-1a-64(ID) % 10000 < Value*100, which puts Value% of
// users in the lane, in steps of 0.01%: 0 never, 100 always. The same user always gets the
// same answer, and raising Value only adds users (those already in stay in). Percent and
// Buckets rules over the same ID use the same hash, so their choices are not independent.
func (c *rule) evalPercent(req *request) lane.Lane {
	id, _ := req.lookup(&c.from)
	if id == "" || !(float64(userHash(id)%10000) < c.threshold) {
		return ""
	}
	return c.lane
}

type sourceKind uint8

const (
	fromHeader sourceKind = iota + 1
	fromCookie
	fromQuery
)

// source is a compiled [snapshot.ValueFrom].
type source struct {
	kind sourceKind
	name string // header names are canonical, to index http.Header directly
}

func compileSource(v snapshot.ValueFrom) (source, bool) {
	n := 0
	var s source
	if v.Header != "" {
		n++
		s = source{kind: fromHeader, name: http.CanonicalHeaderKey(v.Header)}
	}
	if v.Cookie != "" {
		n++
		s = source{kind: fromCookie, name: v.Cookie}
	}
	if v.Query != "" {
		n++
		s = source{kind: fromQuery, name: v.Query}
	}
	return s, n == 1
}

// request holds what rules read from one request, parsed at most once.
type request struct {
	r      *http.Request
	query  url.Values
	parsed bool
}

// lookup returns the value s names on the request and whether it is present. A header's
// first value is used; a cookie is read with [http.Request.Cookie]; the query is parsed on
// first use only, then shared by all rules.
func (req *request) lookup(s *source) (string, bool) {
	switch s.kind {
	case fromHeader:
		if vs := req.r.Header[s.name]; len(vs) > 0 {
			return vs[0], true
		}
	case fromCookie:
		if c, err := req.r.Cookie(s.name); err == nil {
			return c.Value, true
		}
	case fromQuery:
		if !req.parsed {
			req.parsed = true
			if req.r.URL != nil {
				req.query = req.r.URL.Query()
			}
		}
		if vs := req.query[s.name]; len(vs) > 0 {
			return vs[0], true
		}
	}
	return "", false
}

// userHash spreads user IDs over buckets: FNV-1a 64 finished with splitmix64's mixer. FNV-1a
// alone mixes its low bits poorly (its lowest bit is the parity of the bytes' lowest bits,
// so with two buckets "user-1", "user-3" and "user-5" always shared one); the finisher makes
// every output bit depend on every input bit, so any modulus splits users evenly.
func userHash(id string) uint64 { return mix64(fnv1a64(id)) }

// mix64 is the splitmix64 finaliser.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// fnv1a64 is FNV-1a 64 of s (as hash/fnv.New64a), without the allocations of the
// hash.Hash interface.
func fnv1a64(s string) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime64
	}
	return h
}

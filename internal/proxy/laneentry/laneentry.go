// Package laneentry decides the lane of a request entering the mesh through an ingress
// gateway, enforcing the gateway's compiled lane policy ([snapshot.LaneEntry]).
//
// # Steps
//
// [Policy.Apply] runs, in this order:
//
//  1. Read the lane the client sent, with [lane.Names.FromHeaders], in whichever of the forms
//     it knows comes first (the lane header, then the baggage member, then the others).
//     Invalid values read as no lane.
//  2. Enforce p.Incoming:
//     - trust (also the empty value, and a nil policy): keep the client's lane;
//     - strip: remove every lane form with [lane.Names.Strip], which covers every form
//     FromHeaders reads so that none can smuggle a lane past the gateway. Strip runs even
//     when no valid lane was read: an invalid or unreadable lane must not survive either;
//     - allowList: keep the client's lane if it is one of p.Allow, else strip as above;
//     - any other value: strip (a policy the gateway does not understand fails closed).
//  3. If a lane remains, it is the request's lane: rules never override a kept lane.
//  4. Otherwise evaluate p.Rules in order; the first rule that yields a valid lane wins.
//     Rules see the request after step 2, so a rule reading a lane header that was just
//     stripped finds nothing.
//
// Apply edits the request only by stripping. It does not write the lane it decided: the
// caller writes [Decision.Lane] with [lane.Names.Write], which sets both the lane header and
// the baggage member so the two forms agree from then on.
//
// # Why only the gateway
//
// Inside the mesh a lane is propagated as is: every sidecar believes the lane a request
// carries, because the only way in from outside is through a gateway that already enforced
// this policy. The gateway is therefore the one trust boundary where a lane sent by an
// internet client can be judged (trusted, checked against an allow-list, or removed) and
// where a lane can be assigned from what identifies the end user (a header, cookie or query
// parameter). Were a sidecar to run entry rules, one call tree could change lanes half-way
// through, and any workload could re-label traffic that the gateway had deliberately put in
// the baseline; so sidecars never call this package.
//
// # Hot path
//
// [Prepare] compiles a policy once per snapshot (header names canonicalised, target lanes
// validated, long user and allow lists turned into sets, rule labels built); [Policy.Apply]
// then runs per request without further set-up, reading each cookie with
// [http.Request.Cookie] and parsing the query string at most once, and only if a rule reads
// it. A [Policy] is immutable and safe for concurrent use. The package-level [Apply] compiles
// on every call and is meant for one-off use such as explain tooling.
package laneentry

import (
	"net/http"
	"strconv"

	"swimlane.dev/swimlane/internal/lane"
	"swimlane.dev/swimlane/internal/snapshot"
)

// Decision says how a gateway request got its lane, for logs, metrics and explain.
type Decision struct {
	Lane     lane.Lane // "" when the request has no lane after entry
	Incoming lane.Lane // the lane the client sent ("" if none or invalid)
	Stripped bool      // the client's lane was removed by policy
	Rule     string    // the rule that assigned the lane: its Name, else "rules[i]"; "" if none
}

// Policy is a compiled [snapshot.LaneEntry], ready to be applied to many requests. The nil
// *Policy is valid and means trust, no rules.
type Policy struct {
	mode  mode
	allow stringSet
	rules []rule
}

type mode uint8

const (
	modeTrust mode = iota
	modeStrip
	modeAllowList
)

// Prepare compiles p. A nil p gives a nil *Policy (trust, no rules).
//
// Prepare does not reject anything: the control plane validates lane entry policies. A
// malformed rule (no kind or several kinds set, a ValueFrom that does not name exactly one
// of Header, Cookie or Query, an invalid target lane, no bucket lanes) is kept in its place
// but never yields a lane, so a bad rule can send a request to the baseline but never to an
// unintended lane.
func Prepare(p *snapshot.LaneEntry) *Policy {
	if p == nil {
		return nil
	}
	pol := &Policy{rules: make([]rule, len(p.Rules))}
	switch p.Incoming {
	case snapshot.IncomingTrust, "":
		pol.mode = modeTrust
	case snapshot.IncomingAllowList:
		pol.mode = modeAllowList
		allow := make([]string, 0, len(p.Allow))
		for _, l := range p.Allow {
			if lane.Valid(string(l)) {
				allow = append(allow, string(l))
			}
		}
		pol.allow = newStringSet(allow)
	default: // IncomingStrip, and values this gateway does not know: fail closed.
		pol.mode = modeStrip
	}
	for i := range p.Rules {
		pol.rules[i] = compileRule(&p.Rules[i], i)
	}
	return pol
}

// Apply compiles p and applies it to r; see [Policy.Apply]. It is for one-off use: a
// gateway serving traffic should [Prepare] its policy once per snapshot instead.
// A nil policy means trust, no rules.
func Apply(p *snapshot.LaneEntry, names lane.Names, r *http.Request) Decision {
	return Prepare(p).Apply(names, r)
}

// Apply enforces the policy on r (which it modifies: stripping lane headers; it does NOT
// write the assigned lane — the caller writes it with Names.Write) and returns the
// decision. The steps are listed in the package documentation.
func (p *Policy) Apply(names lane.Names, r *http.Request) Decision {
	incoming, _ := names.FromHeaders(r.Header)
	d := Decision{Incoming: incoming}

	m := modeTrust
	if p != nil {
		m = p.mode
	}
	keep := true
	switch m {
	case modeStrip:
		keep = false
	case modeAllowList:
		keep = incoming != "" && p.allow.has(string(incoming))
	}
	if !keep {
		// Strip even when nothing valid was read: an invalid lane must not survive either.
		names.Strip(r.Header)
		d.Stripped = incoming != ""
		incoming = ""
	}

	if incoming != "" {
		d.Lane = incoming
		return d
	}
	if p == nil {
		return d
	}
	req := request{r: r}
	for i := range p.rules {
		if l := p.rules[i].eval(&req); l != "" {
			d.Lane = l
			d.Rule = p.rules[i].label
			return d
		}
	}
	return d
}

// stringSet is a membership test over a fixed list: a linear scan for short lists, a map
// above setThreshold entries.
type stringSet struct {
	list []string
	set  map[string]struct{}
}

// setThreshold is the list length above which a map beats a linear scan of short strings.
const setThreshold = 16

func newStringSet(items []string) stringSet {
	if len(items) <= setThreshold {
		return stringSet{list: items}
	}
	set := make(map[string]struct{}, len(items))
	for _, s := range items {
		set[s] = struct{}{}
	}
	return stringSet{set: set}
}

func (s stringSet) has(v string) bool {
	if s.set != nil {
		_, ok := s.set[v]
		return ok
	}
	for _, item := range s.list {
		if item == v {
			return true
		}
	}
	return false
}

func ruleLabel(r *snapshot.EntryRule, i int) string {
	if r.Name != "" {
		return r.Name
	}
	return "rules[" + strconv.Itoa(i) + "]"
}

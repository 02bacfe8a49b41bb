package snapshot

import (
	"time"

	"swimlane.dev/swimlane/internal/lane"
)

// LaneMode says what happens when a service has no healthy endpoint in a lane.
type LaneMode string

const (
	// ModeFallback tries the next lane of the chain (the default).
	ModeFallback LaneMode = "fallback"
	// ModeStrict never falls back: a clear 503 names the missing service and lane.
	ModeStrict LaneMode = "strict"
)

// LaneInfo is a declared lane (a Lane object). Lanes that only appear in workload labels are
// not listed: they use the default chain, lane -> baseline.
type LaneInfo struct {
	Name lane.Lane `json:"name"`
	// Chain is the full resolution order, starting with the lane itself and ending with the
	// baseline (in fallback mode); in strict mode it holds the lane alone.
	Chain       []lane.Lane `json:"chain"`
	Mode        LaneMode    `json:"mode"`
	Owner       string      `json:"owner,omitempty"`
	Description string      `json:"description,omitempty"`
	// Expires is when the lane stops routing; zero for never.
	Expires time.Time `json:"expires,omitempty"`
	// Expired is set by the control plane once Expires has passed: requests asking for the
	// lane are then served as if they carried no lane.
	Expired bool `json:"expired,omitempty"`
	// Source names the Lane object, for explain.
	Source string `json:"source,omitempty"`
}

// IncomingLanes says what a gateway does with a lane that arrives from outside the mesh.
type IncomingLanes string

const (
	// IncomingTrust accepts the caller's lane (the default; right for dev clusters).
	IncomingTrust IncomingLanes = "trust"
	// IncomingStrip removes every lane form from the request before entry rules run.
	IncomingStrip IncomingLanes = "strip"
	// IncomingAllowList accepts only lanes in LaneEntry.Allow; others are stripped.
	IncomingAllowList IncomingLanes = "allowList"
)

// LaneEntry is a gateway's lane policy: what to do with incoming lanes, and rules that assign
// a lane to requests that have none after that. The first rule that yields a lane wins.
type LaneEntry struct {
	Gateway  string        `json:"gateway"`
	Incoming IncomingLanes `json:"incoming"`
	Allow    []lane.Lane   `json:"allow,omitempty"`
	Rules    []EntryRule   `json:"rules,omitempty"`
	Source   string        `json:"source,omitempty"`
}

// ValueFrom names where a request carries a value: exactly one of Header, Cookie or Query.
type ValueFrom struct {
	Header string `json:"header,omitempty"`
	Cookie string `json:"cookie,omitempty"`
	Query  string `json:"query,omitempty"`
}

// EntryRule assigns a lane. Exactly one of its kinds is set:
//   - Match + Lane: requests whose From value equals Value (any value when Value is "")
//     get Lane;
//   - LaneFrom: the lane is the From value itself (validated as a lane name);
//   - Users + Lane: requests whose From value is one of the user IDs get Lane;
//   - Buckets: the From value hashed (FNV-1a 64 with splitmix64's finaliser) modulo
//     len(Lanes) picks the lane, sticky per user; with Numeric, an integer ID is used as is (odd/even with two lanes);
//   - Percent + Lane: that share of users (by the same hash, modulo 10000, below
//     Percent*100) gets Lane, sticky per user.
type EntryRule struct {
	Name     string       `json:"name,omitempty"`
	Lane     lane.Lane    `json:"lane,omitempty"`
	Match    *EntryMatch  `json:"match,omitempty"`
	LaneFrom *ValueFrom   `json:"laneFrom,omitempty"`
	Users    *EntryUsers  `json:"users,omitempty"`
	Buckets  *EntryBucket `json:"buckets,omitempty"`
	Percent  *EntryShare  `json:"percent,omitempty"`
}

// EntryMatch matches a request value.
type EntryMatch struct {
	From  ValueFrom `json:"from"`
	Value string    `json:"value,omitempty"`
}

// EntryUsers is an allow-list of user IDs.
type EntryUsers struct {
	From ValueFrom `json:"from"`
	IDs  []string  `json:"ids"`
}

// EntryBucket hashes a user ID into one lane per bucket.
type EntryBucket struct {
	From    ValueFrom   `json:"from"`
	Lanes   []lane.Lane `json:"lanes"`
	Numeric bool        `json:"numeric,omitempty"`
}

// EntryShare sends a sticky share of users to a lane.
type EntryShare struct {
	From  ValueFrom `json:"from"`
	Value float64   `json:"value"` // percent, 0..100
}

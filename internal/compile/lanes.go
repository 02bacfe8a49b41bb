package compile

import (
	"fmt"
	"slices"
	"time"

	"swimlane.dev/swimlane/internal/lane"
	"swimlane.dev/swimlane/internal/snapshot"
)

// lanes compiles Lane objects into full chains: the lane, its fallbacks, then the baseline
// (fallback mode), or the lane alone (strict mode). Expiry is judged at c.now, so the
// control plane recompiles when the next lane expires (Compiled.NextExpiry).
func (c *compiler) lanes() {
	seen := map[lane.Lane]string{}
	for _, o := range c.set.Lanes {
		name := lane.Lane(o.Name)
		if !lane.Valid(o.Name) {
			c.fail(o.Errorf("metadata.name", "%q is not a lane name ([A-Za-z0-9._-]{1,63})", o.Name))
			continue
		}
		if prev, dup := seen[name]; dup {
			c.fail(o.Errorf("metadata.name", "lane %q is already declared by %s", name, prev))
			continue
		}
		seen[name] = o.Source.String()
		spec := o.Spec
		info := &snapshot.LaneInfo{Name: name, Mode: snapshot.ModeFallback, Owner: spec.Owner, Description: spec.Description, Source: o.Source.String()}
		switch spec.Mode {
		case "", "fallback":
		case "strict":
			info.Mode = snapshot.ModeStrict
			if len(spec.Fallback) > 0 {
				c.fail(o.Errorf("spec.fallback", "a strict lane has no fallback; remove fallback or use mode fallback"))
			}
		default:
			c.fail(o.Errorf("spec.mode", "%q: want fallback or strict", spec.Mode))
		}
		info.Chain = []lane.Lane{name}
		for i, f := range spec.Fallback {
			fl := lane.Lane(f)
			switch {
			case !lane.Valid(f):
				c.fail(o.Errorf(fmt.Sprintf("spec.fallback[%d]", i), "%q is not a lane name", f))
			case slices.Contains(info.Chain, fl):
				c.fail(o.Errorf(fmt.Sprintf("spec.fallback[%d]", i), "lane %q appears twice in the chain %v", f, info.Chain))
			default:
				info.Chain = append(info.Chain, fl)
			}
		}
		if info.Mode == snapshot.ModeFallback && name != c.meshCfg.Baseline && !slices.Contains(info.Chain, c.meshCfg.Baseline) {
			info.Chain = append(info.Chain, c.meshCfg.Baseline)
		}
		if spec.Expires != "" {
			t, err := time.Parse(time.RFC3339, spec.Expires)
			if err != nil {
				c.fail(o.Errorf("spec.expires", "want an RFC 3339 time like 2026-12-31T18:00:00Z: %v", err))
			} else {
				info.Expires = t
				info.Expired = !c.now.Before(t)
				if !info.Expired && (c.nextExpiry.IsZero() || t.Before(c.nextExpiry)) {
					c.nextExpiry = t
				}
			}
		}
		if name == c.meshCfg.Baseline && (info.Mode == snapshot.ModeStrict || !info.Expires.IsZero()) {
			c.fail(o.Errorf("spec", "the baseline lane %q cannot be strict or expire: every other lane falls back to it", name))
		}
		c.laneInfos = append(c.laneInfos, info)
	}
}

// laneEntries compiles gateways' lane policies.
func (c *compiler) laneEntries() {
	byGateway := map[string]string{}
	for _, o := range c.set.LaneEntries {
		spec := o.Spec
		found := false
		for _, g := range c.gws {
			found = found || g.Name == spec.Gateway
		}
		if !found {
			c.fail(o.Errorf("spec.gateway", "no gateway %q in the Mesh", spec.Gateway))
			continue
		}
		if prev, dup := byGateway[spec.Gateway]; dup {
			c.fail(o.Errorf("spec.gateway", "gateway %q already has the lane policy %s", spec.Gateway, prev))
			continue
		}
		byGateway[spec.Gateway] = o.Source.String()
		entry := &snapshot.LaneEntry{Gateway: spec.Gateway, Incoming: snapshot.IncomingTrust, Rules: spec.Rules, Source: o.Source.String()}
		switch snapshot.IncomingLanes(spec.Incoming) {
		case "", snapshot.IncomingTrust:
		case snapshot.IncomingStrip, snapshot.IncomingAllowList:
			entry.Incoming = snapshot.IncomingLanes(spec.Incoming)
		default:
			c.fail(o.Errorf("spec.incoming", "%q: want trust, strip or allowList", spec.Incoming))
		}
		for i, a := range spec.Allow {
			if !lane.Valid(a) {
				c.fail(o.Errorf(fmt.Sprintf("spec.allow[%d]", i), "%q is not a lane name", a))
			}
			entry.Allow = append(entry.Allow, lane.Lane(a))
		}
		if entry.Incoming == snapshot.IncomingAllowList && len(entry.Allow) == 0 {
			c.fail(o.Errorf("spec.allow", "incoming allowList needs at least one lane in allow"))
		}
		for i, r := range spec.Rules {
			c.checkRule(o.Errorf, fmt.Sprintf("spec.rules[%d]", i), r)
		}
		c.entries = append(c.entries, entry)
	}
}

// checkRule enforces that a rule has exactly one kind, and that its lanes and sources are
// well-formed, so the gateway never meets a rule it cannot apply.
func (c *compiler) checkRule(at errorf, path string, r snapshot.EntryRule) {
	kinds := 0
	var froms []*snapshot.ValueFrom
	needLane := false
	if r.Match != nil {
		kinds++
		froms = append(froms, &r.Match.From)
		needLane = true
	}
	if r.LaneFrom != nil {
		kinds++
		froms = append(froms, r.LaneFrom)
	}
	if r.Users != nil {
		kinds++
		froms = append(froms, &r.Users.From)
		needLane = true
		if len(r.Users.IDs) == 0 {
			c.fail(at(path+".users.ids", "at least one user ID is required"))
		}
	}
	if r.Buckets != nil {
		kinds++
		froms = append(froms, &r.Buckets.From)
		if len(r.Buckets.Lanes) == 0 {
			c.fail(at(path+".buckets.lanes", "at least one lane is required"))
		}
		for i, l := range r.Buckets.Lanes {
			if !lane.Valid(string(l)) {
				c.fail(at(fmt.Sprintf("%s.buckets.lanes[%d]", path, i), "%q is not a lane name", l))
			}
		}
	}
	if r.Percent != nil {
		kinds++
		froms = append(froms, &r.Percent.From)
		needLane = true
		if r.Percent.Value < 0 || r.Percent.Value > 100 {
			c.fail(at(path+".percent.value", "%v is not a percentage in 0..100", r.Percent.Value))
		}
	}
	if kinds != 1 {
		c.fail(at(path, "a rule needs exactly one of match, laneFrom, users, buckets or percent (found %d)", kinds))
		return
	}
	if needLane && !lane.Valid(string(r.Lane)) {
		c.fail(at(path+".lane", "%q is not a lane name", r.Lane))
	}
	if !needLane && r.Lane != "" {
		c.fail(at(path+".lane", "this rule kind picks its lane itself; remove lane"))
	}
	for _, f := range froms {
		n := 0
		for _, s := range []string{f.Header, f.Cookie, f.Query} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			c.fail(at(path, "from needs exactly one of header, cookie or query"))
		}
	}
}

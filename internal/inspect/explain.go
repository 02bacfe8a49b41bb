package inspect

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"swimlane.dev/swimlane/internal/lane"
	"swimlane.dev/swimlane/internal/proxy/laneentry"
	"swimlane.dev/swimlane/internal/snapshot"
)

// Explain follows one request through snap as a proxy would: gateway lane policy (when it
// enters through a gateway), lane, service, route, lane chain, endpoints.
func Explain(snap *snapshot.Snapshot, in Request) Explanation {
	ex := Explanation{Version: snap.Version}
	step := func(stage, result, why string) { ex.Steps = append(ex.Steps, Step{stage, result, why}) }

	method, path := in.Method, in.Path
	if method == "" {
		method = http.MethodGet
	}
	if path == "" {
		path = "/"
	}
	host := in.Service
	if in.Gateway != "" {
		gw := snap.Gateway(in.Gateway)
		if gw == nil {
			ex.Status, ex.Error = http.StatusServiceUnavailable, "no gateway "+in.Gateway
			step("gateway", "not found", "")
			return ex
		}
		host = gw.DefaultService
	}
	u := &url.URL{Scheme: "http", Host: host, Path: path, RawQuery: in.Query}
	r, err := http.NewRequest(method, u.String(), nil)
	if err != nil {
		ex.Status, ex.Error = http.StatusBadRequest, err.Error()
		return ex
	}
	for k, vs := range in.Header {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	names := snap.Mesh.LaneNames()
	if in.Lane != "" {
		r.Header.Set(names.Header, string(in.Lane))
	}

	// 1. lane
	var asked lane.Lane
	if in.Gateway != "" {
		var policy *snapshot.LaneEntry
		for _, e := range snap.LaneEntries {
			if e.Gateway == in.Gateway {
				policy = e
			}
		}
		d := laneentry.Apply(policy, names, r)
		asked = d.Lane
		why := "incoming lanes trusted"
		if policy != nil {
			why = fmt.Sprintf("policy %s: incoming %s", policy.Source, policy.Incoming)
		}
		switch {
		case d.Stripped:
			why += fmt.Sprintf("; the client's lane %q was stripped", d.Incoming)
		case d.Incoming != "" && d.Incoming == d.Lane:
			why += fmt.Sprintf("; the client's lane %q was kept", d.Incoming)
		}
		if d.Rule != "" {
			why += "; assigned by rule " + d.Rule
		}
		step("gateway "+in.Gateway, "lane "+laneText(asked), why)
	} else {
		var src lane.Source
		asked, src = names.FromHeaders(r.Header)
		why := "no lane in the request: the baseline serves"
		if asked != "" {
			why = "read from " + string(src)
		}
		step("lane", laneText(asked), why)
	}
	chain, expired := snap.Chain(asked)
	switch info := snap.LaneInfo(asked); {
	case expired:
		step("lane object", "expired", fmt.Sprintf("lane %s expired at %s: served as the baseline", asked, info.Expires.Format("2006-01-02T15:04:05Z07:00")))
	case info != nil:
		step("lane object", string(info.Mode), fmt.Sprintf("declared by %s; chain %s", info.Source, snapshot.JoinChain(chain)))
	case asked != "":
		step("lane object", "undeclared", "default chain "+snapshot.JoinChain(chain))
	}
	names.Write(r.Header, asked)

	// 2. service
	svc := snap.Service(host)
	if svc == nil {
		ex.Status, ex.Error = http.StatusServiceUnavailable, fmt.Sprintf("no service %q in the mesh", host)
		step("service", "not found", ex.Error)
		return ex
	}
	step("service", svc.Name, "")

	// 3. route and 4. endpoints: the proxy's own code.
	d := snap.RouteHTTP(svc, r, asked, nil)
	switch {
	case d.NoRoute:
		ex.Status, ex.Error = http.StatusNotFound, "no route of "+svc.Name+" matches"
		step("route", "none matched", fmt.Sprintf("%d rules, none matches %s %s", len(svc.HTTP), method, path))
		return ex
	case d.Route != nil && d.Route.Redirect != nil:
		rd := d.Route.Redirect
		step("route", d.Route.Name, fmt.Sprintf("redirect %d to uri %q authority %q (answered by the proxy)", rd.Code, rd.URI, rd.Authority))
		ex.Status = rd.Code
		return ex
	case d.Route != nil:
		dest := d.Host
		if d.Subset != "" {
			dest += " subset " + d.Subset + " (pinned: lanes do not apply)"
		}
		step("route", d.Route.Name, "destination "+dest)
	default:
		step("route", "default", "no routing rules: all traffic to "+svc.Name+", resolved by lane")
	}
	if d.Service == nil {
		ex.Status, ex.Error = http.StatusServiceUnavailable, d.NoEndpointReason()
		return ex
	}
	if d.Subset == "" && d.Service.Lane == "" {
		served := false
		for _, l := range chain {
			all, healthy := countEndpoints(snap, d.Service, l)
			ls := LaneStep{Lane: l, Endpoints: all, Healthy: healthy}
			switch {
			case served:
				ls.Outcome = "not tried"
			case l == d.Served:
				ls.Outcome, served = "serves", true
			case all == 0:
				ls.Outcome = "no endpoints: next"
			default:
				ls.Outcome = "all unhealthy: next"
			}
			ex.Chain = append(ex.Chain, ls)
		}
	} else if d.Service.Lane != "" {
		step("lanes", "pinned", d.Service.Name+" selects lane "+string(d.Service.Lane)+": all its endpoints serve")
	}
	if d.Endpoint == nil {
		ex.Status, ex.Error = http.StatusServiceUnavailable, d.NoEndpointReason()
		return ex
	}
	// Every endpoint the request may go to: the served lane's or subset's healthy ones.
	set := d.Service.LaneSet(d.Served)
	if d.Subset != "" {
		set = d.Service.SubsetSet(d.Subset)
	}
	for _, ep := range set.Endpoints {
		ex.Endpoints = append(ex.Endpoints, fmt.Sprintf("%s %s (%s)", ep.Workload, ep.Address, ep.Protocol))
	}
	return ex
}

func laneText(l lane.Lane) string {
	if l == "" {
		return "(none)"
	}
	return string(l)
}

// String renders the explanation for a terminal.
func (ex Explanation) String() string {
	var b strings.Builder
	for i, s := range ex.Steps {
		fmt.Fprintf(&b, "%d. %-12s %s", i+1, s.Stage+":", s.Result)
		if s.Why != "" {
			fmt.Fprintf(&b, "  (%s)", s.Why)
		}
		b.WriteByte('\n')
	}
	if len(ex.Chain) > 0 {
		b.WriteString("   lane chain:\n")
		for _, c := range ex.Chain {
			fmt.Fprintf(&b, "     %-20s %d endpoints, %d healthy: %s\n", c.Lane, c.Endpoints, c.Healthy, c.Outcome)
		}
	}
	if ex.Error != "" {
		fmt.Fprintf(&b, "=> %d: %s\n", ex.Status, ex.Error)
		return b.String()
	}
	fmt.Fprintf(&b, "=> endpoints (round robin): %s\n", strings.Join(ex.Endpoints, ", "))
	return b.String()
}

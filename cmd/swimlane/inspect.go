package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"

	"swimlane.dev/swimlane/internal/inspect"
	"swimlane.dev/swimlane/internal/lane"
)

func runLanes(ctx context.Context, args []string) error {
	fs := newFlags("lanes", "lanes [--control ADDR] [-o text|json]")
	controlAddr := fs.String("control", "127.0.0.1:15010", "control plane gRPC address")
	output := fs.String("o", "text", "output: text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	snap, err := inspect.Fetch(ctx, *controlAddr)
	if err != nil {
		return err
	}
	m := inspect.Lanes(snap)
	if *output == "json" {
		return printJSON(m)
	}
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "LANE\tCHAIN\tMODE\tEXPIRES\tOWNER")
	for _, l := range m.Lanes {
		mode := l.Mode
		switch {
		case l.Baseline:
			mode = "baseline"
		case !l.Declared:
			mode += " (undeclared)"
		}
		expires := "-"
		if l.Expires != nil {
			expires = l.Expires.Format("2006-01-02T15:04Z07:00")
			if l.Expired {
				expires += " EXPIRED"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", l.Name, chainText(l.Chain), mode, expires, dash(l.Owner))
	}
	fmt.Fprintln(w)
	header := []string{"SERVICE"}
	for _, l := range m.Lanes {
		header = append(header, strings.ToUpper(string(l.Name)))
	}
	fmt.Fprintln(w, strings.Join(header, "\t"))
	for _, s := range m.Services {
		cells := []string{s.Name}
		for _, l := range m.Lanes {
			c := s.Lanes[l.Name]
			var text string
			switch {
			case c.ServedBy == "":
				text = "503 (none)"
			case c.Own:
				text = fmt.Sprintf("own %d/%d", c.Healthy, c.Endpoints)
			default:
				text = fmt.Sprintf("-> %s %d/%d", c.ServedBy, c.Healthy, c.Endpoints)
			}
			cells = append(cells, text)
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	fmt.Fprintf(w, "\n(own: the lane's own deployment; -> L: falls back to lane L; n/m: healthy/all endpoints; snapshot version %d)\n", m.Version)
	return w.Flush()
}

func runExplain(ctx context.Context, args []string) error {
	fs := newFlags("explain", "explain (--service HOST | --gateway NAME) [--lane L] [--header K=V ...] [--path P] [--method M] [--query Q] [-o text|json]")
	controlAddr := fs.String("control", "127.0.0.1:15010", "control plane gRPC address")
	service := fs.String("service", "", "the host the request is sent to, e.g. goods-service")
	gateway := fs.String("gateway", "", "the request enters through this gateway (its lane policy applies)")
	laneFlag := fs.String("lane", "", "the request's lane (sent as x-swimlane)")
	path := fs.String("path", "/", "request path")
	method := fs.String("method", "GET", "request method")
	query := fs.String("query", "", "raw query string, e.g. uid=42")
	var headers multiFlag
	fs.Var(&headers, "header", "a request header K=V (repeatable; cookies as Cookie=name=value)")
	output := fs.String("o", "text", "output: text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*service == "") == (*gateway == "") {
		fs.Usage()
		return errors.New("explain: give exactly one of --service or --gateway")
	}
	if *laneFlag != "" && !lane.Valid(*laneFlag) {
		return fmt.Errorf("explain: %q is not a lane name ([A-Za-z0-9._-]{1,63})", *laneFlag)
	}
	h := http.Header{}
	for _, kv := range headers {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("explain: --header %q: want K=V", kv)
		}
		h.Add(k, v)
	}
	snap, err := inspect.Fetch(ctx, *controlAddr)
	if err != nil {
		return err
	}
	ex := inspect.Explain(snap, inspect.Request{Service: *service, Gateway: *gateway, Method: *method, Path: *path, Lane: lane.Lane(*laneFlag), Header: h, Query: *query})
	if *output == "json" {
		return printJSON(ex)
	}
	fmt.Print(ex.String())
	return nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func chainText(ls []lane.Lane) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = string(l)
	}
	return strings.Join(parts, " -> ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

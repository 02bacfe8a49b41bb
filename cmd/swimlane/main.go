// Command swimlane is the Swimlane service mesh: control plane, proxy, local mode and tools in
// one binary. Run `swimlane help` for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

type command struct {
	name    string
	summary string
	hidden  bool
	run     func(ctx context.Context, args []string) error
}

// commands in the order `swimlane help` lists them.
var commands = []command{
	{name: "demo", summary: "run the seed's swimlane demo on this machine", run: runDemo},
	{name: "up", summary: "run a mesh from a Mesh file: control plane, gateways, sidecars, workloads", run: runUp},
	{name: "control", summary: "run the control plane alone", run: runControl},
	{name: "proxy", summary: "run one proxy: a sidecar or an ingress gateway", run: runProxy},
	{name: "echo", summary: "run a test workload that answers with who it is and what it received", run: runEcho},
	{name: "lanes", summary: "show each lane, its chain, and where every service resolves in it", run: runLanes},
	{name: "explain", summary: "explain where one request goes, step by step", run: runExplain},
	{name: "version", summary: "print the version", run: runVersion},
	{name: "demo-workload", hidden: true, run: runDemoWorkload},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "swimlane:", err)
			os.Exit(1)
		}
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(os.Stdout)
		return nil
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, args[1:])
		}
	}
	usage(os.Stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Swimlane: a service mesh with lanes.\n\nUsage: swimlane <command> [flags]\n\nCommands:")
	for _, c := range commands {
		if !c.hidden {
			fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprintln(w, "\nRun 'swimlane <command> --help' for a command's flags.")
}

// newFlags returns a flag set whose --help prints the command's usage line and flags.
func newFlags(name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: swimlane %s\n\nFlags:\n", usageLine)
		fs.PrintDefaults()
	}
	return fs
}

// logFlags adds -v and returns a constructor for the logger it selects.
func logFlags(fs *flag.FlagSet) func() *slog.Logger {
	verbose := fs.Bool("v", false, "log every request and snapshot (debug level)")
	return func() *slog.Logger {
		level := slog.LevelInfo
		if *verbose {
			level = slog.LevelDebug
		}
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
}

// multiFlag is a repeatable string flag (-f a -f b).
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runVersion(_ context.Context, args []string) error {
	fs := newFlags("version", "version")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Println("swimlane", version)
	return nil
}

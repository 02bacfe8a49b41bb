//go:build pgoprofile

package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// Built with -tags pgoprofile, the proxy writes a CPU profile of its whole run to the file
// $SWIMLANE_CPUPROFILE names: what default.pgo, the compiler's profile for this binary, is
// made from (bench/pgo.sh). Only in that build: no sidecar in a pod writes a profile because
// of what its environment holds.
func init() {
	path := os.Getenv("SWIMLANE_CPUPROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "swimlane-proxy: cpu profile:", err)
		os.Exit(1)
	}
	atExit = func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

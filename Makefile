# Benchmarks (bench/README.md). The harness is its own Go module under bench/, so its tools
# never enter the product's go.mod.
export PATH := $(PATH):/usr/local/go/bin

.PHONY: bench bench-smoke pgo

# The full benchmark: installs its tools, then 3 interleaved runs of every target and
# protocol (about 15 minutes); prints the table and writes bench/results/<date>.md.
bench:
	bench/install.sh
	cd bench && go run ./cmd/swimbench $(BENCHFLAGS)

# A few seconds per target, HTTP/1.1 only, report in a temp dir: keeps the harness working.
bench-smoke:
	bench/install.sh --smoke
	cd bench && go run ./cmd/swimbench -smoke $(BENCHFLAGS)

# Remakes the sidecar's compiler profile, cmd/swimlane-proxy/default.pgo (bench/pgo.sh).
pgo:
	bench/install.sh --smoke
	bench/pgo.sh

#!/usr/bin/env bash
# Makes cmd/swimlane-proxy/default.pgo, the profile `go build` compiles the sidecar with
# (profile-guided optimisation: the compiler inlines and lays out the hot path as the profile
# shows it). The profile is of the mesh path the bench measures: an outbound sidecar in front
# of an inbound sidecar in front of the bench's upstream, HTTP/1.1 with a lane header, 15 s at
# 1000 rps over 32 connections, then 10 s at wrk's maximum. Both sidecars are built with
# -tags pgoprofile and write a CPU profile each; the two are merged.
#
# Run it (`make pgo`) after changes to the hot path, and commit default.pgo with them.
# Needs fortio and wrk (bench/install.sh --smoke) and taskset; the ports are fixed, on
# 127.0.0.1, and the script stops everything it started.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/local/go/bin"
bin=.bin/pgo
mkdir -p "$bin"
go build -o "$bin/swimbench" ./cmd/swimbench
(cd .. && go build -o "bench/$bin/swimlane" ./cmd/swimlane &&
	go build -tags pgoprofile -o "bench/$bin/swimlane-proxy" ./cmd/swimlane-proxy)
fortio=.tools/fortio
command -v wrk >/dev/null && [ -x "$fortio" ] || { echo "pgo.sh: needs wrk and $fortio: run bench/install.sh --smoke" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cat >"$work/mesh.yaml" <<M
apiVersion: swimlane.dev/v1alpha1
kind: Mesh
metadata: {name: pgo}
spec:
  services:
  - {name: pgo-http, port: 80, selector: {app: pgo-http}}
  workloads:
  - {name: pgo-http, labels: {app: pgo-http, swimlane: bench}, protocol: http, address: "127.0.0.1:28085"}
M
load=0 proxies=1
[ "$(nproc)" -lt 2 ] && proxies=0
taskset -c $load "$bin/swimbench" upstream -listen 127.0.0.1:28081 & pids+=($!)
taskset -c $load "$bin/swimlane" control -f "$work/mesh.yaml" --listen 127.0.0.1:28090 >"$work/control.log" 2>&1 & pids+=($!)
sleep 1
SWIMLANE_CPUPROFILE=$work/outbound.pprof taskset -c $proxies "$bin/swimlane-proxy" --control 127.0.0.1:28090 \
	--outbound 127.0.0.1:28095 --admin "" --node pgo-outbound >"$work/outbound.log" 2>&1 & outbound=$!
SWIMLANE_CPUPROFILE=$work/inbound.pprof taskset -c $proxies "$bin/swimlane-proxy" --control 127.0.0.1:28090 \
	--inbound 127.0.0.1:28085 --app 127.0.0.1:28081 --protocol http --admin "" --node pgo-inbound >"$work/inbound.log" 2>&1 & inbound=$!
pids+=($outbound $inbound)
sleep 1.5
taskset -c $load "$fortio" load -qps 1000 -c 32 -t 15s -H "Host: pgo-http:80" -H "x-swimlane: bench" \
	http://127.0.0.1:28095/ >"$work/fortio.log" 2>&1
grep -q "Code 200" "$work/fortio.log" || { cat "$work/fortio.log" "$work"/*.log >&2; echo "pgo.sh: the load got no answers" >&2; exit 1; }
taskset -c $load wrk -t1 -c32 -d10s -H "Host: pgo-http:80" -H "x-swimlane: bench" http://127.0.0.1:28095/ | grep Requests/sec
kill $outbound $inbound
wait $outbound $inbound || true
go tool pprof -proto "$work/outbound.pprof" "$work/inbound.pprof" >../cmd/swimlane-proxy/default.pgo
echo "wrote cmd/swimlane-proxy/default.pgo ($(wc -c <../cmd/swimlane-proxy/default.pgo) bytes)"

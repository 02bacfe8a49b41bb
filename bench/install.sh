#!/usr/bin/env bash
# Installs the benchmark's tools, idempotently. Whatever fails is skipped and recorded as
# "not available" in bench/.tools/status.txt (the harness then leaves that target out).
# Debian packages: nginx, haproxy, wrk, h2load (nghttp2-client). Go tools into bench/.tools:
# fortio (v1.68.2: newer ones do not install from the module proxy) and caddy.
# --smoke: skip Caddy (its build takes minutes); the smoke run reports it as not available.
set -uo pipefail
cd "$(dirname "$0")"
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
TOOLS="$PWD/.tools"
mkdir -p "$TOOLS"
export PATH="$PATH:/usr/local/go/bin"
STATUS="$TOOLS/status.txt"
: >"$STATUS"
note() { echo "$1: $2" | tee -a "$STATUS"; }

FORTIO_VERSION=${FORTIO_VERSION:-v1.68.2}
CADDY_VERSION=${CADDY_VERSION:-v2.10.2}

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo -n"; fi

apt_pkgs=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_pkgs+=(nginx)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || apt_pkgs+=(haproxy)
command -v wrk >/dev/null || apt_pkgs+=(wrk)
command -v h2load >/dev/null || apt_pkgs+=(nghttp2-client)
command -v taskset >/dev/null || apt_pkgs+=(util-linux)
# nginx's TCP proxy (stream) is a separate module package on Debian.
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || apt_pkgs+=(libnginx-mod-stream)
if [ ${#apt_pkgs[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null 2>&1 || true
  for p in "${apt_pkgs[@]}"; do
    if [ "$p" = nginx ]; then
      # nginx-light is the smallest build where it exists (Debian 11/12); plain nginx elsewhere.
      $SUDO apt-get install -y -qq --no-install-recommends nginx-light >/dev/null 2>&1 ||
        $SUDO apt-get install -y -qq --no-install-recommends nginx >/dev/null 2>&1 || true
    else
      $SUDO apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 || true
    fi
  done
  # The packages start system services; the benchmark runs its own instances on free ports.
  for s in nginx haproxy; do
    $SUDO systemctl stop "$s" >/dev/null 2>&1 || $SUDO service "$s" stop >/dev/null 2>&1 || true
  done
fi

find_bin() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; }; }
for t in nginx haproxy wrk h2load taskset; do
  if b=$(find_bin "$t") && [ -n "$b" ]; then note "$t" "$b"; else note "$t" "not available"; fi
done

goinstall() { # name module@version
  local name=$1 mod=$2
  if [ -x "$TOOLS/$name" ] && [ -f "$TOOLS/$name.version" ] && [ "$(cat "$TOOLS/$name.version")" = "$mod" ]; then
    note "$name" "$TOOLS/$name"
    return
  fi
  if GOBIN="$TOOLS" GOFLAGS=-mod=mod go install "$mod" >"$TOOLS/$name.log" 2>&1; then
    echo "$mod" >"$TOOLS/$name.version"
    note "$name" "$TOOLS/$name"
  else
    note "$name" "not available (go install $mod failed: see $TOOLS/$name.log)"
  fi
}
goinstall fortio "fortio.org/fortio@$FORTIO_VERSION"
if [ $SMOKE = 0 ] || [ -x "$TOOLS/caddy" ]; then
  goinstall caddy "github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION"
else
  note caddy "skipped (--smoke)"
fi
exit 0

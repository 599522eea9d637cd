#!/usr/bin/env bash
# Provision HAProxy (Debian's `haproxy` package) for the etcd-vs-confd benchmark
# (bench/etcd-vs-confd.bench.ts). Not needed by `npm test`.
#
# Order of preference:
#   1. $HAPROXY_BIN, if set (must be an executable haproxy binary);
#   2. a `haproxy` on PATH or in /usr/sbin;
#   3. a cached copy in ${PROXYLESS_CACHE:-~/.cache/proxyless}/haproxy/haproxy;
#   4. Debian's `haproxy` package and those of its libraries that are not
#      installed (liblua5.3-0, libopentracing-c-wrapper0, …): `apt-get download`
#      + `dpkg-deb -x` into the cache, run through a wrapper that sets
#      LD_LIBRARY_PATH. Nothing is installed system-wide, no service started;
#   5. as root, `apt-get install -y --no-install-recommends haproxy`.
#
# Prints the absolute path of the binary on the last line of stdout; everything
# else goes to stderr. Exits non-zero with a reason when no binary can be had.
set -euo pipefail

CACHE_ROOT="${PROXYLESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/proxyless}"
CACHE_DIR="$CACHE_ROOT/haproxy"
CACHED_BIN="$CACHE_DIR/haproxy"

log() { printf '[provision-haproxy] %s\n' "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }

report() {
  local bin="$1" how="$2" version
  version="$("$bin" -v 2>/dev/null)" || fail "$bin does not run ('$bin -v' failed)"
  version="${version%%$'\n'*}"
  log "using $how: $bin ($version)"
  printf '%s\n' "$bin"
}

if [[ -n "${HAPROXY_BIN:-}" ]]; then
  [[ -x "$HAPROXY_BIN" ]] || fail "HAPROXY_BIN=$HAPROXY_BIN is not an executable file"
  report "$HAPROXY_BIN" "HAPROXY_BIN"
  exit 0
fi

if on_path="$(PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v haproxy 2>/dev/null)"; then
  report "$on_path" "haproxy on PATH"
  exit 0
fi

if [[ -x "$CACHED_BIN" ]]; then
  report "$CACHED_BIN" "cached copy"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 || fail "no haproxy binary: HAPROXY_BIN is unset, no haproxy on PATH, no cached copy at $CACHED_BIN, and no apt-get to fetch Debian's haproxy package"

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.haproxy.lock"
flock 9
if [[ -x "$CACHED_BIN" ]]; then
  report "$CACHED_BIN" "cached copy"
  exit 0
fi

work="$(mktemp -d "$CACHE_ROOT/haproxy-fetch-XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The packages a Debian package depends on that are not installed here (first alternative of each).
missing_deps() {
  apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances "$1" 2>/dev/null \
    | sed -n 's/^  \(Pre\)\{0,1\}Depends: \([^<>[:space:]]*\)$/\2/p' \
    | while read -r pkg; do dpkg -s "$pkg" >/dev/null 2>&1 || printf '%s\n' "$pkg"; done
}

unpack() {
  local dir="$CACHE_DIR/root" pkgs=(haproxy) seen=" haproxy " queue=(haproxy) next
  # Two levels of missing dependencies (haproxy → libopentracing-c-wrapper0 → libopentracing1).
  for _ in 1 2; do
    next=()
    for p in "${queue[@]}"; do
      while read -r d; do
        [[ -z "$d" || "$seen" == *" $d "* ]] && continue
        seen+="$d "; pkgs+=("$d"); next+=("$d")
      done < <(missing_deps "$p")
    done
    [[ ${#next[@]} -eq 0 ]] && break
    queue=("${next[@]}")
  done
  log "fetching Debian packages ${pkgs[*]} (apt-get download; unpacked into $CACHE_DIR, nothing installed)"
  (cd "$work" && apt-get download -q "${pkgs[@]}" >&2) || return 1
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$dir.tmp"; done
  [[ -x "$dir.tmp/usr/sbin/haproxy" ]] || return 1
  local libs
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  libs="$(find "$dir" -name '*.so*' -printf '%h\n' | sort -u | paste -sd:)"
  # exec keeps argv[0] the real binary: HAProxy's master re-executes it on reload, with this environment.
  printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' "$libs" "$dir/usr/sbin/haproxy" >"$CACHED_BIN.tmp"
  chmod 755 "$CACHED_BIN.tmp"
  "$CACHED_BIN.tmp" -v >/dev/null 2>&1 || { log "the unpacked haproxy does not run: $("$CACHED_BIN.tmp" -v 2>&1 | head -n1)"; rm -f "$CACHED_BIN.tmp"; return 1; }
  mv "$CACHED_BIN.tmp" "$CACHED_BIN"
}

mkdir -p "$CACHE_DIR"
if unpack; then
  report "$CACHED_BIN" "Debian haproxy (unpacked)"
  exit 0
fi

if [[ "$(id -u)" == 0 ]]; then
  log "unpacking did not yield a working haproxy; installing Debian's haproxy (apt-get install -y --no-install-recommends haproxy)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends haproxy >&2 \
    || fail "apt-get install haproxy failed (see above). Run 'apt-get update' first, or set HAPROXY_BIN to a haproxy binary"
  report /usr/sbin/haproxy "Debian haproxy (installed)"
  exit 0
fi
fail "no haproxy: Debian's haproxy package could not be unpacked into $CACHE_DIR, and installing it needs root (sudo apt-get install haproxy), or set HAPROXY_BIN to a haproxy binary"

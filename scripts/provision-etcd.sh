#!/usr/bin/env bash
# Provision the real etcd server for tests, the demo and benchmarks.
#
# Order of preference:
#   1. $ETCD_BIN, if set (must be an executable etcd binary);
#   2. an `etcd` on PATH;
#   3. a cached copy in ${PROXYLESS_CACHE:-~/.cache/proxyless}/etcd/etcd;
#   4. Debian's `etcd-server` package: `apt-get download` + `dpkg-deb -x` into the
#      cache. Nothing is installed system-wide (no root needed, no service started);
#   5. a build from etcd's Go module go.etcd.io/etcd/server/v3@<version> through the
#      Go module proxy (its go.mod `replace` lines point at sibling folders the
#      module zip does not contain; they are dropped, the pinned versions are used).
# PROXYLESS_ETCD_SOURCE=go skips 2-4 (to exercise the Go build).
#
# Prints the absolute path of the binary on the last line of stdout; everything
# else goes to stderr. Exits non-zero with a reason when no binary can be had.
set -euo pipefail

ETCD_GO_VERSION="${PROXYLESS_ETCD_VERSION:-3.5.21}"
CACHE_ROOT="${PROXYLESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/proxyless}"
SOURCE="${PROXYLESS_ETCD_SOURCE:-any}"
if [[ "$SOURCE" == go ]]; then CACHE_DIR="$CACHE_ROOT/etcd-go-$ETCD_GO_VERSION"; else CACHE_DIR="$CACHE_ROOT/etcd"; fi
CACHED_BIN="$CACHE_DIR/etcd"

log() { printf '[provision-etcd] %s\n' "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }

report() {
  local bin="$1" how="$2" version
  version="$("$bin" --version 2>/dev/null)" || fail "$bin does not run ('$bin --version' failed)"
  version="${version%%$'\n'*}"
  log "using $how: $bin ($version)"
  printf '%s\n' "$bin"
}

if [[ -n "${ETCD_BIN:-}" ]]; then
  [[ -x "$ETCD_BIN" ]] || fail "ETCD_BIN=$ETCD_BIN is not an executable file"
  report "$ETCD_BIN" "ETCD_BIN"
  exit 0
fi

if [[ "$SOURCE" != go ]] && on_path="$(command -v etcd 2>/dev/null)"; then
  report "$on_path" "etcd on PATH"
  exit 0
fi

if [[ -x "$CACHED_BIN" ]]; then
  report "$CACHED_BIN" "cached copy"
  exit 0
fi

mkdir -p "$CACHE_ROOT"
# One provisioner at a time (parallel test runs share the cache).
exec 9>"$CACHE_ROOT/.etcd.lock"
flock 9
if [[ -x "$CACHED_BIN" ]]; then
  report "$CACHED_BIN" "cached copy"
  exit 0
fi

work="$(mktemp -d "$CACHE_ROOT/etcd-build-XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
started=$(date +%s)

install_bin() {
  mkdir -p "$CACHE_DIR"
  cp "$1" "$CACHED_BIN.tmp"
  chmod 755 "$CACHED_BIN.tmp"
  mv "$CACHED_BIN.tmp" "$CACHED_BIN"
}

if [[ "$SOURCE" != go ]] && command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then
  log "fetching Debian's etcd-server package (apt-get download; unpacked into $CACHE_DIR, nothing installed)"
  if (cd "$work" && apt-get download -q etcd-server >&2) && deb="$(ls "$work"/etcd-server_*.deb 2>/dev/null | head -n1)" && [[ -n "$deb" ]]; then
    dpkg-deb -x "$deb" "$work/root"
    if [[ -x "$work/root/usr/bin/etcd" ]] && "$work/root/usr/bin/etcd" --version >/dev/null 2>&1; then
      install_bin "$work/root/usr/bin/etcd"
      log "unpacked $(basename "$deb") in $(( $(date +%s) - started ))s"
      report "$CACHED_BIN" "Debian etcd-server"
      exit 0
    fi
    log "the Debian package did not yield a working etcd; trying a Go build"
  else
    log "apt-get download etcd-server failed; trying a Go build"
  fi
fi

command -v go >/dev/null 2>&1 || fail "no etcd binary: ETCD_BIN is unset, no etcd on PATH, no cached copy at $CACHED_BIN, Debian's etcd-server could not be fetched, and no 'go' toolchain to build go.etcd.io/etcd/server/v3@v$ETCD_GO_VERSION"

log "building etcd v$ETCD_GO_VERSION from its Go module with $(go version) (one-off, cached in $CACHE_DIR)"
module_dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "go.etcd.io/etcd/server/v3@v$ETCD_GO_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" || true
[[ -n "$module_dir" && -d "$module_dir" ]] || fail "could not download go.etcd.io/etcd/server/v3@v$ETCD_GO_VERSION from $(go env GOPROXY)"
src="$work/src"
cp -r "$module_dir" "$src"
chmod -R u+w "$src"
# Drop `replace ... => ../sibling` lines (single-line and inside a replace block).
sed -i -E '/^[[:space:]]*(replace[[:space:]]+)?[^[:space:]]+([[:space:]]+v[^[:space:]]+)?[[:space:]]+=>[[:space:]]+\.\.?\//d' "$src/go.mod"
sed -i -E '/^replace[[:space:]]*\([[:space:]]*$/{N;/\n[[:space:]]*\)/d}' "$src/go.mod"
(
  cd "$src"
  GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/etcd" . >&2
) || fail "go build of etcd v$ETCD_GO_VERSION failed (see the compiler output above); pin another version with PROXYLESS_ETCD_VERSION or set ETCD_BIN"
install_bin "$work/etcd"
log "built in $(( $(date +%s) - started ))s"
report "$CACHED_BIN" "fresh build"

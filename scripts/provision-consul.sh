#!/usr/bin/env bash
# Provision the real Consul agent for tests, the demo and benchmarks.
#
# Order of preference:
#   1. $CONSUL_BIN, if set (must be an executable consul binary);
#   2. a `consul` on PATH;
#   3. a cached build in ${PROXYLESS_CACHE:-~/.cache/proxyless}/consul-<version>/consul;
#   4. a fresh build from the Go module github.com/hashicorp/consul@<version>.
# No registry reachable here ships Consul, so (4) downloads the module through the
# Go module proxy, drops the go.mod `replace` lines that point at sibling folders
# (the module zip does not contain them; the pinned sub-module versions are used
# instead) and builds with -mod=mod.
#
# Prints the absolute path of the binary on the last line of stdout; everything
# else goes to stderr. Exits non-zero with a reason when no binary can be had.
set -euo pipefail

CONSUL_VERSION="${PROXYLESS_CONSUL_VERSION:-1.22.7}"
# The root module's go.mod pins github.com/hashicorp/consul/api v1.33.7, but
# v1.22.7's sources use API fields (ACLToken.Name, ACLAuthMethod.TokenNameFormat)
# that only the in-tree ./api had; api v1.34.5 is the first published one that
# builds with it. (Checked: the plain build fails with "token.Name undefined".)
CONSUL_API_VERSION="${PROXYLESS_CONSUL_API_VERSION:-v1.34.5}"
CACHE_ROOT="${PROXYLESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/proxyless}"
CACHE_DIR="$CACHE_ROOT/consul-$CONSUL_VERSION"
CACHED_BIN="$CACHE_DIR/consul"

log() { printf '[provision-consul] %s\n' "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }

report() {
  local bin="$1" how="$2" version
  # Capture all of it: `| head -n1` would SIGPIPE consul and, under pipefail, fail at random.
  version="$("$bin" version 2>/dev/null)" || fail "$bin does not run ('$bin version' failed)"
  version="${version%%$'\n'*}"
  log "using $how: $bin ($version)"
  printf '%s\n' "$bin"
}

if [[ -n "${CONSUL_BIN:-}" ]]; then
  [[ -x "$CONSUL_BIN" ]] || fail "CONSUL_BIN=$CONSUL_BIN is not an executable file"
  report "$CONSUL_BIN" "CONSUL_BIN"
  exit 0
fi

if on_path="$(command -v consul 2>/dev/null)"; then
  report "$on_path" "consul on PATH"
  exit 0
fi

if [[ -x "$CACHED_BIN" ]]; then
  report "$CACHED_BIN" "cached build"
  exit 0
fi

command -v go >/dev/null 2>&1 || fail "no consul binary: CONSUL_BIN is unset, no consul on PATH, no cached build at $CACHED_BIN, and no 'go' toolchain to build github.com/hashicorp/consul@v$CONSUL_VERSION"

mkdir -p "$CACHE_ROOT"
# One builder at a time (parallel test runs share the cache).
exec 9>"$CACHE_ROOT/.consul-$CONSUL_VERSION.lock"
flock 9
if [[ -x "$CACHED_BIN" ]]; then
  report "$CACHED_BIN" "cached build"
  exit 0
fi

started=$(date +%s)
log "building consul v$CONSUL_VERSION from its Go module with $(go version) (one-off, cached in $CACHE_DIR)"
work="$(mktemp -d "$CACHE_ROOT/build-XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

module_dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/hashicorp/consul@v$CONSUL_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" || true
[[ -n "$module_dir" && -d "$module_dir" ]] || fail "could not download github.com/hashicorp/consul@v$CONSUL_VERSION from $(go env GOPROXY)"

src="$work/src"
cp -r "$module_dir" "$src"
chmod -R u+w "$src"
# Drop `replace ... => ./sibling` lines (single-line and inside a replace block).
sed -i -E '/^[[:space:]]*(replace[[:space:]]+)?[^[:space:]]+([[:space:]]+v[^[:space:]]+)?[[:space:]]+=>[[:space:]]+\.\.?\//d' "$src/go.mod"
sed -i -E '/^replace[[:space:]]*\([[:space:]]*$/{N;/\n[[:space:]]*\)/d}' "$src/go.mod"
(cd "$src" && go mod edit -require="github.com/hashicorp/consul/api@$CONSUL_API_VERSION")

(
  cd "$src"
  GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 \
    go build -trimpath -ldflags "-s -w -X github.com/hashicorp/consul/version.GitCommit=v$CONSUL_VERSION" -o "$work/consul" . >&2
) || fail "go build of consul v$CONSUL_VERSION failed (see the compiler output above); pin another version with PROXYLESS_CONSUL_VERSION"

mkdir -p "$CACHE_DIR"
mv "$work/consul" "$CACHED_BIN.tmp"
mv "$CACHED_BIN.tmp" "$CACHED_BIN"
log "built in $(( $(date +%s) - started ))s"
report "$CACHED_BIN" "fresh build"

#!/usr/bin/env bash
# Provision confd (kelseyhightower/confd) for the etcd-vs-confd benchmark
# (bench/etcd-vs-confd.bench.ts). Not needed by `npm test`.
#
# Order of preference:
#   1. $CONFD_BIN, if set (must be an executable confd binary);
#   2. a `confd` on PATH;
#   3. a cached build in ${PROXYLESS_CACHE:-~/.cache/proxyless}/confd/confd;
#   4. a build from confd's Go module github.com/kelseyhightower/confd@v<version>
#      through the Go module proxy.
#
# Why (4) needs a hand-written go.mod: confd v0.16.0 (its last release, 2018)
# predates Go modules; its dependencies are pinned by dep (Gopkg.lock), so
# `go install github.com/kelseyhightower/confd@v0.16.0` (or `go mod tidy`) picks
# the newest versions of everything, which no longer build together. Here every
# dependency is pinned to its Gopkg.lock version. Where Gopkg.lock tracks a
# branch at a bare commit, the proxy refuses commit queries (403), so the
# nearest published version stands in (listed below). Every backend is built
# (etcd, etcdv3, consul, vault, redis, zookeeper, dynamodb, ssm, rancher, env, file).
#
# Prints the absolute path of the binary on the last line of stdout; everything
# else goes to stderr. Exits non-zero with a reason when no binary can be had.
set -euo pipefail

CONFD_VERSION="${PROXYLESS_CONFD_VERSION:-0.16.0}"
CACHE_ROOT="${PROXYLESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/proxyless}"
CACHE_DIR="$CACHE_ROOT/confd"
CACHED_BIN="$CACHE_DIR/confd"

log() { printf '[provision-confd] %s\n' "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }

report() {
  local bin="$1" how="$2" version
  version="$("$bin" -version 2>/dev/null)" || fail "$bin does not run ('$bin -version' failed)"
  version="${version%%$'\n'*}"
  log "using $how: $bin ($version)"
  printf '%s\n' "$bin"
}

if [[ -n "${CONFD_BIN:-}" ]]; then
  [[ -x "$CONFD_BIN" ]] || fail "CONFD_BIN=$CONFD_BIN is not an executable file"
  report "$CONFD_BIN" "CONFD_BIN"
  exit 0
fi

if on_path="$(command -v confd 2>/dev/null)"; then
  report "$on_path" "confd on PATH"
  exit 0
fi

if [[ -x "$CACHED_BIN" ]]; then
  report "$CACHED_BIN" "cached build"
  exit 0
fi

command -v go >/dev/null 2>&1 || fail "no confd binary: CONFD_BIN is unset, no confd on PATH, no cached build at $CACHED_BIN, and no 'go' toolchain to build github.com/kelseyhightower/confd@v$CONFD_VERSION (Debian has no confd package)"

mkdir -p "$CACHE_ROOT"
# One builder at a time (parallel runs share the cache).
exec 9>"$CACHE_ROOT/.confd.lock"
flock 9
if [[ -x "$CACHED_BIN" ]]; then
  report "$CACHED_BIN" "cached build"
  exit 0
fi

started=$(date +%s)
log "building confd v$CONFD_VERSION from its Go module with $(go version) (one-off, cached in $CACHE_DIR)"
work="$(mktemp -d "$CACHE_ROOT/confd-build-XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

module_dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/kelseyhightower/confd@v$CONFD_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" || true
[[ -n "$module_dir" && -d "$module_dir" ]] || fail "could not download github.com/kelseyhightower/confd@v$CONFD_VERSION from $(go env GOPROXY)"

src="$work/src"
cp -r "$module_dir" "$src"
chmod -R u+w "$src"
[[ -f "$src/go.mod" ]] && fail "confd v$CONFD_VERSION ships a go.mod; this script's pins are for v0.16.0's Gopkg.lock (set CONFD_BIN, or update the script)"

# Gopkg.lock of v0.16.0, version by version. Stand-ins (Gopkg.lock revision → published version):
#   golang/snappy 553a641 → v0.0.1; hashicorp/errwrap 7554cd9 → v1.0.0; go-cleanhttp d5fe4b5 → v0.5.0;
#   go-multierror b7773ae → v1.0.0; go-rootcerts 6bb64b3 → v1.0.0; go-sockaddr 6d291a9 → v1.0.0;
#   hashicorp/hcl ef8a98b → v1.0.0; mitchellh/go-homedir b8bc1bf → v1.0.0; mitchellh/mapstructure 00c29f5 → v1.1.2;
#   ryanuber/go-glob v0.1 → v1.0.0 (v0.1 is no valid module version); golang.org/x/{crypto,net,sys} and genproto
#   (branch master in 2018) → 2018 pseudo-versions. The others are the
#   exact locked versions or commits (as pseudo-versions).
cat >"$src/go.mod" <<'EOF'
module github.com/kelseyhightower/confd

go 1.12

require (
	github.com/BurntSushi/toml v0.3.0
	github.com/aws/aws-sdk-go v1.13.41
	github.com/coreos/etcd v3.3.4+incompatible
	github.com/coreos/go-semver v0.2.0
	github.com/fsnotify/fsnotify v1.4.7
	github.com/garyburd/redigo v1.6.0
	github.com/go-ini/ini v1.36.0
	github.com/gogo/protobuf v1.0.0
	github.com/golang/protobuf v1.1.0
	github.com/golang/snappy v0.0.1
	github.com/hashicorp/consul v1.0.7
	github.com/hashicorp/errwrap v1.0.0
	github.com/hashicorp/go-cleanhttp v0.5.0
	github.com/hashicorp/go-multierror v1.0.0
	github.com/hashicorp/go-rootcerts v1.0.0
	github.com/hashicorp/go-sockaddr v1.0.0
	github.com/hashicorp/hcl v1.0.0
	github.com/hashicorp/serf v0.8.1
	github.com/hashicorp/vault v0.10.1
	github.com/jmespath/go-jmespath v0.0.0-20160202185014-0b12d6b521d8
	github.com/kelseyhightower/memkv v0.1.1
	github.com/mitchellh/go-homedir v1.0.0
	github.com/mitchellh/mapstructure v1.1.2
	github.com/ryanuber/go-glob v1.0.0
	github.com/samuel/go-zookeeper v0.0.0-20180130194729-c4fab1ac1bec
	github.com/sethgrid/pester v0.0.0-20180430140037-03e26c9abbbf
	github.com/sirupsen/logrus v1.0.5
	github.com/ugorji/go v1.1.1
	github.com/xordataexchange/crypt v0.0.3-0.20170626215501-b2862e3d0a77
	golang.org/x/crypto v0.0.0-20180904163835-0709b304e793
	golang.org/x/net v0.0.0-20180724234803-3673e40ba225
	golang.org/x/sys v0.0.0-20180830151530-49385e6e1522
	golang.org/x/text v0.3.0
	google.golang.org/genproto v0.0.0-20180817151627-c66870c02cf8
	google.golang.org/grpc v1.11.3
	gopkg.in/yaml.v2 v2.2.1
)
EOF

(
  cd "$src"
  GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 \
    go build -trimpath -ldflags "-s -w" -o "$work/confd" . >&2
) || fail "go build of confd v$CONFD_VERSION failed (see the compiler output above); set CONFD_BIN to a confd binary"

mkdir -p "$CACHE_DIR"
mv "$work/confd" "$CACHED_BIN.tmp"
mv "$CACHED_BIN.tmp" "$CACHED_BIN"
log "built in $(( $(date +%s) - started ))s"
report "$CACHED_BIN" "fresh build"

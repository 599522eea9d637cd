#!/usr/bin/env bash
# Provision the headless Chromium the browser tests drive (Debian's package).
#
# Order of preference:
#   1. $CHROMIUM_BIN, if set (must be an executable Chromium or Chrome);
#   2. Debian's /usr/bin/chromium, when installed;
#   3. installing Debian's `chromium` package with apt-get (as root, or through
#      passwordless sudo), running `apt-get update` first when the package
#      lists do not know it.
# Playwright's own browser download is not used: release binaries are not
# fetched on this project's machines; Debian's package is signed and patched.
#
# Prints the absolute path of the binary on the last line of stdout; everything
# else goes to stderr. Exits non-zero with the reason and what to do when no
# Chromium can be had (the browser tests never skip).
set -euo pipefail

DEBIAN_BIN="${PROXYLESS_CHROMIUM_DEBIAN_BIN:-/usr/bin/chromium}" # overridable for the script's own test
CACHE_ROOT="${PROXYLESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/proxyless}"

log() { printf '[provision-chromium] %s\n' "$*" >&2; }
fail() {
  log "ERROR: $*"
  log "Install it yourself (Debian/Ubuntu: sudo apt-get install chromium) or point CHROMIUM_BIN at a Chromium or Chrome binary, then run npm test again."
  exit 1
}

report() {
  local bin="$1" how="$2" version
  version="$("$bin" --version 2>/dev/null)" || fail "$bin does not run ('$bin --version' failed)"
  log "using $how: $bin (${version%%$'\n'*})"
  printf '%s\n' "$bin"
}

if [[ -n "${CHROMIUM_BIN:-}" ]]; then
  [[ -x "$CHROMIUM_BIN" ]] || fail "CHROMIUM_BIN=$CHROMIUM_BIN is not an executable file"
  report "$CHROMIUM_BIN" "CHROMIUM_BIN"
  exit 0
fi

if [[ -x "$DEBIAN_BIN" ]]; then
  report "$DEBIAN_BIN" "Debian's chromium"
  exit 0
fi

# Not installed: install Debian's package, as root or through passwordless sudo.
command -v apt-get >/dev/null 2>&1 || fail "Chromium is missing ($DEBIAN_BIN) and this machine has no apt-get to install Debian's chromium package"
as_root=()
if [[ "$(id -u)" != 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    fail "Chromium is missing ($DEBIAN_BIN); installing Debian's chromium package needs root, and this user ($(id -un)) is not root and has no passwordless sudo"
  fi
fi

mkdir -p "$CACHE_ROOT"
# One installer at a time (parallel test runs); dpkg's own lock is waited for too.
exec 9>"$CACHE_ROOT/.chromium.lock"
flock 9
if [[ -x "$DEBIAN_BIN" ]]; then
  report "$DEBIAN_BIN" "Debian's chromium (installed by a parallel run)"
  exit 0
fi

started=$(date +%s)
apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600)
log "Chromium is missing: installing Debian's chromium package with apt-get (one-off)"
if ! "${apt[@]}" install chromium >&2; then
  log "apt-get install failed; refreshing the package lists (apt-get update) and trying once more"
  "${apt[@]}" update >&2 || fail "apt-get update failed (no network to the Debian mirror?)"
  "${apt[@]}" install chromium >&2 || fail "apt-get install chromium failed (see apt's output above)"
fi
[[ -x "$DEBIAN_BIN" ]] || fail "apt-get installed chromium but $DEBIAN_BIN is not there"
log "installed in $(( $(date +%s) - started ))s"
report "$DEBIAN_BIN" "Debian's chromium (just installed)"

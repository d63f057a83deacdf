#!/usr/bin/env bash
# Installs what the dashboard's browser test (tests/browser/) needs and prints the directory
# whose node_modules holds its packages:
# - Debian's chromium package (apt-get, as root) when /usr/bin/chromium is missing; the test
#   drives that browser, never one downloaded by a package;
# - `npm ci` of tests/browser/package-lock.json (playwright-core, from the npm registry) into
#   ${XDG_CACHE_HOME:-$HOME/.cache}/credence/browser-<hash of the lock>/, once per lock; later
#   calls only print. Nothing is written into the work tree.
#
#   deps="$(deploy/local/browser.sh)"
#   BROWSER_DEPS="$deps" CREDENCE_DASHBOARD_URL=http://127.0.0.1:8080/ node tests/browser/dashboard.test.mjs
#
# CHROMIUM names another browser binary (then nothing is installed through apt-get).
set -euo pipefail

CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
src="$root/tests/browser"

log() { printf '[browser.sh] %s\n' "$*" >&2; }
die() { printf '[browser.sh] ERROR: %s\n' "$*" >&2; exit 1; }

# ---- the browser ---------------------------------------------------------------------------
if [[ ! -x $CHROMIUM ]]; then
    [[ $CHROMIUM == /usr/bin/chromium ]] || die "CHROMIUM=$CHROMIUM is not an executable"
    [[ $(id -u) -eq 0 ]] || die "no $CHROMIUM: install Debian's chromium package (apt-get install chromium) as root"
    command -v apt-get >/dev/null || die "no $CHROMIUM and no apt-get: install Chromium and set CHROMIUM to its binary"
    log "installing Debian's chromium package (once per machine)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends chromium >&2 || die "apt-get install chromium failed"
    [[ -x $CHROMIUM ]] || die "the chromium package did not install $CHROMIUM"
fi

# ---- the node packages ---------------------------------------------------------------------
command -v node >/dev/null || die "no node on PATH: install Node.js 20 or newer"
command -v npm >/dev/null || die "no npm on PATH: install npm (it comes with Node.js)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
    || die "node is $(node --version); the browser test needs Node.js 20 or newer"
[[ -f $src/package-lock.json ]] || die "no $src/package-lock.json"

key="$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-12)"
home="$CACHE_HOME/credence/browser-$key"
marker="$home/.credence-ready"

mkdir -p "$(dirname "$home")"
exec 9>"$home.lock"
command -v flock >/dev/null && flock 9
if [[ ! -f $marker || ! -d $home/node_modules/playwright-core ]]; then
    log "installing the locked packages into $home (once per lock)"
    rm -rf "$home"
    mkdir -p "$home"
    cp "$src/package.json" "$src/package-lock.json" "$home/"
    # No install scripts: playwright-core has none that matter, and none may fetch a browser.
    (cd "$home" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2) \
        || die "npm ci failed (it needs the npm registry)"
    touch "$marker"
fi
echo "$home"

#!/usr/bin/env bash
# Prints the path of a grpcurl binary, building it on first use from the Go module proxy into
# ${XDG_CACHE_HOME:-$HOME/.cache}/credence/grpcurl-<version>/grpcurl. Later calls only print.
#
#   "$(deploy/local/grpcurl.sh)" -plaintext 127.0.0.1:50051 list
#
# GRPCURL_VERSION overrides the pinned version. Why not `go install MODULE@VERSION`: it asks
# the proxy for the module's version list, which is refused here (403); `go mod download` of
# an exact version works (as in stack.sh), so the module is downloaded, copied and built.
set -euo pipefail

GRPCURL_VERSION="${GRPCURL_VERSION:-v1.9.3}"
MODULE=github.com/fullstorydev/grpcurl
CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}"
home="$CACHE_HOME/credence/grpcurl-$GRPCURL_VERSION"
bin="$home/grpcurl"

if [[ -x $bin ]]; then
    echo "$bin"
    exit 0
fi

log() { printf '[grpcurl.sh] %s\n' "$*" >&2; }
die() { printf '[grpcurl.sh] ERROR: %s\n' "$*" >&2; exit 1; }

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
    PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null || die "no Go toolchain on PATH or in /usr/local/go/bin: install Go (1.21 or newer) first"

# Go's module and build caches live beside the binary, so nothing outside the cache changes.
export GOMODCACHE="$CACHE_HOME/credence/go/mod" GOCACHE="$CACHE_HOME/credence/go/build"
export GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -mod=mod" CGO_ENABLED=0
mkdir -p "$home"
work="$(mktemp -d "$home/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log "fetching $MODULE@$GRPCURL_VERSION (Go module proxy)"
dir=$(go mod download -json "$MODULE@$GRPCURL_VERSION" | awk -F'"' '/"Dir":/ { print $4 }')
[[ -n $dir && -d $dir ]] || die "go mod download $MODULE@$GRPCURL_VERSION failed"
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
log "building grpcurl $GRPCURL_VERSION (about a minute the first time)"
if ! (cd "$work/src" && go build -trimpath -ldflags "-X main.version=$GRPCURL_VERSION" \
    -o "$work/grpcurl" ./cmd/grpcurl) >"$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log" >&2
    die "go build of $MODULE@$GRPCURL_VERSION failed"
fi
mv -f "$work/grpcurl" "$bin"
echo "$bin"

#!/usr/bin/env bash
# Prints the path of a Python interpreter inside a virtualenv that has grpcio and grpcio-tools,
# creating the virtualenv on first use (from the Python package registry, through pip) in
# ${XDG_CACHE_HOME:-$HOME/.cache}/credence/python-grpc-<grpcio version>/. Later calls only print.
#
#   "$(deploy/local/python-env.sh)" docs/examples/python/quickstart.py
#
# PYTHON picks the base interpreter (default python3, 3.10 or newer). GRPCIO_VERSION and
# PROTOBUF_VERSION override the pins; grpcio-tools is always pinned to the grpcio version.
set -euo pipefail

GRPCIO_VERSION="${GRPCIO_VERSION:-1.85.1}"
PROTOBUF_VERSION="${PROTOBUF_VERSION:-7.36.2}"   # what grpcio-tools 1.85.1 asks for: >=7.35.1,<8
PYTHON="${PYTHON:-python3}"
CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}"
home="$CACHE_HOME/credence/python-grpc-$GRPCIO_VERSION"
python="$home/bin/python"
# Written last: a folder without it is a half-made virtualenv and is made again.
marker="$home/.credence-ready"

if [[ -f $marker && -x $python ]]; then
    echo "$python"
    exit 0
fi

log() { printf '[python-env.sh] %s\n' "$*" >&2; }
die() { printf '[python-env.sh] ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null \
    || die "no '$PYTHON' on PATH: install Python 3.10 or newer (or set PYTHON=/path/to/python3)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "$PYTHON is $("$PYTHON" -V 2>&1); grpcio-tools $GRPCIO_VERSION needs Python 3.10 or newer"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
    || die "$PYTHON has no venv/ensurepip module (on Debian and Ubuntu: apt-get install python3-venv)"

mkdir -p "$(dirname "$home")"
# One creator at a time (two test runs may start together); the second one waits, then prints.
exec 9>"$home.lock"
command -v flock >/dev/null && flock 9
if [[ -f $marker && -x $python ]]; then
    echo "$python"
    exit 0
fi

rm -rf "$home"
log "creating $home with $("$PYTHON" -V 2>&1) (once; about half a minute)"
"$PYTHON" -m venv "$home" || die "$PYTHON -m venv $home failed"
if ! "$python" -m pip install --disable-pip-version-check --no-input --quiet \
    "grpcio==$GRPCIO_VERSION" "grpcio-tools==$GRPCIO_VERSION" "protobuf==$PROTOBUF_VERSION" >&2; then
    rm -rf "$home"
    die "pip could not install grpcio==$GRPCIO_VERSION grpcio-tools==$GRPCIO_VERSION protobuf==$PROTOBUF_VERSION from the Python package registry"
fi
"$python" -c 'import grpc, grpc_tools.protoc' || { rm -rf "$home"; die "the new virtualenv cannot import grpc and grpc_tools"; }
touch "$marker"
echo "$python"

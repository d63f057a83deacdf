#!/usr/bin/env bash
# Builds the Python SDK (sdk-python, through maturin) into a virtualenv with what its tests,
# type checks and notebook need, and prints that virtualenv's Python. The virtualenv is made
# once per set of pins (from the Python package registry, through pip) in
# ${XDG_CACHE_HOME:-$HOME/.cache}/credence/python-sdk-<hash of the pins>/; the SDK itself is
# rebuilt and reinstalled on every call (cargo makes that quick when nothing changed).
#
#   PY="$(deploy/local/python-sdk.sh)"; "$PY" -c 'import credence; print(credence.__version__)'
#
# SDK_PROFILE=release|dev (default release) is the cargo profile of the native module: the
# tests use dev, which builds in a fraction of the time. CARGO_TARGET_DIR is honoured.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
SDK_PROFILE="${SDK_PROFILE:-release}"
CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}"
root="$(cd "$(dirname "$0")/../.." && pwd)"

# Exact pins: a fresh machine gets what the tests were written against.
pins=(
    maturin==1.16.0
    pyarrow==26.0.1
    pandas==3.1.1
    pandas-stubs==3.1.0.261029
    polars==2.1.0
    pytest==9.2.0
    pytest-timeout==2.4.0
    mypy==2.4.1
    nbclient==0.11.0
    nbformat==5.11.1
    ipykernel==7.4.0
    matplotlib==3.11.2
)
key="$(printf '%s\n' "$("$PYTHON" -V 2>&1)" "${pins[@]}" | sha256sum | cut -c1-12)"
home="$CACHE_HOME/credence/python-sdk-$key"
python="$home/bin/python"
marker="$home/.credence-ready"

log() { printf '[python-sdk.sh] %s\n' "$*" >&2; }
die() { printf '[python-sdk.sh] ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "no '$PYTHON' on PATH: install Python 3.10 or newer"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "$PYTHON is $("$PYTHON" -V 2>&1); the SDK needs Python 3.10 or newer"

mkdir -p "$(dirname "$home")"
exec 9>"$home.lock"
command -v flock >/dev/null && flock 9
if [[ ! -f $marker || ! -x $python ]]; then
    log "creating $home (once per set of pins)"
    rm -rf "$home"
    "$PYTHON" -m venv "$home" || die "cannot create a virtualenv (on Debian: apt-get install python3-venv)"
    "$python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2 \
        || die "pip could not install the pinned packages from the Python package registry"
    # The notebook runs on this virtualenv's kernel.
    "$python" -m ipykernel install --prefix "$home" --name python3 >/dev/null 2>&1 \
        || die "cannot register the notebook kernel"
    touch "$marker"
fi

# maturin's pip backend reads its cargo arguments from MATURIN_PEP517_ARGS.
export PATH="$home/bin:$PATH"
export MATURIN_PEP517_ARGS="--profile $SDK_PROFILE --locked"
log "building the SDK ($SDK_PROFILE profile)"
"$python" -m pip install --quiet --disable-pip-version-check --no-build-isolation \
    --force-reinstall --no-deps "$root/sdk-python" >&2 \
    || die "building the Python SDK failed (the output above says why)"
echo "$python"

#!/usr/bin/env bash
# Fetches the prebuilt DuckDB shared library the embedded backend links against, once, into
# the user cache, and prints the folder holding it (for DUCKDB_LIB_DIR).
#
# Why: compiling DuckDB's C++ from source (the `bundled` feature of the duckdb crate) takes
# 27 minutes for a debug build and about 50 for a release build on a two-core machine. The
# npm registry ships the same library, built by the DuckDB project, in its Node bindings.
set -euo pipefail

DUCKDB_PACKAGE_VERSION="${DUCKDB_PACKAGE_VERSION:-1.5.6-r.1}"   # DuckDB 1.5.6, as the duckdb crate =1.10506.1
CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}"
dir="$CACHE_HOME/credence/duckdb-$DUCKDB_PACKAGE_VERSION"

if [[ ! -f "$dir/libduckdb.so" ]]; then
    case "$(uname -s)-$(uname -m)" in
        Linux-x86_64) platform=linux-x64 ;;
        Linux-aarch64) platform=linux-arm64 ;;
        *) echo "duckdb.sh: no prebuilt DuckDB for $(uname -s)-$(uname -m); build with the duckdb crate's 'bundled' feature" >&2; exit 1 ;;
    esac
    command -v npm >/dev/null || { echo "duckdb.sh: npm is needed to fetch the prebuilt DuckDB library" >&2; exit 1; }
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && npm pack --silent "@duckdb/node-bindings-$platform@$DUCKDB_PACKAGE_VERSION" >/dev/null)
    tar -xzf "$work"/*.tgz -C "$work"
    mkdir -p "$dir.tmp"
    cp "$work/package/libduckdb.so" "$work/package/LICENSE" "$dir.tmp/"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
echo "$dir"

#!/usr/bin/env bash
# Publish rate with tokens and TLS on against off, in one run: a release node on a
# throwaway data directory per round, the load generator against it, rounds alternating
# (off, on, off, on) so drift on the machine hits both alike. Certificates and the token
# are made here (openssl, `credence token new`) and thrown away with the directory.
#
# Usage: loadgen/bench-auth-tls.sh [ROUNDS] [extra credence-loadgen args]
# Needs release binaries: cargo build --release -p credence-server -p credence-loadgen
set -euo pipefail
target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/credence/target}"
bin="${BENCH_BIN_DIR:-$target_dir/release}"
credence="$bin/credence"
loadgen="$bin/credence-loadgen"
rounds="${1:-2}"
shift || true
dir="$(mktemp -d)"
node=""
cleanup() { [ -n "$node" ] && kill "$node" 2>/dev/null && wait "$node" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=bench CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$dir/ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
  -CAcreateserial -days 1 -extfile "$dir/ext" -out "$dir/server.pem" 2>/dev/null
"$credence" token new --name bench --role producer > "$dir/token.out"
token="$(sed -n 2p "$dir/token.out")"
sed -n '/^\[\[token\]\]/,$p' "$dir/token.out" > "$dir/tokens.toml"
cat > "$dir/secure.toml" <<TOML
[auth]
tokens_file = "$dir/tokens.toml"
[tls]
cert_file = "$dir/server.pem"
key_file = "$dir/server.key"
TOML
: > "$dir/plain.toml"

run() { # $1: plain|secure, then loadgen arguments
  local mode="$1"; shift
  rm -rf "$dir/data"
  "$credence" dev --config "$dir/$mode.toml" --data-dir "$dir/data" --listen 127.0.0.1:50151 \
    --metrics-listen "" --dashboard-listen "" --no-demo > "$dir/node.out" 2> "$dir/node.err" & node=$!
  for _ in $(seq 100); do grep -q "listening on" "$dir/node.out" && break; sleep 0.1; done
  local client=(--target http://127.0.0.1:50151)
  [ "$mode" = secure ] && client=(--target https://127.0.0.1:50151 --ca-cert "$dir/ca.pem" --token "$token")
  echo "== $mode"
  "$loadgen" "${client[@]}" --metrics-url "" "$@"
  kill "$node"; wait "$node" 2>/dev/null || true; node=""
}
for _ in $(seq "$rounds"); do
  run plain "$@"
  run secure "$@"
done

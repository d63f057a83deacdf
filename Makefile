# Credence: every day-to-day command. `make help` lists them.
#
# Builds share one target directory outside the work tree, so a fresh clone (CI) reuses
# what an earlier build compiled instead of starting over.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CACHE_HOME ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)
export CARGO_TARGET_DIR ?= $(CACHE_HOME)/credence/target
# No incremental compilation data: CI builds each workspace crate once per run from a fresh
# clone, where it saves nothing, and it grew the shared target by 14 GiB until the disk
# filled. Dependencies are never built incrementally, so their cache is unaffected.
export CARGO_INCREMENTAL ?= 0
export CARGO_TERM_COLOR ?= never
CARGO ?= cargo

# The embedded backend links a prebuilt DuckDB (fetched once into the cache): minutes to
# build instead of the better part of an hour. See deploy/local/duckdb.sh.
ifndef DUCKDB_LIB_DIR
DUCKDB_LIB_DIR := $(shell deploy/local/duckdb.sh)
endif
export DUCKDB_LIB_DIR
export LD_LIBRARY_PATH := $(DUCKDB_LIB_DIR)$(if $(LD_LIBRARY_PATH),:$(LD_LIBRARY_PATH))

RULES ?= scorer/rules/example.yaml
EVENTS ?= docs/examples/events.jsonl
CONTEXTS ?= docs/examples/contexts.jsonl

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

.PHONY: setup
setup: ## Install the toolchain parts the build needs (rustfmt, clippy, DuckDB library) and fetch crates
	@command -v rustup >/dev/null && rustup component add rustfmt clippy >/dev/null 2>&1 || true
	@test -f "$(DUCKDB_LIB_DIR)/libduckdb.so" || { echo "no DuckDB library: deploy/local/duckdb.sh failed (needs npm and the npm registry)"; exit 1; }
	$(CARGO) fetch --locked

.PHONY: dev
dev: setup ## Start a node: all four services on 127.0.0.1:50051, the dashboard on http://127.0.0.1:8080/, data in ./.credence (DEV_ARGS=)
	$(CARGO) run --release --locked -p credence-server -- dev $(DEV_ARGS)

.PHONY: run
run: dev ## Same as `make dev`

.PHONY: simulate
simulate: setup ## Score the example events with the example rule set, offline (RULES=, EVENTS=, CONTEXTS=)
	$(CARGO) run --release -p credence-server -- simulate --rules $(RULES) --events $(EVENTS) --contexts $(CONTEXTS)

.PHONY: check-rules
check-rules: setup ## Validate a rule file and summarise it (RULES=)
	$(CARGO) run --release -p credence-server -- rules check $(RULES)

.PHONY: fmt
fmt: ## Format all Rust code
	$(CARGO) fmt --all

.PHONY: fmt-check
fmt-check: ## Fail when any Rust code is not formatted
	$(CARGO) fmt --all -- --check

.PHONY: clippy
clippy: setup ## Lint every crate and target; warnings are errors
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

.PHONY: test-rust
test-rust: setup ## Run every Rust test (unit, integration, property, doc, end-to-end against a real node)
	$(CARGO) build --locked -p credence-server --bin credence -p credence-loadgen --bin credence-loadgen
	GRPCURL="$$(deploy/local/grpcurl.sh)" CREDENCE_PYTHON="$$(deploy/local/python-env.sh)" \
		CREDENCE_SDK_PYTHON="$$(SDK_PROFILE=$(SDK_TEST_PROFILE) deploy/local/python-sdk.sh)" \
		CREDENCE_BROWSER_DEPS="$$(deploy/local/browser.sh)" \
		$(CARGO) test --workspace --locked

.PHONY: test-e2e
test-e2e: setup ## End-to-end tests only: a real node over gRPC, grpcurl, Python, the load generator, the crash test
	$(CARGO) build --locked -p credence-server --bin credence -p credence-loadgen --bin credence-loadgen
	GRPCURL="$$(deploy/local/grpcurl.sh)" CREDENCE_PYTHON="$$(deploy/local/python-env.sh)" \
		CREDENCE_SDK_PYTHON="$$(SDK_PROFILE=$(SDK_TEST_PROFILE) deploy/local/python-sdk.sh)" \
		CREDENCE_BROWSER_DEPS="$$(deploy/local/browser.sh)" \
		$(CARGO) test --locked -p credence-tests --no-fail-fast

# The Python SDK's native module in tests: a dev build takes a fraction of a release one.
SDK_TEST_PROFILE ?= dev

.PHONY: test-python
test-python: setup ## Python SDK only: build it into its virtualenv, then pytest and mypy --strict against a real node
	$(CARGO) build --locked -p credence-server --bin credence
	CREDENCE_SDK_PYTHON="$$(SDK_PROFILE=$(SDK_TEST_PROFILE) deploy/local/python-sdk.sh)" \
		$(CARGO) test --locked -p credence-tests --test python_sdk -- --nocapture

.PHONY: test-dashboard
test-dashboard: setup ## The dashboard only: its JSON API, and the page in Debian's Chromium (SCREENSHOT=file.png keeps a picture of the overview)
	$(CARGO) build --locked -p credence-server --bin credence
	CREDENCE_BROWSER_DEPS="$$(deploy/local/browser.sh)" $(if $(SCREENSHOT),CREDENCE_DASHBOARD_SCREENSHOT="$(abspath $(SCREENSHOT))") \
		$(CARGO) test --locked -p credence-tests --test dashboard -- --nocapture

.PHONY: test-crash
test-crash: setup ## Only the kill -9 crash test, with its progress lines
	$(CARGO) build --locked -p credence-server --bin credence
	$(CARGO) test --locked -p credence-tests --test crash -- --nocapture

.PHONY: grpcurl
grpcurl: ## Build grpcurl once (Go module proxy) and print its path
	@deploy/local/grpcurl.sh

.PHONY: doc
doc: setup ## Build the API docs; a missing or broken doc is an error
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked

STACK := deploy/local/stack.sh

.PHONY: stack-up
stack-up: ## Install (first time) and start Kafka, FerretDB, Cassandra, InfluxDB, Dgraph on 127.0.0.1
	$(STACK) up

.PHONY: stack-down
stack-down: ## Stop the local stack and drop its data (STACK_ARGS=--keep-data keeps it)
	$(STACK) down $(STACK_ARGS)

.PHONY: stack-status
stack-status: ## Up/down per stack server, with its port
	$(STACK) status

CLUSTER_SERVICES ?= kafka ferretdb dgraph
CLUSTER_CONFIG ?= deploy/local/cluster.toml

.PHONY: cluster
cluster: setup ## Start the stack's servers the cluster config uses (Kafka, FerretDB, Dgraph) and a node on deploy/local/cluster.toml
	$(STACK) up $(CLUSTER_SERVICES)
	$(CARGO) run --release --locked -p credence-server -- serve --config $(CLUSTER_CONFIG)

.PHONY: clippy-stack
clippy-stack: setup ## Lint the storage crate with its real-backend features, and the Rust SDK with its Kafka producer
	$(CARGO) clippy -p credence-storage --features stack --all-targets --locked -- -D warnings
	$(CARGO) clippy -p credence --features kafka --all-targets --locked -- -D warnings

.PHONY: test-stack
test-stack: setup ## Each client crate, the cluster backends' conformance and the end-to-end tests on them, against the live stack (brings it up, then down)
	$(CARGO) test -p credence-storage --features stack --locked --no-run
	$(CARGO) build --locked -p credence-server --bin credence
	$(CARGO) build --locked -p credence-loadgen --bin credence-loadgen
	$(CARGO) test -p credence-tests --locked --test crash --test graph --test rules --test lists --test loadgen --no-run
	$(CARGO) test -p credence --features kafka --locked --test kafka_producer --no-run
	trap '$(STACK) down' EXIT; \
	$(STACK) up || { $(STACK) logs; exit 1; }; \
	eval "$$($(STACK) env)"; \
	CREDENCE_TEST_REQUIRE_STACK=1 $(CARGO) test -p credence-storage --features stack --locked --test 'stack_*'; \
	CREDENCE_TEST_REQUIRE_STACK=1 $(CARGO) test -p credence-tests --locked --test crash -- kafka_bus; \
	CREDENCE_TEST_REQUIRE_STACK=1 $(CARGO) test -p credence-tests --locked --test graph -- on_dgraph; \
	CREDENCE_TEST_REQUIRE_STACK=1 $(CARGO) test -p credence-tests --locked --test rules --test lists -- on_mongodb; \
	CREDENCE_TEST_REQUIRE_STACK=1 $(CARGO) test -p credence-tests --locked --test loadgen -- on_kafka_bus; \
	CREDENCE_TEST_REQUIRE_STACK=1 $(CARGO) test -p credence --features kafka --locked --test kafka_producer

.PHONY: bench-stack
bench-stack: ## Bulk write rates of each stack store through its crate, and the Dgraph graph and MongoDB document roles against their stores' bulk paths (needs `make stack-up`)
	eval "$$($(STACK) env)"; $(CARGO) run --release -p credence-storage --features stack --example stack_bench; \
	$(CARGO) run --release -p credence-storage --features stack --example graph_bench; \
	$(CARGO) run --release -p credence-storage --features stack --example documents_bench

.PHONY: test
test: fmt-check clippy clippy-stack fuzz-smoke test-rust doc test-stack ## Everything CI runs: format, lints, fuzz smoke, all tests, docs, the real stack

.PHONY: bench
bench: setup ## Run the criterion benchmarks (scoring engine, embedded micro-batch commit, the load generator's event making)
	$(CARGO) bench -p credence-scorer --bench apply
	$(CARGO) bench -p credence-storage --bench embedded_commit
	$(CARGO) bench -p credence-loadgen --bench generate

LOADGEN_ARGS ?= --duration 30s --warmup 5s
BENCH_NODE_ARGS ?=

.PHONY: bench-pipeline
bench-pipeline: setup ## Ingest benchmark: a release node on a throwaway data dir, the load generator against it (LOADGEN_ARGS=, BENCH_NODE_ARGS=)
	$(CARGO) build --release --locked -p credence-server -p credence-loadgen
	dir="$$(mktemp -d)"; \
	"$(CARGO_TARGET_DIR)/release/credence" dev --data-dir "$$dir/data" --listen 127.0.0.1:50151 \
		--metrics-listen 127.0.0.1:9564 --dashboard-listen "" --no-demo $(BENCH_NODE_ARGS) > "$$dir/node.out" 2> "$$dir/node.err" & node=$$!; \
	trap 'kill $$node 2>/dev/null; wait $$node 2>/dev/null; rm -rf "$$dir"' EXIT; \
	for _ in $$(seq 100); do grep -q "listening on" "$$dir/node.out" && break; sleep 0.1; done; \
	"$(CARGO_TARGET_DIR)/release/credence-loadgen" --target http://127.0.0.1:50151 \
		--metrics-url http://127.0.0.1:9564/metrics $(LOADGEN_ARGS)

SDK_BENCH_ARGS ?= --events 300000 --rounds 3

.PHONY: bench-sdk
bench-sdk: setup ## Rust SDK: the Producer against a hand-written StreamEvents loop, one release node (SDK_BENCH_ARGS=)
	$(CARGO) build --release --locked -p credence-server --bin credence
	$(CARGO) build --release --locked -p credence --example bench_producer
	dir="$$(mktemp -d)"; \
	"$(CARGO_TARGET_DIR)/release/credence" dev --data-dir "$$dir/data" --listen 127.0.0.1:50152 \
		--metrics-listen 127.0.0.1:9565 --dashboard-listen "" --no-demo > "$$dir/node.out" 2> "$$dir/node.err" & node=$$!; \
	trap 'kill $$node 2>/dev/null; wait $$node 2>/dev/null; rm -rf "$$dir"' EXIT; \
	for _ in $$(seq 100); do grep -q "listening on" "$$dir/node.out" && break; sleep 0.1; done; \
	"$(CARGO_TARGET_DIR)/release/examples/bench_producer" --url http://127.0.0.1:50152 $(SDK_BENCH_ARGS)

PY_BENCH_ARGS ?= --events 1000000 --rounds 3
PY_BENCH_RUST_ARGS ?= --events 1000000 --rounds 3

.PHONY: bench-python
bench-python: setup ## Python SDK: its producer publishing 1M events from a table, and the Rust raw StreamEvents ceiling, one release node (PY_BENCH_ARGS=)
	$(CARGO) build --release --locked -p credence-server --bin credence
	$(CARGO) build --release --locked -p credence --example bench_producer
	py="$$(SDK_PROFILE=release deploy/local/python-sdk.sh)"; dir="$$(mktemp -d)"; \
	"$(CARGO_TARGET_DIR)/release/credence" dev --data-dir "$$dir/data" --listen 127.0.0.1:50153 \
		--metrics-listen 127.0.0.1:9566 --dashboard-listen "" --no-demo > "$$dir/node.out" 2> "$$dir/node.err" & node=$$!; \
	trap 'kill $$node 2>/dev/null; wait $$node 2>/dev/null; rm -rf "$$dir"' EXIT; \
	for _ in $$(seq 100); do grep -q "listening on" "$$dir/node.out" && break; sleep 0.1; done; \
	"$(CARGO_TARGET_DIR)/release/examples/bench_producer" --url http://127.0.0.1:50153 $(PY_BENCH_RUST_ARGS); \
	"$$py" sdk-python/examples/bench_producer.py --url http://127.0.0.1:50153 $(PY_BENCH_ARGS)

.PHONY: bench-kafka
bench-kafka: setup ## The same ingest benchmark on the Kafka bus (fresh topic; needs Kafka up), then the raw consume rate of the topic it filled
	$(CARGO) build --release --locked -p credence-server -p credence-loadgen
	$(CARGO) build --release --locked -p credence-storage --features kafka --bin kafka_consume
	dir="$$(mktemp -d)"; topic="credence.bench-$$(date +%s)"; \
	CREDENCE__STORAGE__KAFKA__TOPIC="$$topic" CREDENCE__STORAGE__KAFKA__GROUP_ID="$$topic" \
	CREDENCE__STORAGE__KAFKA__INSTANCE_ID="" \
	"$(CARGO_TARGET_DIR)/release/credence" serve --config $(CLUSTER_CONFIG) --data-dir "$$dir/data" \
		--listen 127.0.0.1:50171 --metrics-listen 127.0.0.1:9574 $(BENCH_NODE_ARGS) \
		> "$$dir/node.out" 2> "$$dir/node.err" & node=$$!; \
	trap 'kill $$node 2>/dev/null; wait $$node 2>/dev/null; rm -rf "$$dir"' EXIT; \
	for _ in $$(seq 300); do grep -q "listening on" "$$dir/node.out" && break; sleep 0.1; done; \
	"$(CARGO_TARGET_DIR)/release/credence-loadgen" --target http://127.0.0.1:50171 \
		--metrics-url http://127.0.0.1:9574/metrics $(LOADGEN_ARGS); \
	kill $$node; wait $$node 2>/dev/null; \
	"$(CARGO_TARGET_DIR)/release/kafka_consume" 127.0.0.1:9092 "$$topic"

FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 15
FUZZ_TARGETS ?= ingest_request rule_config condition_eval
FUZZ_SANITIZER ?= none
FUZZ_TOOLCHAIN ?= nightly
CARGO_FUZZ_VERSION ?= 0.13.2
CARGO_FUZZ_ROOT := $(CACHE_HOME)/credence/cargo-fuzz-$(CARGO_FUZZ_VERSION)
FUZZ_TARGET_DIR ?= $(CACHE_HOME)/credence/target-fuzz
FUZZ_CORPUS_DIR ?= $(CACHE_HOME)/credence/fuzz-corpus
CARGO_FUZZ = cd fuzz && PATH="$(CARGO_FUZZ_ROOT)/bin:$$PATH" CARGO_TARGET_DIR="$(FUZZ_TARGET_DIR)" \
	$(CARGO) +$(FUZZ_TOOLCHAIN) fuzz

# Inputs libFuzzer finds go to FUZZ_CORPUS_DIR (outside the work tree); fuzz/seeds/ is read,
# never written. A crash is written to fuzz/artifacts/TARGET/ (ignored by git) and stops the
# run, and make fails. The sanitizer is off by default: the crates forbid unsafe code, and
# AddressSanitizer halves the rate. All targets build in one cargo invocation; `cargo fuzz
# run` then finds them up to date. FUZZ_TOOLCHAIN is installed through rustup if missing.
.PHONY: fuzz-build
fuzz-build: setup ## Install what fuzzing needs once (nightly through rustup, cargo-fuzz into the cache) and build the fuzz targets
	@rustup run $(FUZZ_TOOLCHAIN) rustc --version >/dev/null 2>&1 || \
		rustup toolchain install $(FUZZ_TOOLCHAIN) --profile minimal
	@test -x "$(CARGO_FUZZ_ROOT)/bin/cargo-fuzz" || \
		$(CARGO) install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION) --root "$(CARGO_FUZZ_ROOT)"
	$(CARGO_FUZZ) build --sanitizer $(FUZZ_SANITIZER)

# $(call run_fuzz,SECONDS,LIBFUZZER_FLAGS): each of FUZZ_TARGETS in turn for SECONDS.
run_fuzz = for t in $(FUZZ_TARGETS); do \
		mkdir -p "$(FUZZ_CORPUS_DIR)/$$t"; \
		($(CARGO_FUZZ) run --sanitizer $(FUZZ_SANITIZER) "$$t" \
			"$(FUZZ_CORPUS_DIR)/$$t" "$(CURDIR)/fuzz/seeds/$$t" -- \
			-dict="$(CURDIR)/fuzz/dict/$$t.dict" -max_total_time=$(1) -timeout=10 \
			-print_final_stats=1 $(2)); \
	done

.PHONY: fuzz
fuzz: fuzz-build ## Run each fuzz target for FUZZ_SECONDS (default 60) on nightly (FUZZ_TARGETS=, FUZZ_SANITIZER=)
	$(call run_fuzz,$(FUZZ_SECONDS))

# Part of `make test`: the same build, each target briefly from the seeds and what earlier
# runs found, quietly (libFuzzer still prints a crash and the final stats). About 50 s warm;
# the first build takes minutes (docs/SECURITY.md, "Fuzzing").
.PHONY: fuzz-smoke
fuzz-smoke: fuzz-build ## Run each fuzz target for FUZZ_SMOKE_SECONDS (default 15): the smoke test in `make test`
	$(call run_fuzz,$(FUZZ_SMOKE_SECONDS),-verbosity=0 -print_funcs=0)

.PHONY: clean
clean: ## Remove the shared build directory
	rm -rf "$(CARGO_TARGET_DIR)"

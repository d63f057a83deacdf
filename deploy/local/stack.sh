#!/usr/bin/env bash
# Credence local stack: Kafka, FerretDB (MongoDB protocol), Cassandra (CQL), InfluxDB and
# Dgraph on this machine, without a container engine.
#
#   deploy/local/stack.sh up     [--keep-data] [SERVICE...]  install what is missing, start, wait until ready
#   deploy/local/stack.sh down   [--keep-data] [SERVICE...]  stop what `up` started (by pid); drop the data
#   deploy/local/stack.sh status [SERVICE...]                up/down per server, with its port
#   deploy/local/stack.sh logs   [SERVICE...]                the last lines of each server's log
#   deploy/local/stack.sh install [SERVICE...]               install only (no start)
#   deploy/local/stack.sh env                                export lines for the CREDENCE_TEST_* endpoints
#
# SERVICE is one of: kafka ferretdb cassandra influxdb dgraph (also: mongo, cql, influx).
# Versions, ports and memory settings live in stack.env beside this script.
#
# Installs are cached under ${XDG_CACHE_HOME:-$HOME/.cache}/credence-stack/<product>-<version>
# (Java artifacts, Go modules and Go's build cache there too), so a second machine-warm `up`
# only starts processes. Data, logs and pids live in ${CREDENCE_STACK_STATE:-${TMPDIR:-/tmp}/credence-stack}:
# data/ is thrown away by `down` unless --keep-data is given; logs/ and run/ stay.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=stack.env
source "$HERE/stack.env"

CACHE=${CREDENCE_STACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/credence-stack}
STATE=${CREDENCE_STACK_STATE:-${TMPDIR:-/tmp}/credence-stack}
DATA=$STATE/data
LOGS=$STATE/logs
RUN=$STATE/run
ALL_SERVICES=(kafka ferretdb cassandra influxdb dgraph)

KAFKA_HOME=$CACHE/kafka-$KAFKA_VERSION
CASSANDRA_HOME=$CACHE/cassandra-$CASSANDRA_VERSION
FERRETDB_HOME=$CACHE/ferretdb-$FERRETDB_VERSION-credence3
INFLUXDB_HOME=$CACHE/influxdb-$INFLUXDB_VERSION
DGRAPH_HOME=$CACHE/dgraph-$DGRAPH_VERSION

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

canonical() {
    case "$1" in
        kafka|redpanda) echo kafka ;;
        ferretdb|mongo|mongodb) echo ferretdb ;;
        cassandra|cql|scylla|scylladb) echo cassandra ;;
        influxdb|influx) echo influxdb ;;
        dgraph) echo dgraph ;;
        *) die "unknown service '$1' (one of: ${ALL_SERVICES[*]})" ;;
    esac
}

# --- prerequisites -------------------------------------------------------------------------

APT_UPDATED=
apt_install() {
    command -v apt-get >/dev/null || die "missing $*, and no apt-get to install it"
    [[ $(id -u) == 0 ]] || die "missing $*: install it (as root: apt-get install $*)"
    if [[ -z $APT_UPDATED ]]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

need_base() {
    local missing=()
    command -v curl >/dev/null || missing+=(curl)
    command -v setsid >/dev/null || missing+=(util-linux)
    command -v ps >/dev/null || missing+=(procps)
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

need_java() {
    local v
    if command -v java >/dev/null; then
        v=$(java -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ { print $2 }')
        [[ ${v%%.*} -ge 17 ]] 2>/dev/null || die "java $v found; Kafka 3.9 and Cassandra 5.0 need 17 or newer"
    else
        apt_install openjdk-17-jre-headless
    fi
    command -v mvn >/dev/null || apt_install maven
}

need_go() {
    # Go's own tarball installs to /usr/local/go; a non-login shell may not have it on PATH.
    if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
        PATH="/usr/local/go/bin:$PATH"
    fi
    command -v go >/dev/null || die "no Go toolchain: Dgraph v24 needs Go >= 1.22 (Debian's golang is too old); install Go first"
    local v
    v=$(go env GOVERSION)
    v=${v#go}
    local major=${v%%.*} rest=${v#*.}
    local minor=${rest%%.*}
    ((major > 1 || minor >= 22)) || die "Go $v is too old: Dgraph v24 needs Go >= 1.22"
}

# --- install -------------------------------------------------------------------------------

record_install() { # product seconds
    mkdir -p "$CACHE"
    printf '%s\t%s\t%ss\n' "$(date -u +%FT%TZ)" "$1" "$2" >>"$CACHE/install-times.tsv"
    log "installed $1 in $2 s"
}

# Copy a Maven artifact and its runtime dependencies into <home>/lib.
maven_install() { # home groupId:artifactId:version...
    local home=$1
    shift
    [[ -f $home/.installed ]] && return 0
    need_java
    local t0 tmp deps=''
    t0=$(now)
    tmp=$home.tmp.$$
    rm -rf "$tmp"
    mkdir -p "$tmp"
    local gav g a v
    for gav in "$@"; do
        IFS=: read -r g a v <<<"$gav"
        deps+="    <dependency><groupId>$g</groupId><artifactId>$a</artifactId><version>$v</version></dependency>
"
    done
    cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>credence.local</groupId>
  <artifactId>$(basename "$home")</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
$deps  </dependencies>
</project>
EOF
    log "fetching $* (Maven Central, into $home)"
    if ! mvn -B -q -f "$tmp/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
        dependency:copy-dependencies -DoutputDirectory="$tmp/lib" -DincludeScope=runtime \
        >"$tmp/mvn.log" 2>&1; then
        tail -n 30 "$tmp/mvn.log" >&2
        die "maven could not fetch $*; full log in $tmp/mvn.log"
    fi
    rm -rf "$home"
    mv "$tmp" "$home"
    touch "$home/.installed"
    record_install "$(basename "$home")" "$(since "$t0")"
}

# Build a Go command from a module version fetched from the Go module proxy. `go install
# MODULE@VERSION` is not used: it asks the proxy for the module's version list (to look
# for a deprecation notice) and that request is refused here (403), while
# `go mod download` of an exact version works.
go_install() { # home module version package binary
    local home=$1 module=$2 version=$3 pkg=$4 bin=$5
    [[ -x $home/bin/$bin && -f $home/.installed ]] && return 0
    need_go
    local t0 dir
    t0=$(now)
    export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
    mkdir -p "$home/bin"
    log "fetching $module@$version (Go module proxy)"
    dir=$(go mod download -json "$module@$version" | awk -F'"' '/"Dir":/ { print $4 }')
    [[ -n $dir && -d $dir ]] || die "go mod download $module@$version failed"
    rm -rf "$home/src"
    cp -r "$dir" "$home/src"
    chmod -R u+w "$home/src"
    if [[ -n ${GO_PREBUILD:-} ]]; then (cd "$home/src" && eval "$GO_PREBUILD"); fi
    log "building $bin from $module@$version (this is the long step: minutes on two cores)"
    if ! (cd "$home/src" && go build -trimpath -o "$home/bin/$bin.tmp" "./$pkg") >"$home/build.log" 2>&1; then
        tail -n 30 "$home/build.log" >&2
        die "go build of $module@$version failed; full log in $home/build.log"
    fi
    mv "$home/bin/$bin.tmp" "$home/bin/$bin"
    rm -rf "$home/src" # the module cache keeps the source
    touch "$home/.installed"
    record_install "$(basename "$home")" "$(since "$t0")"
}

install_kafka() {
    maven_install "$KAFKA_HOME" "org.apache.kafka:kafka_2.13:$KAFKA_VERSION" \
        "org.slf4j:slf4j-reload4j:$SLF4J_BINDING_VERSION"
}
install_cassandra() { maven_install "$CASSANDRA_HOME" "org.apache.cassandra:cassandra-all:$CASSANDRA_VERSION"; }
# FerretDB embeds build/version/version.txt (normally written by its `task gen-version`
# from git) and panics at start when it is empty; the module zip has no git, so write it.
# It also gets three small fixes (ferretdb_patches): hence the "-credence3" in its folder.
ferretdb_patches() {
    # 1. `$group` fed all its accumulators from ONE iterator over the group's documents: the
    #    first accumulator drained it, every later one saw an empty group and answered 0
    #    ({n: {$sum: 1}, total: {$sum: "$x"}} gave total 0). Each accumulator gets its own.
    # 2. The `update` command kept every statement's query iterator (and so its SQLite
    #    connection) open until the whole command ended (`defer` in a loop): a command with
    #    more statements than the pool's 100 connections hung for ever, and concurrent
    #    upserts crawled. Close each statement's iterator as soon as it is done.
    # 3. Lookups by `_id` (find, update and delete by `_id`) never used the `_id` index: the
    #    index is on `_ferretdb_sjson->"_id"` but the queries said `->'$._id'`, an expression
    #    SQLite does not match against the index, so every lookup scanned the collection and
    #    parsed each row's JSON. Say `->'_id'` (the same path, and the index's expression).
    # docs/STACK.md has the details. Refuse to build if the code is not the expected shape.
    local g=internal/handler/common/aggregations/stages/group.go u=internal/handler/msg_update.go
    local m=internal/backends/sqlite/metadata/metadata.go
    grep -q '^		for _, accumulation := range g.groupBy {$' "$g" &&
        grep -q '^		result, err := common.UpdateDocument(ctx, c, "update", iter, &u)$' "$u" &&
        grep -q "^	IDColumn = DefaultColumn + \"->'\$._id'\"$" "$m" ||
        die "FerretDB $FERRETDB_VERSION is not the expected shape; review ferretdb_patches"
    awk '{ print } /^\t\tfor _, accumulation := range g.groupBy \{$/ {
        print "\t\t\tgroupIter := iterator.Values(iterator.ForSlice(groupedDocument.documents))"
        print "\t\t\tdefer groupIter.Close()"
    }' "$g" >"$g.new" && mv "$g.new" "$g"
    awk '{ print } /^\t\tresult, err := common.UpdateDocument\(ctx, c, "update", iter, &u\)$/ {
        print "\t\tcloser.Close()"
    }' "$u" >"$u.new" && mv "$u.new" "$u"
    sed -i "s/^	IDColumn = DefaultColumn + \"->'\$._id'\"$/	IDColumn = DefaultColumn + \"->'_id'\"/" "$m"
    grep -q "^	IDColumn = DefaultColumn + \"->'_id'\"$" "$m" || die "the _id lookup fix did not apply"
}
install_ferretdb() {
    GO_PREBUILD="echo $FERRETDB_VERSION > build/version/version.txt && ferretdb_patches" go_install "$FERRETDB_HOME" github.com/FerretDB/FerretDB "$FERRETDB_VERSION" cmd/ferretdb ferretdb
}
install_influxdb() { go_install "$INFLUXDB_HOME" github.com/influxdata/influxdb "$INFLUXDB_VERSION" cmd/influxd influxd; }
install_dgraph() { go_install "$DGRAPH_HOME" github.com/dgraph-io/dgraph/v24 "$DGRAPH_VERSION" dgraph dgraph; }

# --- processes -----------------------------------------------------------------------------

# Each process writes its own pid before exec, so the pid file names the server itself.
# A pid counts only while /proc/<pid>/cmdline still contains the marker (pids get reused).
pidfile() { echo "$RUN/$1.pid"; }

proc_alive() { # name marker
    local f pid
    f=$(pidfile "$1")
    [[ -f $f ]] || return 1
    pid=$(<"$f")
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Remove a pid file whose process is gone (after a crash or a reboot).
clean_stale() { # name marker
    local f
    f=$(pidfile "$1")
    if [[ -f $f ]] && ! proc_alive "$1" "$2"; then
        log "$1: removing stale pid file (pid $(<"$f") is gone)"
        rm -f "$f"
        return 0
    fi
    return 1
}

spawn() { # name env-assignments... -- command...
    local name=$1
    shift
    local envs=()
    while [[ $1 != -- ]]; do
        envs+=("$1")
        shift
    done
    shift
    mkdir -p "$RUN" "$LOGS"
    [[ -f $LOGS/$name.log ]] && mv -f "$LOGS/$name.log" "$LOGS/$name.log.1"
    setsid env "${envs[@]}" bash -c 'echo $$ >"$0"; exec "$@"' "$(pidfile "$name")" "$@" \
        >"$LOGS/$name.log" 2>&1 </dev/null &
    local i
    for i in $(seq 50); do
        [[ -s $(pidfile "$name") ]] && return 0
        sleep 0.1
    done
    die "$name did not start; see $LOGS/$name.log"
}

stop_proc() { # name marker
    local name=$1 marker=$2 f pid i
    f=$(pidfile "$name")
    if ! proc_alive "$name" "$marker"; then
        rm -f "$f"
        return 0
    fi
    pid=$(<"$f")
    log "$name: stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 300); do
        [[ -d /proc/$pid ]] || break
        sleep 0.1
    done
    if [[ -d /proc/$pid ]]; then
        log "$name: pid $pid still there after 30 s, sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$f"
}

# Refuse to start on a port that something else holds.
port_free_or_die() { # name port...
    local name=$1 p
    shift
    for p in "$@"; do
        port_open "$p" && die "$name: port $p on 127.0.0.1 is taken by another process (not started by this script); free it or change it in stack.env"
    done
    return 0
}

wait_ready() { # name t0 check-function
    local name=$1 t0=$2 check=$3 marker=$4 deadline
    deadline=$(($(date +%s) + STACK_READY_TIMEOUT))
    until "$check"; do
        if ! proc_alive "$name" "$marker"; then
            tail -n 40 "$LOGS/$name.log" >&2 || true
            die "$name exited while starting; log: $LOGS/$name.log"
        fi
        if (($(date +%s) > deadline)); then
            tail -n 40 "$LOGS/$name.log" >&2 || true
            die "$name not ready after $STACK_READY_TIMEOUT s; log: $LOGS/$name.log"
        fi
        sleep 0.5
    done
    log "$name ready in $(since "$t0") s"
}

java_bin() { command -v java; }

# --- Kafka (KRaft, one node) ---------------------------------------------------------------

KAFKA_MARKER=kafka.Kafka
kafka_ready() { port_open "$KAFKA_PORT" && grep -q 'Kafka Server started' "$LOGS/kafka.log"; }

start_kafka() {
    local dir=$DATA/kafka conf=$STATE/conf/kafka
    mkdir -p "$conf" "$dir"
    cat >"$conf/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/log
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
background.threads=2
log.retention.hours=24
EOF
    cat >"$conf/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.log=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.storage=WARN
EOF
    local java cp="$KAFKA_HOME/lib/*"
    java=$(java_bin)
    if [[ ! -f $dir/log/meta.properties ]]; then
        local id
        id=$("$java" -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
        "$java" -Dlog4j.configuration="file:$conf/log4j.properties" -cp "$cp" kafka.tools.StorageTool \
            format -t "$id" -c "$conf/server.properties" >"$LOGS/kafka-format.log" 2>&1 ||
            die "kafka storage format failed; see $LOGS/kafka-format.log"
    fi
    spawn kafka -- "$java" -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxDirectMemorySize=256m \
        -XX:ReservedCodeCacheSize=64m -XX:CICompilerCount=2 -Djava.awt.headless=true \
        -Dlog4j.configuration="file:$conf/log4j.properties" -cp "$cp" kafka.Kafka "$conf/server.properties"
}

# --- FerretDB (MongoDB wire protocol, SQLite backend) --------------------------------------

FERRETDB_MARKER="ferretdb --handler"
ferretdb_ready() { curl -fsS -o /dev/null "http://127.0.0.1:$FERRETDB_DEBUG_PORT/debug/readyz" 2>/dev/null; }

start_ferretdb() {
    local dir=$DATA/ferretdb
    mkdir -p "$dir"
    spawn ferretdb GOMEMLIMIT="$GO_MEMLIMIT" -- "$FERRETDB_HOME/bin/ferretdb" --handler=sqlite \
        --sqlite-url="file:$dir/${FERRETDB_SQLITE_PARAMS:+?$FERRETDB_SQLITE_PARAMS}" --listen-addr="127.0.0.1:$MONGO_PORT" --state-dir="$dir" \
        --debug-addr="127.0.0.1:$FERRETDB_DEBUG_PORT" --telemetry=disable --log-level=warn
}

# --- Cassandra (CQL) -----------------------------------------------------------------------

CASSANDRA_MARKER=org.apache.cassandra.service.CassandraDaemon
cassandra_ready() { port_open "$CQL_PORT" && grep -q 'Startup complete' "$LOGS/cassandra.log"; }

start_cassandra() {
    local dir=$DATA/cassandra conf=$STATE/conf/cassandra
    mkdir -p "$conf" "$dir"
    cat >"$conf/cassandra.yaml" <<EOF
cluster_name: credence-local
num_tokens: 16
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
commitlog_sync: periodic
commitlog_sync_period: 10000ms
commitlog_segment_size: 32MiB
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:$CASSANDRA_STORAGE_PORT"
endpoint_snitch: SimpleSnitch
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: $CASSANDRA_STORAGE_PORT
native_transport_port: $CQL_PORT
start_native_transport: true
auto_snapshot: false
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 4
concurrent_compactors: 1
memtable_heap_space: 128MiB
memtable_offheap_space: 128MiB
key_cache_size: 16MiB
file_cache_size: 64MiB
EOF
    cat >"$conf/logback.xml" <<'EOF'
<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
EOF
    local jamm
    jamm=$(ls "$CASSANDRA_HOME"/lib/jamm-*.jar 2>/dev/null | head -n 1)
    # --add-exports/--add-opens: the list of Cassandra's conf/jvm17-server.options.
    local jpms=(
        -Djdk.attach.allowAttachSelf=true
        --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
        --add-exports java.base/jdk.internal.ref=ALL-UNNAMED
        --add-exports java.base/sun.nio.ch=ALL-UNNAMED
        --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
        --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
        --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
        --add-exports java.sql/java.sql=ALL-UNNAMED
        --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
        --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
        --add-opens java.base/java.lang.module=ALL-UNNAMED
        --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
        --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
        --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
        --add-opens java.base/jdk.internal.math=ALL-UNNAMED
        --add-opens java.base/jdk.internal.module=ALL-UNNAMED
        --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
        --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
        --add-opens java.base/sun.nio.ch=ALL-UNNAMED
        --add-opens java.base/java.io=ALL-UNNAMED
        --add-opens java.base/java.nio=ALL-UNNAMED
        --add-opens java.base/java.util.concurrent=ALL-UNNAMED
        --add-opens java.base/java.util=ALL-UNNAMED
        --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED
        --add-opens java.base/java.lang=ALL-UNNAMED
        --add-opens java.base/java.math=ALL-UNNAMED
        --add-opens java.base/java.lang.reflect=ALL-UNNAMED
        --add-opens java.base/java.net=ALL-UNNAMED
    )
    spawn cassandra -- "$(java_bin)" -Xms"$CASSANDRA_HEAP" -Xmx"$CASSANDRA_HEAP" -Xss256k -XX:+UseG1GC \
        -XX:MaxDirectMemorySize=512m -XX:ReservedCodeCacheSize=96m -XX:CICompilerCount=2 \
        -XX:+PerfDisableSharedMem -Djava.awt.headless=true \
        ${jamm:+-javaagent:"$jamm"} "${jpms[@]}" \
        -Dio.netty.tryReflectionSetAccessible=true \
        -Dcassandra.config="file://$conf/cassandra.yaml" -Dcassandra.storagedir="$dir" \
        -Dlogback.configurationFile="$conf/logback.xml" -Dcassandra.logdir="$LOGS" \
        -Dcassandra-foreground=yes -Dcassandra.skip_wait_for_gossip_to_settle=0 \
        -Dcassandra.ring_delay_ms=1000 -Dcassandra.superuser_setup_delay_ms=0 \
        -cp "$CASSANDRA_HOME/lib/*" org.apache.cassandra.service.CassandraDaemon
}

# --- InfluxDB 1.8 (v2-compatible HTTP API) -------------------------------------------------

INFLUXDB_MARKER=influxd
influxdb_ready() {
    curl -fsS "http://127.0.0.1:$INFLUX_PORT/health" 2>/dev/null | grep -q '"pass"' &&
        curl -fsS -o /dev/null -XPOST "http://127.0.0.1:$INFLUX_PORT/query" \
            --data-urlencode "q=CREATE DATABASE \"$INFLUX_DB\"" 2>/dev/null
}

start_influxdb() {
    local dir=$DATA/influxdb conf=$STATE/conf/influxdb
    mkdir -p "$conf" "$dir"
    cat >"$conf/influxdb.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:$INFLUX_RPC_PORT"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
  cache-max-memory-size = "256m"
  index-version = "tsi1"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:$INFLUX_PORT"
  auth-enabled = false
  log-enabled = false
  flux-enabled = true
[continuous_queries]
  enabled = false
EOF
    spawn influxdb GOMEMLIMIT="$GO_MEMLIMIT" -- "$INFLUXDB_HOME/bin/influxd" -config "$conf/influxdb.conf"
}

# --- Dgraph (zero + alpha) -----------------------------------------------------------------

DGRAPH_ZERO_MARKER="dgraph zero"
DGRAPH_ALPHA_MARKER="dgraph alpha"
dgraph_zero_ready() { curl -fsS "http://127.0.0.1:$DGRAPH_ZERO_HTTP_PORT/health" >/dev/null 2>&1; }
dgraph_alpha_ready() {
    curl -fsS "http://127.0.0.1:$DGRAPH_HTTP_PORT/health" 2>/dev/null | grep -q '"healthy"' &&
        curl -fsS -H 'Content-Type: application/dql' "http://127.0.0.1:$DGRAPH_HTTP_PORT/query" \
            -d '{ q(func: has(dgraph.type), first: 1) { uid } }' 2>/dev/null | grep -q '"data"'
}

start_dgraph_zero() {
    local dir=$DATA/dgraph
    mkdir -p "$dir"
    rm -f "$dir"/zw/LOCK
    local offset=$((DGRAPH_ZERO_PORT - 5080))
    ((DGRAPH_ZERO_HTTP_PORT - 6080 == offset)) || die "stack.env: DGRAPH_ZERO_HTTP_PORT must be DGRAPH_ZERO_PORT + 1000"
    spawn dgraph-zero GOMEMLIMIT="$GO_MEMLIMIT" -- "$DGRAPH_HOME/bin/dgraph" zero \
        --my="127.0.0.1:$DGRAPH_ZERO_PORT" --port_offset="$offset" --wal="$dir/zw" --bindall=false \
        --telemetry "reports=false; sentry=false;"
}

start_dgraph_alpha() {
    local dir=$DATA/dgraph
    rm -f "$dir"/p/LOCK "$dir"/w/LOCK
    local offset=$((DGRAPH_ALPHA_INTERNAL_PORT - 7080))
    ((DGRAPH_HTTP_PORT - 8080 == offset && DGRAPH_GRPC_PORT - 9080 == offset)) ||
        die "stack.env: Dgraph alpha ports must share one offset from 7080/8080/9080"
    spawn dgraph-alpha GOMEMLIMIT="$GO_MEMLIMIT" -- "$DGRAPH_HOME/bin/dgraph" alpha \
        --my="127.0.0.1:$DGRAPH_ALPHA_INTERNAL_PORT" --zero="127.0.0.1:$DGRAPH_ZERO_PORT" \
        --port_offset="$offset" -p "$dir/p" -w "$dir/w" --tmp "$dir/t" --bindall=false \
        --cache "size-mb=$DGRAPH_CACHE_MB" --security "whitelist=127.0.0.1" \
        --telemetry "reports=false; sentry=false;"
}

# --- per-service dispatch ------------------------------------------------------------------

# name:marker:ready-check:port label, one line per process; dgraph has two.
procs_of() {
    case "$1" in
        kafka) echo "kafka|$KAFKA_MARKER|kafka_ready|$KAFKA_PORT" ;;
        ferretdb) echo "ferretdb|$FERRETDB_MARKER|ferretdb_ready|$MONGO_PORT" ;;
        cassandra) echo "cassandra|$CASSANDRA_MARKER|cassandra_ready|$CQL_PORT" ;;
        influxdb) echo "influxdb|$INFLUXDB_MARKER|influxdb_ready|$INFLUX_PORT" ;;
        dgraph)
            echo "dgraph-zero|$DGRAPH_ZERO_MARKER|dgraph_zero_ready|$DGRAPH_ZERO_PORT"
            echo "dgraph-alpha|$DGRAPH_ALPHA_MARKER|dgraph_alpha_ready|$DGRAPH_GRPC_PORT"
            ;;
    esac
}

ports_of() {
    case "$1" in
        kafka) echo "$KAFKA_PORT $KAFKA_CONTROLLER_PORT" ;;
        ferretdb) echo "$MONGO_PORT $FERRETDB_DEBUG_PORT" ;;
        cassandra) echo "$CQL_PORT $CASSANDRA_STORAGE_PORT" ;;
        influxdb) echo "$INFLUX_PORT $INFLUX_RPC_PORT" ;;
        dgraph-zero) echo "$DGRAPH_ZERO_PORT $DGRAPH_ZERO_HTTP_PORT" ;;
        dgraph-alpha) echo "$DGRAPH_ALPHA_INTERNAL_PORT $DGRAPH_HTTP_PORT $DGRAPH_GRPC_PORT" ;;
    esac
}

start_fn() {
    case "$1" in
        dgraph-zero) echo start_dgraph_zero ;;
        dgraph-alpha) echo start_dgraph_alpha ;;
        *) echo "start_$1" ;;
    esac
}

clean_locks() { # after a crash: lock files the dead process left
    case "$1" in
        kafka) rm -f "$DATA/kafka/log/.lock" ;;
    esac
}

cmd_up() {
    need_base
    local svc
    for svc in "$@"; do "install_$svc"; done
    mkdir -p "$DATA" "$LOGS" "$RUN"
    # Start everything first, then wait: the JVMs and Go servers warm up side by side.
    local started=() t0s=() line name marker check port
    for svc in "$@"; do
        while IFS='|' read -r name marker check port; do
            if proc_alive "$name" "$marker"; then
                log "$name already running (pid $(<"$(pidfile "$name")"), port $port)"
                continue
            fi
            clean_stale "$name" "$marker" && clean_locks "$name" || true
            # shellcheck disable=SC2046
            port_free_or_die "$name" $(ports_of "$name")
            log "starting $name"
            t0s+=("$(now)")
            "$(start_fn "$name")"
            started+=("$name|$marker|$check")
        done < <(procs_of "$svc")
    done
    local i
    for i in "${!started[@]}"; do
        IFS='|' read -r name marker check <<<"${started[$i]}"
        wait_ready "$name" "${t0s[$i]}" "$check" "$marker"
    done
    # Already-running ones must still answer.
    for svc in "$@"; do
        while IFS='|' read -r name marker check port; do
            "$check" || die "$name is running but not ready; see $LOGS/$name.log"
        done < <(procs_of "$svc")
    done
    cmd_status "$@"
}

cmd_down() {
    local svc names=() i
    for svc in "$@"; do
        while IFS='|' read -r name marker _ _; do names+=("$name|$marker"); done < <(procs_of "$svc")
    done
    # Stop in reverse order (Dgraph alpha before zero).
    for ((i = ${#names[@]} - 1; i >= 0; i--)); do
        IFS='|' read -r name marker <<<"${names[$i]}"
        stop_proc "$name" "$marker"
    done
    if [[ -z $KEEP_DATA ]]; then
        for svc in "$@"; do
            case "$svc" in
                dgraph) rm -rf "$DATA/dgraph" ;;
                *) rm -rf "${DATA:?}/$svc" ;;
            esac
        done
        rmdir "$DATA" 2>/dev/null || true
        log "data removed (use --keep-data to keep it)"
    fi
}

cmd_status() {
    local svc rc=0
    for svc in "$@"; do
        while IFS='|' read -r name marker check port; do
            if proc_alive "$name" "$marker"; then
                if "$check"; then
                    printf '%-13s up     127.0.0.1:%-5s pid %s\n' "$name" "$port" "$(<"$(pidfile "$name")")"
                else
                    printf '%-13s starting 127.0.0.1:%-5s pid %s (not ready)\n' "$name" "$port" "$(<"$(pidfile "$name")")"
                    rc=1
                fi
            else
                printf '%-13s down   127.0.0.1:%s\n' "$name" "$port"
                rc=1
            fi
        done < <(procs_of "$svc")
    done
    return $rc
}

cmd_logs() {
    local svc
    for svc in "$@"; do
        while IFS='|' read -r name _ _ _; do
            echo "==> $LOGS/$name.log <=="
            tail -n "${LINES_SHOWN:-40}" "$LOGS/$name.log" 2>/dev/null || echo "(no log yet)"
        done < <(procs_of "$svc")
    done
}

cmd_env() {
    cat <<EOF
export CREDENCE_TEST_KAFKA=127.0.0.1:$KAFKA_PORT
export CREDENCE_TEST_MONGO=mongodb://127.0.0.1:$MONGO_PORT/
export CREDENCE_TEST_CQL=127.0.0.1:$CQL_PORT
export CREDENCE_TEST_INFLUX=http://127.0.0.1:$INFLUX_PORT
export CREDENCE_TEST_INFLUX_BUCKET=$INFLUX_DB
export CREDENCE_TEST_INFLUX_ORG=$INFLUX_ORG
export CREDENCE_TEST_INFLUX_TOKEN=$INFLUX_TOKEN
export CREDENCE_TEST_DGRAPH=http://127.0.0.1:$DGRAPH_GRPC_PORT
EOF
}

# The header comment above is the help text: print it up to the first line of code.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

main() {
    local cmd=${1:-}
    [[ -n $cmd ]] || {
        usage
        exit 2
    }
    shift
    KEEP_DATA=
    local args=() a
    for a in "$@"; do
        case "$a" in
            --keep-data) KEEP_DATA=1 ;;
            -h | --help) usage; exit 0 ;;
            -*) die "unknown option $a" ;;
            *) args+=("$(canonical "$a")") ;;
        esac
    done
    ((${#args[@]})) || args=("${ALL_SERVICES[@]}")
    case "$cmd" in
        up) cmd_up "${args[@]}" ;;
        down) cmd_down "${args[@]}" ;;
        status) cmd_status "${args[@]}" ;;
        logs) cmd_logs "${args[@]}" ;;
        install)
            need_base
            for a in "${args[@]}"; do "install_$a"; done
            ;;
        env) cmd_env ;;
        -h | --help | help) usage ;;
        *) usage; exit 2 ;;
    esac
}

main "$@"

#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft: one process is broker and controller) on this machine,
# assembled from Maven Central jars (no prebuilt tarball), for the tests and the demo.
#
#   e2e/kafka.sh build    jars of Kafka $KAFKA_VERSION via `mvn dependency:copy-dependencies`, cached in
#                         $NEPTUNE_CACHE/kafka-$KAFKA_VERSION/ (a second run does nothing)
#   e2e/kafka.sh up       idempotent: build if needed, format the storage once, start the broker,
#                         wait until it answers a real ApiVersions request, print the bootstrap address
#   e2e/kafka.sh down     stops the broker this script started (pid file) and waits for it; keeps data
#   e2e/kafka.sh status   running or not, answering or not, where things are
#   e2e/kafka.sh env      prints: export NEPTUNE_KAFKA_BOOTSTRAP=127.0.0.1:9092
#   e2e/kafka.sh reset    down, then removes the state directory (topics, offsets, logs)
#
# Env: KAFKA_VERSION (4.1.1), NEPTUNE_CACHE (/var/cache/neptune-k8s),
#      NEPTUNE_KAFKA_STATE (/var/lib/neptune-kafka), NEPTUNE_KAFKA_HOST (127.0.0.1: the address the
#      broker listens on and advertises), NEPTUNE_KAFKA_PORT (9092), NEPTUNE_KAFKA_CONTROLLER_PORT
#      (broker port + 1), NEPTUNE_KAFKA_HEAP (-Xms256m -Xmx512m), NEPTUNE_KAFKA_STOP_TIMEOUT (60 s),
#      NEPTUNE_KAFKA_POD_HOST (unset: none) and NEPTUNE_KAFKA_POD_PORT (9094): a second client
#      listener `PODS` on that address (e.g. the pods' bridge, 10.244.0.1), listened on and
#      advertised for the pods of the local cluster; the controller and the broker's own traffic
#      stay on the first listener (see e2e/README.md, "Kafka for the pods")
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
KAFKA_SCALA=${KAFKA_SCALA:-2.13}
# the log4j2 binding for Kafka's slf4j 1.7 (the version Kafka's own distribution ships)
KAFKA_LOG4J_VERSION=${KAFKA_LOG4J_VERSION:-2.24.3}
KAFKA_HOME="$NEPTUNE_CACHE/kafka-$KAFKA_VERSION"
KAFKA_JARS="$KAFKA_HOME/jars"
KSTATE=${NEPTUNE_KAFKA_STATE:-/var/lib/neptune-kafka}
KHOST=${NEPTUNE_KAFKA_HOST:-127.0.0.1}
KPORT=${NEPTUNE_KAFKA_PORT:-9092}
KCPORT=${NEPTUNE_KAFKA_CONTROLLER_PORT:-$((KPORT + 1))}
KHEAP=${NEPTUNE_KAFKA_HEAP:--Xms256m -Xmx512m}
KSTOP_TIMEOUT=${NEPTUNE_KAFKA_STOP_TIMEOUT:-60}
BOOTSTRAP="$KHOST:$KPORT"
KPOD_HOST=${NEPTUNE_KAFKA_POD_HOST:-}
KPOD_PORT=${NEPTUNE_KAFKA_POD_PORT:-9094}
LISTENERS="PLAINTEXT://$KHOST:$KPORT,CONTROLLER://$KHOST:$KCPORT"
PROTOCOLS="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
if [ -n "$KPOD_HOST" ]; then
    LISTENERS="$LISTENERS,PODS://$KPOD_HOST:$KPOD_PORT"
    PROTOCOLS="$PROTOCOLS,PODS:PLAINTEXT"
fi
# the process helpers of lib/common.sh keep pids and logs here (not in the cluster's state)
RUN="$KSTATE/run"
LOGS="$KSTATE/logs"
DATA="$KSTATE/data"
PROPS="$KSTATE/server.properties"

print_env() {
    printf 'export NEPTUNE_KAFKA_BOOTSTRAP=%s\n' "$BOOTSTRAP"
    if [ -n "$KPOD_HOST" ]; then printf '# pods: %s:%s\n' "$KPOD_HOST" "$KPOD_PORT"; fi
}

apt_install() { # apt_install PACKAGE...: from Debian, only when a command is missing
    log "    installing from Debian: $*"
    if [ ! -f /run/neptune-e2e-apt-updated ]; then
        apt-get update -qq || die "apt-get update failed"
        touch /run/neptune-e2e-apt-updated 2>/dev/null || true
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || die "apt-get install $* failed"
}

need_java() {
    command -v java >/dev/null || apt_install openjdk-17-jre-headless
    JAVA=$(command -v java)
}

built() { [ -f "$KAFKA_HOME/.complete" ] && [ -f "$KAFKA_JARS/kafka_$KAFKA_SCALA-$KAFKA_VERSION.jar" ]; }

write_pom() { # the broker, its tools (without Kafka Connect's runtime) and the log4j2 binding
    cat <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>neptune.local</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_$KAFKA_SCALA</artifactId><version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version>
      <exclusions>
        <exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$KAFKA_LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
}

kafka_build() {
    step "Kafka $KAFKA_VERSION jars in $KAFKA_JARS"
    if built; then log "    cached ($(find "$KAFKA_JARS" -name '*.jar' | wc -l) jars)"; return 0; fi
    mkdir -p "$NEPTUNE_CACHE"
    # our own lock: the Kubernetes build holds $NEPTUNE_CACHE/.build.lock for an hour
    exec 8>"$NEPTUNE_CACHE/.kafka-build.lock"
    if ! flock -n 8; then log "    another Kafka build holds the lock; waiting"; flock 8; fi
    if built; then log "    built meanwhile by another run"; return 0; fi
    need_java
    command -v mvn >/dev/null || apt_install maven
    mkdir -p "$KAFKA_HOME"
    write_pom >"$KAFKA_HOME/pom.xml"
    rm -rf "$KAFKA_JARS.tmp"
    step "mvn dependency:copy-dependencies (Kafka $KAFKA_VERSION, log: $KAFKA_HOME/mvn.log)"
    local t=$SECONDS
    if ! mvn -B -ntp -f "$KAFKA_HOME/pom.xml" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$KAFKA_JARS.tmp" >"$KAFKA_HOME/mvn.log" 2>&1; then
        tail -n 25 "$KAFKA_HOME/mvn.log" >&2
        die "mvn could not resolve Kafka $KAFKA_VERSION (see $KAFKA_HOME/mvn.log)"
    fi
    [ -f "$KAFKA_JARS.tmp/kafka_$KAFKA_SCALA-$KAFKA_VERSION.jar" ] || die "kafka_$KAFKA_SCALA-$KAFKA_VERSION.jar missing after mvn"
    rm -rf "$KAFKA_JARS"
    mv "$KAFKA_JARS.tmp" "$KAFKA_JARS"
    (cd "$KAFKA_JARS" && ls) >"$KAFKA_HOME/jars.txt"
    date -u +%FT%TZ >"$KAFKA_HOME/.complete"
    log "    $(wc -l <"$KAFKA_HOME/jars.txt") jars, $(du -sh "$KAFKA_JARS" | cut -f1), in $(( SECONDS - t ))s"
}

write_config() {
    mkdir -p "$KSTATE" "$DATA" "$RUN" "$LOGS"
    write_if_changed "$PROPS" <<PROPS
# Written by e2e/kafka.sh: one KRaft node (broker and controller) for tests.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$KHOST:$KCPORT
listeners=$LISTENERS
advertised.listeners=$LISTENERS
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$PROTOCOLS
log.dirs=$DATA
# tests create their topics: an unknown topic is an error, not a new topic
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
# one node: internal topics with one replica (exactly-once transactions need the transaction log)
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
PROPS
    write_if_changed "$KSTATE/log4j2.properties" <<'LOG4J'
# The broker logs to stdout (redirected to logs/kafka.log by e2e/kafka.sh).
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
LOG4J
    write_if_changed "$KSTATE/tools-log4j2.properties" <<'LOG4J'
status = warn
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
LOG4J
    write_if_changed "$KSTATE/tools.properties" <<'PROPS'
request.timeout.ms=5000
default.api.timeout.ms=5000
PROPS
}

kafka_tool() { # kafka_tool CLASS ARGS...: one of Kafka's command-line tools from the cached jars
    "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$KSTATE/tools-log4j2.properties" \
        -cp "$KAFKA_JARS/*" "$@"
}

# A real metadata round trip: Kafka's kafka-broker-api-versions tool (ApiVersions to every broker
# that the bootstrap's Metadata answer names).
broker_answers() {
    timeout 30 "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$KSTATE/tools-log4j2.properties" \
        -cp "$KAFKA_JARS/*" org.apache.kafka.tools.BrokerApiVersionsCommand \
        --bootstrap-server "$BOOTSTRAP" --command-config "$KSTATE/tools.properties" 2>&1 \
        | grep -q "^$KHOST:$KPORT (id: 1 "
}

# Ours when the pid file's process is java with our server.properties on its command line.
kafka_running() {
    is_running kafka || return 1
    tr '\0' '\n' <"/proc/$(pid_of kafka)/cmdline" 2>/dev/null | grep -qxF "$PROPS"
}

port_taken() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
port_open() { (exec 3<>"/dev/tcp/$KHOST/$KPORT") 2>/dev/null; }

wait_broker() { # wait_broker SECONDS: the port (cheap), then a real request (each try is a JVM)
    local deadline=$(( SECONDS + $1 )) next=$(( SECONDS + 15 ))
    until port_open && broker_answers; do
        check_alive kafka  # died: its log's tail, and FAILED
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "last lines of $LOGS/kafka.log:"
            tail -n 25 "$LOGS/kafka.log" >&2 || true
            die "timed out after $1s waiting for the broker at $BOOTSTRAP to answer"
        fi
        if [ "$SECONDS" -ge "$next" ]; then
            log "    still waiting for the broker at $BOOTSTRAP ($(( SECONDS - deadline + $1 ))s)"
            next=$(( SECONDS + 15 ))
        fi
        sleep 1
    done
}

kafka_up() {
    kafka_build
    need_java
    step "broker state in $KSTATE"
    write_config
    if kafka_running; then
        log "    Kafka already running (pid $(pid_of kafka))"
        wait_broker 120
        CURRENT_STEP="(finished)"
        log "Kafka $KAFKA_VERSION up at $BOOTSTRAP (already running)"
        print_env
        return 0
    fi
    step "ports $KPORT and $KCPORT free"
    local p
    if [ -n "$KPOD_HOST" ] && ! ip -4 -o addr show 2>/dev/null | grep -q "inet $KPOD_HOST/"; then
        die "NEPTUNE_KAFKA_POD_HOST=$KPOD_HOST is no address of this host (the pods' bridge cni0 gets 10.244.0.1 when the local cluster's first pod starts: e2e/cluster.sh up)"
    fi
    for p in "$KPORT" "$KCPORT" ${KPOD_HOST:+"$KPOD_PORT"}; do
        if port_taken "$p"; then
            ss -Hltnp "sport = :$p" >&2 || true
            die "port $p is taken by another process (set NEPTUNE_KAFKA_PORT / NEPTUNE_KAFKA_CONTROLLER_PORT)"
        fi
    done
    if [ ! -f "$DATA/meta.properties" ]; then
        step "format the KRaft storage (once)"
        local cid; cid=$(kafka_tool kafka.tools.StorageTool random-uuid)
        echo "$cid" >"$KSTATE/cluster.id"
        kafka_tool kafka.tools.StorageTool format --standalone -t "$cid" -c "$PROPS" >>"$LOGS/format.log" 2>&1 \
            || { tail -n 25 "$LOGS/format.log" >&2; die "kafka-storage format failed (log: $LOGS/format.log)"; }
        log "    cluster id $cid"
    else
        log "    storage formatted already (cluster id $(sed -n 's/^cluster.id=//p' "$DATA/meta.properties"))"
    fi
    step "start the broker ($BOOTSTRAP, controller $KHOST:$KCPORT${KPOD_HOST:+, pods $KPOD_HOST:$KPOD_PORT})"
    rm -f "$RUN/kafka.pid"  # stale (not our broker): its pid may belong to another program now
    # keep one older log: logs/kafka.log.1
    if [ -f "$LOGS/kafka.log" ] && [ "$(stat -c %s "$LOGS/kafka.log")" -gt 52428800 ]; then
        mv -f "$LOGS/kafka.log" "$LOGS/kafka.log.1"
    fi
    # shellcheck disable=SC2086  # KHEAP is a list of JVM options
    start_proc kafka "$JAVA" $KHEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$KSTATE/log4j2.properties" -Dkafka.logs.dir="$LOGS" \
        -cp "$KAFKA_JARS/*" kafka.Kafka "$PROPS"
    step "wait until the broker answers (ApiVersions and Metadata at $BOOTSTRAP)"
    wait_broker 180
    CURRENT_STEP="(finished)"
    log "Kafka $KAFKA_VERSION up at $BOOTSTRAP (pid $(pid_of kafka), log $LOGS/kafka.log)"
    print_env
}

kafka_down() {
    step "stop the broker"
    if [ ! -f "$RUN/kafka.pid" ]; then log "    not running (no pid file)"; return 0; fi
    if ! kafka_running; then log "    not running (stale pid file removed)"; rm -f "$RUN/kafka.pid"; return 0; fi
    local pid i; pid=$(pid_of kafka)
    log "    SIGTERM to pid $pid (controlled shutdown, up to ${KSTOP_TIMEOUT}s)"
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 $(( KSTOP_TIMEOUT * 2 ))); do kafka_running || break; sleep 0.5; done
    if kafka_running; then
        log "    still running after ${KSTOP_TIMEOUT}s: SIGKILL (the next start recovers its logs)"
        kill -9 "$pid" 2>/dev/null || true
        for i in $(seq 1 20); do kafka_running || break; sleep 0.5; done
    fi
    kafka_running && die "pid $pid did not exit"
    rm -f "$RUN/kafka.pid"
    log "    stopped"
}

kafka_status() {
    echo "version: $KAFKA_VERSION ($(built && echo "built in $KAFKA_JARS" || echo "not built"))"
    echo "state:   $KSTATE (log $LOGS/kafka.log)"
    if kafka_running; then
        need_java
        echo "kafka: running (pid $(pid_of kafka)), $(broker_answers && echo answering || echo "not answering") at $BOOTSTRAP"
    else
        echo "kafka: stopped"
    fi
}

case "${1:-}" in
    build) kafka_build; CURRENT_STEP="(finished)" ;;
    up) kafka_up ;;
    down) kafka_down; CURRENT_STEP="(finished)"; log "Kafka down (data kept in $DATA)" ;;
    status) kafka_status ;;
    env) print_env ;;
    reset)
        kafka_down
        case "$KSTATE" in /|"") die "refusing to remove NEPTUNE_KAFKA_STATE=$KSTATE" ;; esac
        step "remove $KSTATE"
        rm -rf "$KSTATE"
        log "Kafka reset: the next up formats fresh storage" ;;
    *) echo "usage: $0 build|up|down|status|env|reset" >&2; exit 2 ;;
esac

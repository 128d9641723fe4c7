# Functions to run the service with its local dependencies: a redis-server, dev-kafka and transfer-service.
# Sourced by scripts/run-local, scripts/api-conformance and scripts/container-test. Each start_* function
# records the child's pid in STACK_PIDS; stop_stack stops them in reverse order (the service first, while its
# dependencies are still there). Redis and dev-kafka run in sessions of their own (setsid): a terminal's Ctrl-C
# goes to its whole foreground process group, and would otherwise stop them while the service still needs them
# to shut down (it would wait for Kafka until its stop budget ran out).

STACK_PIDS=()

# A TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_redis PORT DIR: redis-server with AOF in DIR, unless one already answers on PORT.
start_redis() {
  local port=$1 dir=$2
  if redis-cli -p "$port" ping >/dev/null 2>&1; then
    echo "using the redis-server already on port $port" >&2
    return
  fi
  mkdir -p "$dir"
  setsid redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes --appendfsync everysec \
    --save "" --daemonize no >"$dir/redis.log" 2>&1 &
  local pid=$!
  STACK_PIDS+=("$pid")
  for _ in $(seq 300); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "redis-server did not start on port $port:" >&2
  tail -n 5 "$dir/redis.log" >&2
  return 1
}

# start_redis_cluster FIRST_PORT DIR: a Redis Cluster of 3 primaries and 3 replicas on ports FIRST_PORT to
# FIRST_PORT+5 (each node also uses its port + 10000 for the cluster bus), data in DIR/<port>, unless one already
# answers there. Sets REDIS_CLUSTER_NODES. A short node timeout makes failovers quick on a laptop.
start_redis_cluster() {
  local first=$1 dir=$2 port ports=() pid
  for port in $(seq "$first" $((first + 5))); do ports+=("$port"); done
  REDIS_CLUSTER_NODES=$(printf '127.0.0.1:%s,' "${ports[@]}")
  REDIS_CLUSTER_NODES=${REDIS_CLUSTER_NODES%,}
  export REDIS_CLUSTER_NODES
  if redis-cli -p "$first" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
    echo "using the Redis Cluster already on ports $first-$((first + 5))" >&2
    return
  fi
  for port in "${ports[@]}"; do
    mkdir -p "$dir/$port"
    setsid redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/$port" --cluster-enabled yes \
      --cluster-config-file nodes.conf --cluster-node-timeout 2000 --appendonly yes --appendfsync everysec \
      --save "" --daemonize no >"$dir/$port/redis.log" 2>&1 &
    pid=$!
    STACK_PIDS+=("$pid")
    for _ in $(seq 100); do
      redis-cli -p "$port" ping >/dev/null 2>&1 && break
      kill -0 "$pid" 2>/dev/null || { tail -n 5 "$dir/$port/redis.log" >&2; return 1; }
      sleep 0.1
    done
  done
  # Nodes restarted with their nodes.conf find each other again; new ones are formed into a cluster.
  if ! redis-cli -p "$first" cluster info | grep -q 'cluster_known_nodes:6'; then
    redis-cli --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
      || { tail -n 20 "$dir/create.log" >&2; return 1; }
  fi
  for _ in $(seq 300); do
    local ok=0
    for port in "${ports[@]}"; do
      redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && ok=$((ok + 1))
    done
    [ "$ok" = 6 ] && return 0
    sleep 0.1
  done
  echo "the Redis Cluster on ports $first-$((first + 5)) did not reach cluster_state:ok" >&2
  return 1
}

# start_dev_kafka BIN LOG: librdkafka's mock cluster; sets KAFKA_BOOTSTRAP_SERVERS from its first line of output.
start_dev_kafka() {
  local bin=$1 log=$2
  setsid "$bin/dev-kafka" >"$log.stdout" 2>"$log" </dev/null &
  STACK_PIDS+=($!)
  KAFKA_BOOTSTRAP_SERVERS=""
  for _ in $(seq 300); do
    KAFKA_BOOTSTRAP_SERVERS=$(head -n 1 "$log.stdout" 2>/dev/null)
    [ -n "$KAFKA_BOOTSTRAP_SERVERS" ] && break
    sleep 0.1
  done
  [ -n "$KAFKA_BOOTSTRAP_SERVERS" ] || { echo "dev-kafka did not start; see $log" >&2; return 1; }
  export KAFKA_BOOTSTRAP_SERVERS
}

# start_service BIN LOG [ARGS...]: the service in the background, with the environment as it is.
start_service() {
  local bin=$1 log=$2
  shift 2
  "$bin/transfer-service" "$@" >"$log" 2>&1 &
  STACK_PIDS+=($!)
}

# wait_until_ready PORT: polls /readyz until it answers 200 (up to 60 s).
wait_until_ready() {
  local port=$1
  for _ in $(seq 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  echo "the service on port $port did not become ready" >&2
  return 1
}

stop_stack() {
  local i
  for ((i = ${#STACK_PIDS[@]} - 1; i >= 0; i--)); do
    kill "${STACK_PIDS[i]}" 2>/dev/null || true
    wait "${STACK_PIDS[i]}" 2>/dev/null || true
  done
  STACK_PIDS=()
}

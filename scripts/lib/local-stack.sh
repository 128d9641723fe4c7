# Functions to run the service with its local dependencies: a redis-server, dev-kafka and transfer-service.
# Sourced by scripts/run-local, scripts/api-conformance and scripts/container-test. Each start_* function
# records the child's pid in STACK_PIDS; stop_stack stops them in reverse order (the service first, while its
# dependencies are still there).

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
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes --appendfsync everysec \
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

# start_dev_kafka BIN LOG: librdkafka's mock cluster; sets KAFKA_BOOTSTRAP_SERVERS from its first line of output.
start_dev_kafka() {
  local bin=$1 log=$2
  "$bin/dev-kafka" >"$log.stdout" 2>"$log" </dev/null &
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

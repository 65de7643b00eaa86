# Shared by the scripts in this folder: where things live. Source it, don't run it.
#
# CHAT_RUN_DIR (default .run), NATS_PORT (4222), NATS_MONITOR_PORT (8222),
# NATS_WS_PORT (8080), CHAT_WEB_PORT (8000) and NATS_ROUTE_PORT (6222, clusters) let two
# stacks run side by side; the nodes of a cluster (scripts/up --cluster N) use these plus
# 0, 1, 2, ...
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
run_dir="${CHAT_RUN_DIR:-$root/.run}"   # git-ignored: secrets, config, store, logs, pids
mkdir -p "$run_dir"
run_dir="$(cd "$run_dir" && pwd)"
log_dir="$run_dir/logs"
pid_dir="$run_dir/pids"
secrets_dir="$run_dir/secrets"          # made by chat-admin init, mode 0700/0600
nats_port="${NATS_PORT:-4222}"
monitor_port="${NATS_MONITOR_PORT:-8222}"
ws_port="${NATS_WS_PORT:-8080}"
web_port="${CHAT_WEB_PORT:-8000}"
route_port="${NATS_ROUTE_PORT:-6222}"
bin_dir="$root/target/release"

# How the stack was last brought up (scripts/up writes it): nodes (0: a single
# server) and tls (0 or 1).
nodes=0 tls=0
stack_file="$run_dir/stack.env"
# shellcheck disable=SC1090
[ -f "$stack_file" ] && source "$stack_file"

# stack_urls: exports NATS_URL (every node, comma-separated) and, with TLS, NATS_CA for
# the stack described by $nodes and $tls. The scripts manage this stack: its URL
# follows NATS_PORT, whatever NATS_URL says.
stack_urls() {
  local scheme=nats count=1 i urls=()
  [ "$tls" = 1 ] && scheme=tls
  [ "$nodes" -gt 0 ] && count="$nodes"
  for i in $(seq 0 $((count - 1))); do urls+=("$scheme://127.0.0.1:$((nats_port + i))"); done
  NATS_URL="$(IFS=,; echo "${urls[*]}")"
  export NATS_URL
  if [ "$tls" = 1 ]; then export NATS_CA="$run_dir/tls/ca.pem"; else unset NATS_CA; fi
}
stack_urls
export CHAT_RUN_DIR="$run_dir"

# server_names: the pid-file names of the stack's servers.
server_names() {
  if [ "$nodes" -gt 0 ]; then seq -f "nats-%g" 1 "$nodes"; else echo nats-server; fi
}

# alive PID: running, and not merely a zombie waiting for whoever adopted it (the
# scripts' background processes outlive their parent) to reap it.
alive() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "${state#Z}" = "$state" ]
}

# is_running NAME: whether the process recorded in NAME's pid file is alive.
is_running() {
  local pid_file="$pid_dir/$1.pid"
  [ -f "$pid_file" ] && alive "$(cat "$pid_file")"
}

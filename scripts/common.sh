# Shared by the scripts in this folder: where things live. Source it, don't run it.
#
# CHAT_RUN_DIR (default .run), NATS_PORT (4222), NATS_MONITOR_PORT (8222),
# NATS_WS_PORT (8080) and CHAT_WEB_PORT (8000) let two stacks run side by side.
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
# The scripts manage this stack: its URL follows NATS_PORT, whatever NATS_URL says.
export NATS_URL="nats://127.0.0.1:$nats_port"
export CHAT_RUN_DIR="$run_dir"
bin_dir="$root/target/release"

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

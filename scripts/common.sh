# Shared by the scripts in this folder: where things live. Source it, don't run it.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
run_dir="$root/.run"          # git-ignored: server store, logs, pid files
log_dir="$run_dir/logs"
pid_dir="$run_dir/pids"
nats_port="${CHAT_NATS_PORT:-4222}"
monitor_port="${CHAT_NATS_MONITOR_PORT:-8222}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:$nats_port}"
bin_dir="$root/target/release"

# is_running NAME: whether the process recorded in NAME's pid file is alive.
is_running() {
  local pid_file="$pid_dir/$1.pid"
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

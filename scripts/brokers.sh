#!/usr/bin/env bash
# Starts, stops or shows the two local Tansu brokers ("source" and "target" clusters, in-memory,
# bound to 127.0.0.1 on free ports) used by the demo and for trying the CLI by hand.
# Their addresses are written to .test-infra/brokers.env (SOURCE_BOOTSTRAP, TARGET_BOOTSTRAP).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.test-infra/brokers"
env_file="$root/.test-infra/brokers.env"

alive() { [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

start_one() {
  local name=$1 port
  if alive "$name"; then return; fi
  port=$("$root/.test-infra/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  nohup "$root/.test-infra/bin/tansu" broker \
    --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ --cluster-id "$name" >"$state/$name.log" 2>&1 &
  echo $! >"$state/$name.pid"
  echo "$port" >"$state/$name.port"
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return; fi
    sleep 0.1
  done
  echo "brokers: $name broker did not start; see $state/$name.log" >&2
  exit 1
}

case "${1:-}" in
  start)
    "$root/scripts/install-test-infra.sh" >/dev/null
    mkdir -p "$state"
    start_one source
    start_one target
    printf 'SOURCE_BOOTSTRAP=127.0.0.1:%s\nTARGET_BOOTSTRAP=127.0.0.1:%s\n' \
      "$(cat "$state/source.port")" "$(cat "$state/target.port")" >"$env_file"
    cat "$env_file"
    ;;
  stop)
    for name in source target; do
      if alive "$name"; then kill "$(cat "$state/$name.pid")"; fi
      rm -f "$state/$name.pid" "$state/$name.port"
    done
    rm -f "$env_file"
    echo "brokers: stopped"
    ;;
  status)
    for name in source target; do
      if alive "$name"; then echo "$name: running on 127.0.0.1:$(cat "$state/$name.port")"; else echo "$name: stopped"; fi
    done
    ;;
  *)
    echo "usage: scripts/brokers.sh start|stop|status" >&2
    exit 2
    ;;
esac

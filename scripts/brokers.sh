#!/usr/bin/env bash
# Starts, stops or shows the local Apache Kafka clusters (KRaft, bound to 127.0.0.1 on free ports)
# used by the demo and for trying the CLI by hand: "source" and "target" (one node each, with
# PLAINTEXT, SSL, mTLS, SASL_PLAINTEXT, SASL_SSL and re-authentication listeners) and, on request,
# "triple" (three nodes). Listeners, users and certificates: see tools/clusters.py.
# `start` (source and target unless clusters are named) writes the PLAINTEXT addresses of the running
# clusters to .test-infra/brokers.env (SOURCE_BOOTSTRAP, TARGET_BOOTSTRAP, TRIPLE_BOOTSTRAP).
# `sample` gives the source cluster something to back up: topic `orders` (3 partitions, 6000 orders
# over the last hour, keys, tombstones, headers) and consumer group `billing` committed on it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
env_file="$root/.test-infra/brokers.env"
clusters() { "$root/.test-infra/bin/python" "$root/tools/clusters.py" "$@"; }

case "${1:-}" in
  start)
    shift
    "$root/scripts/install-test-infra.sh" >/dev/null
    names=("$@")
    [ $# -eq 0 ] && names=(source target)
    clusters start "${names[@]}" >/dev/null
    clusters env >"$env_file.partial"
    mv "$env_file.partial" "$env_file"
    cat "$env_file"
    ;;
  stop)
    shift
    clusters stop "$@"
    [ $# -eq 0 ] && rm -f "$env_file"
    echo "brokers: stopped"
    ;;
  status)
    clusters status
    ;;
  sample)
    [ -f "$env_file" ] || { echo "brokers: not started (scripts/brokers.sh start)" >&2; exit 1; }
    . "$env_file"
    "$root/.test-infra/bin/python" "$root/tools/demo.py" produce "$SOURCE_BOOTSTRAP" orders >/dev/null
    "$root/.test-infra/bin/python" "$root/tools/demo.py" commit-group "$SOURCE_BOOTSTRAP" orders billing
    echo "brokers: topic orders (6000 records, 3 partitions) and group billing on $SOURCE_BOOTSTRAP"
    ;;
  *)
    echo "usage: scripts/brokers.sh start [source|target|triple ...] | stop [NAME ...] | status | sample" >&2
    exit 2
    ;;
esac

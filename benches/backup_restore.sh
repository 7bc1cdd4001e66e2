#!/usr/bin/env bash
# Backup and restore throughput and memory on Apache Kafka, as ratios to a raw librdkafka consume
# (backup) and a raw librdkafka produce (restore) of the same records in the same run (absolute numbers drift
# +-40% on shared 2-core machines; the ratio is what counts).
# Usage: benches/backup_restore.sh    (BENCH_MB=1024 by default; e.g. BENCH_MB=256 for a quick run)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mb=${BENCH_MB:-1024}
size=1024
records=$((mb * 1024 * 1024 / size))
work=$(mktemp -d)
python=.test-infra/bin/python

scripts/install-test-infra.sh >/dev/null
cargo build --release --locked -p kafka-backup-cli 2>&1 | tail -1

# A fresh single-node Apache Kafka cluster ("source", tools/clusters.py), stopped at the end.
$python tools/clusters.py stop source
bootstrap=$($python tools/clusters.py start source | $python -c 'import json, sys; print(json.load(sys.stdin)["bootstrap"])')
trap '$python tools/clusters.py stop source; rm -rf "$work"' EXIT

# timed NAME COMMAND...: runs COMMAND under /usr/bin/time -v, output in $work/NAME.{out,time};
# sets $seconds (wall), $rss_mib (peak RSS) and $rate (MiB/s of the topic's bytes).
timed() {
  local name=$1 started ended rss_kb
  shift
  started=$(date +%s.%N)
  /usr/bin/time -v "$@" >"$work/$name.out" 2>"$work/$name.time"
  ended=$(date +%s.%N)
  seconds=$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.3f", b - a }')
  rss_kb=$(awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$work/$name.time")
  rss_mib=$((rss_kb / 1024))
  rate=$(awk -v b="$ref_bytes" -v s="$seconds" 'BEGIN { printf "%.1f", b / s / 1048576 }')
}

echo "filling topic bench: $records records of $size bytes ($mb MiB)..."
fill_started=$(date +%s.%N)
$python tools/bench_reference.py fill "$bootstrap" bench "$records" "$size"
fill_ended=$(date +%s.%N)
produce_seconds=$(awk -v a="$fill_started" -v b="$fill_ended" 'BEGIN { printf "%.3f", b - a }')

read -r ref_seconds ref_bytes < <($python tools/bench_reference.py consume "$bootstrap" bench "$records")
ref_rate=$(awk -v b="$ref_bytes" -v s="$ref_seconds" 'BEGIN { printf "%.1f", b / s / 1048576 }')
echo "reference: raw consume by confluent-kafka/librdkafka: ${ref_seconds}s, ${ref_rate} MiB/s"

printf '\n%-10s %10s %12s %10s %14s %12s\n' codec seconds "MiB/s" ratio "peak RSS MiB" "stored MiB"
for codec in none lz4 zstd; do
  cat >"$work/$codec.yaml" <<YAML
mode: backup
backup_id: bench-$codec
source:
  bootstrap_servers: ["$bootstrap"]
  topics:
    include: ["bench"]
storage:
  backend: filesystem
  path: $work/store
backup:
  compression: $codec
YAML
  timed "$codec" target/release/kafka-backup backup --config "$work/$codec.yaml"
  stored=$(du -sm "$work/store/bench-$codec" | cut -f1)
  ratio=$(awk -v r="$rate" -v f="$ref_rate" 'BEGIN { printf "%.2f", r / f }')
  printf '%-10s %10s %12s %10s %14s %12s\n' "$codec" "$seconds" "$rate" "${ratio}x" "$rss_mib" "$stored"
  [ "$codec" = lz4 ] && { fs_backup_rate=$rate; fs_backup_rss=$rss_mib; }
  grep -q "$records records" "$work/$codec.out" || { echo "backup did not hold all $records records:"; cat "$work/$codec.out"; exit 1; }
done
echo
echo "backup ratio = our backup throughput / raw librdkafka consume throughput (same broker, same data, same run)"

produce_rate=$(awk -v b="$ref_bytes" -v s="$produce_seconds" 'BEGIN { printf "%.1f", b / s / 1048576 }')
echo
echo "reference: raw produce of the same records by confluent-kafka/librdkafka: ${produce_seconds}s, ${produce_rate} MiB/s"
printf '\n%-10s %10s %12s %10s %14s\n' restore seconds "MiB/s" ratio "peak RSS MiB"
for codec in lz4; do
  cat >"$work/restore-$codec.yaml" <<YAML
mode: restore
backup_id: bench-$codec
target:
  bootstrap_servers: ["$bootstrap"]
storage:
  backend: filesystem
  path: $work/store
restore:
  topic_mapping:
    bench: bench-restored-$codec
YAML
  timed "restore-$codec" target/release/kafka-backup restore --config "$work/restore-$codec.yaml"
  ratio=$(awk -v r="$rate" -v f="$produce_rate" 'BEGIN { printf "%.2f", r / f }')
  printf '%-10s %10s %12s %10s %14s\n' "from $codec" "$seconds" "$rate" "${ratio}x" "$rss_mib"
  fs_restore_rate=$rate
  fs_restore_rss=$rss_mib
  grep -q "Restored $records records" "$work/restore-$codec.out" || { echo "restore did not write all $records records:"; cat "$work/restore-$codec.out"; exit 1; }
done
echo
echo "restore ratio = our restore throughput / raw librdkafka produce throughput (same broker, same records, same run)"
echo "throughput counts key+value bytes of the topic over the whole process wall time"

# The same lz4 backup and restore on the S3 emulator (moto, in memory on this machine), as ratios to
# the filesystem store measured above in this run. moto runs in Python on the same two cores, so
# this measures our S3 path plus the emulator, a lower bound for a real bucket.
s3_port=$($python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkfifo "$work/s3.stdin"
$python tools/store_emulator.py s3 "$s3_port" "$work/s3" <"$work/s3.stdin" >"$work/s3.ready" &
exec 9>"$work/s3.stdin" # the emulator runs until this script exits and closes it
until grep -q ready "$work/s3.ready" 2>/dev/null; do sleep 0.2; done
$python tools/store_admin.py create s3 "http://127.0.0.1:$s3_port" bench
s3_storage="storage:
  backend: s3
  bucket: bench
  endpoint: http://127.0.0.1:$s3_port
  allow_http: true
  path_style: true
  region: us-east-1
  access_key_id: bench
  secret_access_key: bench"
cat >"$work/s3-backup.yaml" <<YAML
mode: backup
backup_id: bench-s3
source:
  bootstrap_servers: ["$bootstrap"]
  topics:
    include: ["bench"]
$s3_storage
backup:
  compression: lz4
YAML
cat >"$work/s3-restore.yaml" <<YAML
mode: restore
backup_id: bench-s3
target:
  bootstrap_servers: ["$bootstrap"]
$s3_storage
restore:
  topic_mapping:
    bench: bench-restored-s3
YAML
printf '\n%-16s %10s %12s %16s %14s\n' "S3 (moto), lz4" seconds "MiB/s" "vs filesystem" "peak RSS MiB"
timed s3-backup target/release/kafka-backup backup --config "$work/s3-backup.yaml"
grep -q "$records records" "$work/s3-backup.out" || { echo "S3 backup did not hold all $records records:"; cat "$work/s3-backup.out"; exit 1; }
ratio=$(awk -v r="$rate" -v f="$fs_backup_rate" 'BEGIN { printf "%.2f", r / f }')
printf '%-16s %10s %12s %16s %14s\n' backup "$seconds" "$rate" "${ratio}x" "$rss_mib (fs $fs_backup_rss)"
timed s3-restore target/release/kafka-backup restore --config "$work/s3-restore.yaml"
grep -q "Restored $records records" "$work/s3-restore.out" || { echo "S3 restore did not write all $records records:"; cat "$work/s3-restore.out"; exit 1; }
ratio=$(awk -v r="$rate" -v f="$fs_restore_rate" 'BEGIN { printf "%.2f", r / f }')
printf '%-16s %10s %12s %16s %14s\n' restore "$seconds" "$rate" "${ratio}x" "$rss_mib (fs $fs_restore_rss)"

#!/usr/bin/env bash
# Backup and restore throughput and memory on Apache Kafka, as ratios to a raw librdkafka consume
# (backup) and a raw librdkafka produce (restore) of the same records in the same run (absolute
# numbers drift +-40% on shared 2-core machines; the ratio is what counts), for 1 and 4 partitions,
# then the same backup and restore encrypted (storage.encryption) and on the S3 emulator, each relative
# to the plain filesystem store measured in the same run; a topic whose producer compressed its
# batches (what segment compression still gains on it, and costs); many small partitions
# against the same bytes on 4 partitions; many topics against one; and a group snapshot of many
# consumer groups.
# Usage: benches/backup_restore.sh
#   BENCH_MB=1024          topic size (e.g. 256 for a quick run)
#   BENCH_PARTITIONS="1 4" partition counts, one topic each
#   BENCH_DATA=text        text (JSON-like events that compress ~6x) or random (incompressible)
#   BENCH_PRODUCER_CODECS="lz4 zstd"  producer codecs of the producer-compressed case ("" skips it)
#   BENCH_MANY=1000        partitions of 1 MiB each in the many-partitions case (0 skips it)
#   BENCH_TOPICS=500       topics of the many-topics case (0 skips it): that many one-partition topics
#                          of 100 small records backed up in one run and restored under new names
#                          (the topics created by the restore), against one topic holding them all
#   BENCH_GROUPS=1000      consumer groups of the group-snapshot case (0 skips it): a snapshot backup
#                          of a small topic whose groups all committed offsets on it, against the
#                          same backup snapshotting no group
#   BENCH_STATIC=2         rounds of the static-binary case (0 skips it): the musl binary of
#                          scripts/static-binary.sh against the glibc release binary, alternating,
#                          zstd backup and restore of the last topic
#   BENCH_STATIC_BINARY=PATH  the static binary to compare instead (e.g. one built with another
#                          allocator)
#   BENCH_CONTINUOUS="100 1000"  partition counts of the continuous case ("" skips it): quiet
#                          partitions, one probe record at a time to a random one, time from its
#                          produce to its committed segment (segment_max_interval_ms 1000)
#   BENCH_WORKERS="1 2 4"  worker counts of the shared-backup case ("" skips it): 128 MiB produced
#                          to 24 partitions backed up by that many workers of one group (catch-up
#                          time, CPU and RSS per worker), then a worker killed (time until its
#                          partitions are backed up again), one added and one stopped (rebalances);
#                          then that backup restored by as many workers (restore.group_id), with and
#                          without one killed
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mb=${BENCH_MB:-1024}
partition_counts=${BENCH_PARTITIONS:-1 4}
data=${BENCH_DATA:-text}
producer_codecs=${BENCH_PRODUCER_CODECS-lz4 zstd}
many=${BENCH_MANY:-1000}
group_count=${BENCH_GROUPS:-1000}
topic_count=${BENCH_TOPICS:-500}
continuous=${BENCH_CONTINUOUS-100 1000}
worker_counts=${BENCH_WORKERS-1 2 4}
static_rounds=${BENCH_STATIC:-2}
size=1024
records=$((mb * 1024 * 1024 / size))
work=$(mktemp -d)
python=.test-infra/bin/python

scripts/install-test-infra.sh >/dev/null
cargo build --release --locked -p kafka-backup-cli 2>&1 | tail -1

# A fresh single-node Apache Kafka cluster ("source", tools/clusters.py), stopped at the end.
$python tools/clusters.py stop source
cluster=$($python tools/clusters.py start source)
bootstrap=$($python -c 'import json, sys; print(json.loads(sys.argv[1])["bootstrap"])' "$cluster")
broker_pid=$($python -c 'import json, sys; print(json.loads(sys.argv[1])["nodes"][0]["pid"])' "$cluster")
trap '$python tools/clusters.py stop source; rm -rf "$work"' EXIT

# broker_ticks: CPU time (user + system, in clock ticks) the broker has used so far.
broker_ticks() { awk '{ print $14 + $15 }' "/proc/$broker_pid/stat"; }

# timed NAME COMMAND...: runs COMMAND under /usr/bin/time -v, output in $work/NAME.{out,time};
# sets $seconds (wall), $rss_mib (peak RSS), $rate (MiB/s of the topic's bytes), $cpu (our CPU
# seconds) and $broker_cpu (the broker's CPU seconds meanwhile).
timed() {
  local name=$1 started ended rss_kb broker_before
  shift
  broker_before=$(broker_ticks)
  started=$(date +%s.%N)
  if ! /usr/bin/time -v "$@" >"$work/$name.out" 2>"$work/$name.time"; then
    echo "$name failed:"; tail -n 30 "$work/$name.out" "$work/$name.time"; exit 1
  fi
  ended=$(date +%s.%N)
  seconds=$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.3f", b - a }')
  rss_kb=$(awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$work/$name.time")
  rss_mib=$((rss_kb / 1024))
  rate=$(awk -v b="$ref_bytes" -v s="$seconds" 'BEGIN { printf "%.1f", b / s / 1048576 }')
  cpu=$(awk -F: '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$work/$name.time")
  broker_cpu=$(awk -v a="$broker_before" -v b="$(broker_ticks)" -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / t }')
}

ratio() { awk -v r="$1" -v f="$2" 'BEGIN { printf "%.2fx", r / f }'; }

# config NAME MODE TOPIC BACKUP_ID STORAGE SECTION: writes $work/NAME.yaml.
config() {
  local name=$1 mode=$2 topic=$3 id=$4 storage=$5 section=$6
  if [ "$mode" = backup ]; then
    printf 'mode: backup\nbackup_id: %s\nsource:\n  bootstrap_servers: ["%s"]\n  topics:\n    include: ["%s"]\n%s\n%s\n' \
      "$id" "$bootstrap" "$topic" "$storage" "$section" >"$work/$name.yaml"
  else
    printf 'mode: restore\nbackup_id: %s\ntarget:\n  bootstrap_servers: ["%s"]\n%s\n%s\n' \
      "$id" "$bootstrap" "$storage" "$section" >"$work/$name.yaml"
  fi
}

fs_storage="storage:
  backend: filesystem
  path: $work/store"

for partitions in $partition_counts; do
  topic=bench-p$partitions
  echo
  echo "== $partitions partition(s): $records records of $size bytes ($mb MiB, $data values)"
  produce_seconds=$($python tools/bench_reference.py fill "$bootstrap" "$topic" "$records" "$size" "$partitions" "$data")
  read -r ref_seconds ref_bytes < <($python tools/bench_reference.py consume "$bootstrap" "$topic" "$records" "$partitions")
  ref_rate=$(awk -v b="$ref_bytes" -v s="$ref_seconds" 'BEGIN { printf "%.1f", b / s / 1048576 }')
  produce_rate=$(awk -v b="$ref_bytes" -v s="$produce_seconds" 'BEGIN { printf "%.1f", b / s / 1048576 }')
  echo "reference: raw consume by confluent-kafka/librdkafka: ${ref_seconds}s, ${ref_rate} MiB/s"
  echo "reference: raw produce (the fill) by confluent-kafka/librdkafka: ${produce_seconds}s, ${produce_rate} MiB/s"
  printf '%-16s %10s %12s %10s %14s %12s\n' case seconds "MiB/s" ratio "peak RSS MiB" "stored MiB"
  for codec in none lz4 zstd; do
    id=bench-p$partitions-$codec
    config "$id" backup "$topic" "$id" "$fs_storage" "backup:
  compression: $codec"
    timed "$id" target/release/kafka-backup backup --config "$work/$id.yaml"
    grep -q "$records records" "$work/$id.out" || { echo "backup did not hold all $records records:"; cat "$work/$id.out"; exit 1; }
    stored=$(du -sm "$work/store/$id" | cut -f1)
    printf '%-16s %10s %12s %10s %14s %12s\n' "backup $codec" "$seconds" "$rate" "$(ratio "$rate" "$ref_rate")" "$rss_mib" "$stored"
    [ "$codec" = zstd ] && { fs_backup_rate=$rate; fs_backup_rss=$rss_mib; }
  done
  config "restore-p$partitions" restore "$topic" "bench-p$partitions-zstd" "$fs_storage" "restore:
  topic_mapping:
    $topic: $topic-restored"
  timed "restore-p$partitions" target/release/kafka-backup restore --config "$work/restore-p$partitions.yaml"
  grep -q "Restored $records records" "$work/restore-p$partitions.out" || { echo "restore did not write all $records records:"; cat "$work/restore-p$partitions.out"; exit 1; }
  printf '%-16s %10s %12s %10s %14s\n' "restore (zstd)" "$seconds" "$rate" "$(ratio "$rate" "$produce_rate")" "$rss_mib"
  fs_restore_rate=$rate
  fs_restore_rss=$rss_mib
  last_topic=$topic
done
echo
echo "backup ratio = our backup throughput / raw librdkafka consume throughput; restore ratio = our"
echo "restore throughput / raw librdkafka produce throughput (same broker, same records, same run);"
echo "throughput counts key+value bytes of the topic over the whole process wall time"

# against_filesystem LABEL ID STORAGE: the last topic's zstd backup and restore once more on
# STORAGE (backup id ID), as ratios to the plain filesystem store measured above in this run.
against_filesystem() {
  local label=$1 id=$2 storage=$3
  config "$id-backup" backup "$last_topic" "$id" "$storage" "backup:
  compression: zstd"
  config "$id-restore" restore "$last_topic" "$id" "$storage" "restore:
  topic_mapping:
    $last_topic: $last_topic-restored-$id"
  echo
  printf '%-22s %10s %12s %16s %14s\n' "$label, $last_topic" seconds "MiB/s" "vs filesystem" "peak RSS MiB"
  timed "$id-backup" target/release/kafka-backup backup --config "$work/$id-backup.yaml"
  grep -q "$records records" "$work/$id-backup.out" || { echo "$label backup did not hold all $records records:"; cat "$work/$id-backup.out"; exit 1; }
  printf '%-22s %10s %12s %16s %14s\n' "backup zstd" "$seconds" "$rate" "$(ratio "$rate" "$fs_backup_rate")" "$rss_mib (fs $fs_backup_rss)"
  timed "$id-restore" target/release/kafka-backup restore --config "$work/$id-restore.yaml"
  grep -q "Restored $records records" "$work/$id-restore.out" || { echo "$label restore did not write all $records records:"; cat "$work/$id-restore.out"; exit 1; }
  printf '%-22s %10s %12s %16s %14s\n' "restore (zstd)" "$seconds" "$rate" "$(ratio "$rate" "$fs_restore_rate")" "$rss_mib (fs $fs_restore_rss)"
}

# With client-side encryption (AES-256-GCM, a random key).
head -c 32 /dev/urandom | base64 >"$work/bench.key"
against_filesystem encrypted bench-encrypted "storage:
  backend: filesystem
  path: $work/store-encrypted
  encryption:
    key_file: $work/bench.key"

# On the S3 emulator (moto, in memory on this machine). moto runs in Python on the same two cores,
# so this measures our S3 path plus the emulator, a lower bound for a real bucket.
s3_port=$($python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkfifo "$work/s3.stdin"
$python tools/store_emulator.py s3 "$s3_port" "$work/s3" <"$work/s3.stdin" >"$work/s3.ready" &
exec 9>"$work/s3.stdin" # the emulator runs until this script exits and closes it
until grep -q ready "$work/s3.ready" 2>/dev/null; do sleep 0.2; done
$python tools/store_admin.py create s3 "http://127.0.0.1:$s3_port" bench
against_filesystem "S3 (moto)" bench-s3 "storage:
  backend: s3
  bucket: bench
  endpoint: http://127.0.0.1:$s3_port
  allow_http: true
  path_style: true
  region: us-east-1
  access_key_id: bench
  secret_access_key: bench"

# The static binary (musl libc, its allocator) against the glibc binary: backup and restore of the
# last topic, alternating binaries for BENCH_STATIC rounds, each round into fresh backup ids.
if [ "$static_rounds" != 0 ]; then
  static_binary=${BENCH_STATIC_BINARY:-$(scripts/static-binary.sh)}
  echo
  printf '%-30s %10s %14s %10s %14s\n' "static vs glibc, $last_topic" "glibc s" "glibc RSS MiB" "static s" "static RSS MiB"
  for round in $(seq "$static_rounds"); do
    for step in backup restore; do
      line=("$step zstd, round $round")
      for build in glibc static; do
        binary=target/release/kafka-backup
        [ "$build" = static ] && binary=$static_binary
        id=bench-$build-$round
        if [ "$step" = backup ]; then
          config "$id-backup" backup "$last_topic" "$id" "$fs_storage" "backup:
  compression: zstd"
        else
          config "$id-restore" restore "$last_topic" "$id" "$fs_storage" "restore:
  topic_mapping:
    $last_topic: $last_topic-restored-$id"
        fi
        timed "$id-$step" "$binary" "$step" --config "$work/$id-$step.yaml"
        grep -Eq "(Restored )?$records records" "$work/$id-$step.out" || { echo "$build $step did not move all $records records:"; cat "$work/$id-$step.out"; exit 1; }
        line+=("$seconds" "$rss_mib")
      done
      printf '%-30s %10s %14s %10s %14s\n' "${line[@]}"
    done
  done
  echo "static binary: $(du -h "$static_binary" | cut -f1), $(file -b "$static_binary" | cut -d, -f1-2)"
fi

# Topics compressed by their producer (most production topics are): what each segment codec
# gains on top of the producer's compression, and what it costs, against storing chunks as they are.
for producer_codec in $producer_codecs; do
  topic=bench-producer-$producer_codec
  $python tools/bench_reference.py fill "$bootstrap" "$topic" "$records" "$size" 4 "$data" "$producer_codec" >/dev/null
  read -r ref_seconds ref_bytes < <($python tools/bench_reference.py consume "$bootstrap" "$topic" "$records" 4)
  echo
  printf '%-28s %10s %12s %14s %12s %10s\n' "producer $producer_codec, 4 partitions" seconds "MiB/s" "peak RSS MiB" "stored MiB" "CPU s"
  for codec in none lz4 zstd; do
    id=bench-producer-$producer_codec-$codec
    config "$id" backup "$topic" "$id" "$fs_storage" "backup:
  compression: $codec"
    timed "$id" target/release/kafka-backup backup --config "$work/$id.yaml"
    grep -q "$records records" "$work/$id.out" || { echo "backup did not hold all $records records:"; cat "$work/$id.out"; exit 1; }
    printf '%-28s %10s %12s %14s %12s %10s\n' "backup $codec" "$seconds" "$rate" "$rss_mib" "$(du -sm "$work/store/$id" | cut -f1)" "$cpu"
  done
done

# Many partitions (issue #13): $many partitions of 1 MiB each against the same records on 4
# partitions, each backed up and restored with default settings in this run.
if [ "$many" != 0 ]; then
  many_records=$((many * 1024 * 1024 / size))
  echo
  echo "== $many partitions x 1 MiB against the same $many_records records on 4 partitions"
  printf '%-26s %10s %12s %14s %12s %10s %14s\n' case seconds "MiB/s" "peak RSS MiB" "vs 4 partitions" "CPU s" "broker CPU s"
  for partitions in 4 "$many"; do
    topic=bench-many-$partitions
    fill_seconds=$($python tools/bench_reference.py fill "$bootstrap" "$topic" "$many_records" "$size" "$partitions" "$data")
    read -r ref_seconds ref_bytes < <($python tools/bench_reference.py consume "$bootstrap" "$topic" "$many_records" "$partitions")
    echo "reference, $partitions partitions: raw produce (the fill, topic creation included) ${fill_seconds}s, raw consume ${ref_seconds}s"
    config "$topic" backup "$topic" "$topic" "$fs_storage" ""
    timed "$topic" target/release/kafka-backup backup --config "$work/$topic.yaml"
    grep -q "$many_records records" "$work/$topic.out" || { echo "backup did not hold all records:"; cat "$work/$topic.out"; exit 1; }
    [ "$partitions" = 4 ] && four_backup=$seconds
    printf '%-26s %10s %12s %14s %12s %10s %14s\n' "backup, $partitions partitions" "$seconds" "$rate" "$rss_mib" \
      "$(ratio "$seconds" "$four_backup")" "$cpu" "$broker_cpu"
    config "$topic-restore" restore "$topic" "$topic" "$fs_storage" "restore:
  topic_mapping:
    $topic: $topic-restored"
    timed "$topic-restore" target/release/kafka-backup restore --config "$work/$topic-restore.yaml"
    grep -q "Restored $many_records records" "$work/$topic-restore.out" || { echo "restore did not write all records:"; cat "$work/$topic-restore.out"; exit 1; }
    [ "$partitions" = 4 ] && four_restore=$seconds
    printf '%-26s %10s %12s %14s %12s %10s %14s\n' "restore, $partitions partitions" "$seconds" "$rate" "$rss_mib" \
      "$(ratio "$seconds" "$four_restore")" "$cpu" "$broker_cpu"
  done
  echo "(vs 4 partitions: time of the case / time of the same records on 4 partitions; issue #13 asks <= 3x;"
  echo " CPU s: ours, user + system; broker CPU s: what the broker used meanwhile, read from /proc)"
fi

# Many topics: $topic_count one-partition topics backed up in one run and restored under new names
# (every topic created by the restore), against the same records in one topic, in this run.
if [ "$topic_count" != 0 ]; then
  echo
  echo "== $topic_count topics of 100 records against one topic of $((topic_count * 100)) records"
  $python tools/bench_reference.py topics "$bootstrap" bench-topics "$topic_count" 100
  $python tools/bench_reference.py topics "$bootstrap" bench-one-topic 1 $((topic_count * 100))
  printf '%-26s %10s %14s %10s %14s\n' case seconds "vs one topic" "CPU s" "broker CPU s"
  for shape in one-topic topics; do
    id=bench-$shape
    config "$id" backup "$id-*" "$id" "$fs_storage" ""
    timed "$id" target/release/kafka-backup backup --config "$work/$id.yaml"
    grep -q "$((topic_count * 100)) records" "$work/$id.out" || { echo "backup did not hold all records:"; cat "$work/$id.out"; exit 1; }
    [ "$shape" = one-topic ] && one_backup=$seconds
    printf '%-26s %10s %14s %10s %14s\n' "backup, $shape" "$seconds" "$(ratio "$seconds" "$one_backup")" "$cpu" "$broker_cpu"
    mapping=$(for ((i = 0; i < $([ "$shape" = topics ] && echo "$topic_count" || echo 1); i++)); do
      printf '    %s-%d: %s-restored-%d\n' "$id" "$i" "$id" "$i"; done)
    config "$id-restore" restore "" "$id" "$fs_storage" "restore:
  topic_mapping:
$mapping"
    timed "$id-restore" target/release/kafka-backup restore --config "$work/$id-restore.yaml"
    grep -q "Restored $((topic_count * 100)) records" "$work/$id-restore.out" || { echo "restore did not write all records:"; cat "$work/$id-restore.out"; exit 1; }
    [ "$shape" = one-topic ] && one_restore=$seconds
    printf '%-26s %10s %14s %10s %14s\n' "restore, $shape" "$seconds" "$(ratio "$seconds" "$one_restore")" "$cpu" "$broker_cpu"
  done
fi

# Group snapshots of an estate: a backup whose snapshot holds $group_count groups' offsets against
# the same backup snapshotting none (groups excluded), in this run.
if [ "$group_count" != 0 ]; then
  echo
  echo "== group snapshot of $group_count consumer groups (snapshot backup of a $group_count-record topic)"
  topic=bench-groups
  $python tools/bench_reference.py fill "$bootstrap" "$topic" "$group_count" 100 1 "$data" >/dev/null
  $python tools/bench_reference.py groups "$bootstrap" "$topic" "$group_count" bench-group
  printf '%-26s %10s %14s %10s %14s\n' case seconds "vs no groups" "CPU s" "broker CPU s"
  for selected in none all; do
    id=bench-groups-$selected
    config "$id" backup "$topic" "$id" "$fs_storage" ""
    [ "$selected" = none ] && sed -i 's/^  topics:$/  groups:\n    include: ["no-group-*"]\n  topics:/' "$work/$id.yaml"
    timed "$id" target/release/kafka-backup backup --config "$work/$id.yaml"
    held=$(ls "$work/store/$id/groups" 2>/dev/null | head -1)
    if [ "$selected" = all ]; then
      kept=$($python -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["groups"]))' "$work/store/$id/groups/$held")
      [ "$kept" = "$group_count" ] || { echo "the snapshot holds $kept groups, not $group_count"; exit 1; }
    fi
    [ "$selected" = none ] && no_groups=$seconds
    printf '%-26s %10s %14s %10s %14s\n' "backup, $selected groups" "$seconds" "$(ratio "$seconds" "$no_groups")" "$cpu" "$broker_cpu"
  done
fi

# Continuous backup of many quiet partitions (issue #24): the recovery point (probe produced ->
# its segment committed), idle CPU, SIGTERM to exit, peak RSS.
if [ -n "$continuous" ]; then
  echo
  echo "== continuous backup of quiet partitions, segment_max_interval_ms 1000, 20 probes each"
  printf '%-12s %12s %12s %16s %16s %14s\n' partitions "p50 s" "p99 s" "idle CPU %" "SIGTERM->exit s" "peak RSS MiB"
  for partitions in $continuous; do
    mkdir -p "$work/continuous-$partitions"
    read -r p50 p99 idle stop rss < <($python tools/bench_continuous.py target/release/kafka-backup "$bootstrap" \
      "$partitions" "$work/continuous-$partitions")
    printf '%-12s %12s %12s %16s %16s %14s\n' "$partitions" "$p50" "$p99" "$idle" "$stop" "$rss"
  done
  echo "(p50/p99: from a probe's produce to its partition's next committed segment; idle CPU: our process"
  echo " over 5 s with nothing to back up, % of one core)"
fi

# Workers sharing one continuous backup (issue #25). This machine's cores are shared by every
# worker and the broker, so the case reports per-worker cost and hand-over times, not a speed-up.
if [ -n "$worker_counts" ]; then
  echo
  echo "== workers of one group: 128 MiB backlog on 24 partitions, group_session_timeout_ms 6000"
  printf '%-8s %12s %22s %22s %18s %10s %10s
' workers "catch-up s" "CPU s per worker" "peak RSS MiB each" "death->backed up s" "join s" "leave s"
  restores=""
  for count in $worker_counts; do
    mkdir -p "$work/workers-$count"
    { read -r _ catch_up cpu rss death join leave; read -r restore_line; } < <($python tools/bench_workers.py \
      target/release/kafka-backup "$bootstrap" "$count" "$work/workers-$count")
    printf '%-8s %12s %22s %22s %18s %10s %10s
' "$count" "$catch_up" "$cpu" "$rss" "$death" "$join" "$leave"
    restores+="$restore_line"$'\n'
  done
  echo "(catch-up: the group settled, then the backlog produced -> every record in a committed segment, the produce"
  echo " included (librdkafka fills 128 MiB in 1-4 s here); death->backed up: a worker"
  echo " SIGKILLed -> a record produced to each of its partitions committed by another; join/leave: a worker"
  echo " started or SIGTERMed -> the group holds every partition in a new generation)"
  echo
  echo "== The same backup restored by that many workers of one group (restore.group_id) into a new topic"
  printf '%-8s %12s %22s %22s %18s\n' workers "restore s" "CPU s per worker" "peak RSS MiB each" "with a kill s"
  while read -r count restored cpu rss with_a_kill; do
    [ -n "$count" ] && printf '%-8s %12s %22s %22s %18s\n' "$count" "$restored" "$cpu" "$rss" "$with_a_kill"
  done <<< "$restores"
  echo "(restore: the workers started -> every one exited 0 (the group's leader found every segment committed);"
  echo " with a kill: the same with one worker SIGKILLed 0.5 s in, its partitions fenced and taken over after the"
  echo " 6 s session timeout)"
fi

#!/usr/bin/env python3
"""Benchmark helper: the recovery point of a continuous backup of many quiet partitions.

  bench_continuous.py BINARY BOOTSTRAP PARTITIONS WORKDIR [PROBES]
      creates a topic of PARTITIONS partitions (all quiet), runs `BINARY backup` on it in
      continuous mode (segment_max_interval_ms 1000) to WORKDIR/store, then produces PROBES
      records (default 20) one at a time to random partitions and times each from its produce to
      its partition's next committed segment (a new commit record in the store). Prints one line:
      "p50 p99 idle_cpu_percent stop_seconds peak_rss_mib": seconds, CPU of our process over 5 s
      with nothing to back up (% of one core), SIGTERM to exit, peak RSS.
"""
import os
import random
import resource
import signal
import subprocess
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

INTERVAL_MS = 1000


def commits(folder):
    """Commit records (segment metadata) in a partition's folder."""
    try:
        return sum(1 for name in os.listdir(folder) if name.startswith("segment-") and name.endswith(".json"))
    except FileNotFoundError:
        return 0


def cpu_seconds(pid):
    """User + system CPU seconds process `pid` has used."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(binary, bootstrap, partitions, work, probes=20):
    partitions, probes = int(partitions), int(probes)
    topic = f"bench-continuous-{partitions}-{int(time.time())}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=120).values():
        future.result()
    # Thousands of new partitions reach the metadata some seconds after the creation answered.
    deadline = time.time() + 300
    while True:
        described = admin.list_topics(topic, timeout=30).topics.get(topic)
        led = [p for p in (described.partitions.values() if described else []) if p.leader >= 0]
        if len(led) == partitions:
            break
        if time.time() > deadline:
            raise SystemExit(f"bench_continuous: {topic} has {len(led)} of {partitions} partitions led after 300 s")
        time.sleep(1)
    store = os.path.join(work, "store")
    config = os.path.join(work, f"{topic}.yaml")
    with open(config, "w") as out:
        out.write(
            f"mode: backup\nbackup_id: {topic}\nsource:\n  bootstrap_servers: [\"{bootstrap}\"]\n"
            f"  topics:\n    include: [\"{topic}\"]\nstorage:\n  backend: filesystem\n  path: {store}\n"
            f"backup:\n  continuous: true\n  segment_max_interval_ms: {INTERVAL_MS}\n")
    backup = subprocess.Popen([binary, "--quiet", "backup", "--config", config],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    folder = lambda p: os.path.join(store, topic, "topics", topic, f"partition={p}")
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    # Started once the partitions' logs have been reached (a first probe committed).
    time.sleep(2)
    latencies = []
    for _ in range(probes + 1):
        partition = random.randrange(partitions)
        before = commits(folder(partition))
        producer.produce(topic, value=b"probe", partition=partition)
        producer.flush()
        started = time.monotonic()
        while commits(folder(partition)) == before:
            if backup.poll() is not None:
                sys.exit(f"the backup ended: {backup.stderr.read().decode()}")
            if time.monotonic() - started > 300:
                sys.exit(f"no commit in {partition} within 300 s")
            time.sleep(0.01)
        latencies.append(time.monotonic() - started)
    latencies = sorted(latencies[1:])  # the first probe also waited for the run to reach the log
    idle_before = cpu_seconds(backup.pid)
    time.sleep(5)
    idle_cpu = (cpu_seconds(backup.pid) - idle_before) / 5 * 100
    stop_started = time.monotonic()
    backup.send_signal(signal.SIGTERM)
    backup.wait(timeout=300)
    stop = time.monotonic() - stop_started
    rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"{p50:.2f} {p99:.2f} {idle_cpu:.1f} {stop:.2f} {rss_mib:.0f}")


if __name__ == "__main__":
    main(*sys.argv[1:])

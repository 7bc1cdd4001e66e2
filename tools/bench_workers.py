#!/usr/bin/env python3
"""Benchmark helper: several workers sharing one continuous backup (backup.group_id).

  bench_workers.py BINARY BOOTSTRAP WORKERS WORKDIR [PARTITIONS] [BACKLOG_MIB]
      creates a topic of PARTITIONS partitions (default 24) for BACKLOG_MIB (default 128) of
      1 KiB records, starts WORKERS workers of one group on it (segment_max_interval_ms 1000,
      group_session_timeout_ms 6000), waits until each holds partitions, then produces the records
      and times from the first produce until every one is in a committed segment, with each
      worker's CPU seconds and peak RSS. With two workers or more it then SIGKILLs one and
      times, from the kill, until a record produced to each of its partitions is in a committed
      segment (the session timeout, the rebalance and the new owner's first segment); starts a
      worker and times until it holds partitions and the group holds all of them (a join); and
      SIGTERMs one and times until the others hold all of them (a leave). Prints one line:
      "workers catch_up_s cpu_s_per_worker peak_rss_mib_per_worker death_to_backed_up_s join_s leave_s"
      (CPU and RSS as comma-separated lists; "-" for what one worker cannot measure).
      Then the backup is restored into a new topic by WORKERS workers of one group
      (restore.group_id) and timed until every worker has exited, with each one's CPU seconds and
      peak RSS; with two workers or more, again into another topic with one worker SIGKILLed half a
      second in. Prints a second line:
      "workers restore_s cpu_s_per_worker peak_rss_mib_per_worker restore_with_a_kill_s".
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

SESSION_TIMEOUT_MS = 6000
RECORD = b"x" * 1024


def cpu_seconds(pid):
    """User + system CPU seconds process `pid` has used."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid):
    """Peak resident memory of process `pid` (VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0


class Run:
    def __init__(self, binary, bootstrap, work, partitions):
        self.binary, self.bootstrap, self.work, self.partitions = binary, bootstrap, work, partitions
        self.topic = f"bench-workers-{int(time.time() * 1000)}"
        self.store = os.path.join(work, "store")
        self.config = os.path.join(work, f"{self.topic}.yaml")
        self.workers = []
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.create_topics([NewTopic(self.topic, partitions, 1)], operation_timeout=120).values():
            future.result()
        with open(self.config, "w") as out:
            out.write(
                f"mode: backup\nbackup_id: {self.topic}\nsource:\n  bootstrap_servers: [\"{bootstrap}\"]\n"
                f"  topics:\n    include: [\"{self.topic}\"]\nstorage:\n  backend: filesystem\n  path: {self.store}\n"
                f"backup:\n  continuous: true\n  segment_max_interval_ms: 1000\n  checkpoint_interval_secs: 1\n"
                f"  group_id: {self.topic}\n  group_session_timeout_ms: {SESSION_TIMEOUT_MS}\n")
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1048576})

    def fill(self, mib):
        count = mib * 1024
        for i in range(count):
            while True:
                try:
                    self.producer.produce(self.topic, value=RECORD, partition=i % self.partitions)
                    break
                except BufferError:
                    self.producer.poll(0.05)
        self.producer.flush()
        return count

    def start_worker(self):
        worker = subprocess.Popen([self.binary, "--quiet", "backup", "--config", self.config],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.workers.append(worker)
        return worker

    def boards(self):
        """The progress objects of the latest generation's workers."""
        found = []
        for path in glob.glob(os.path.join(self.store, self.topic, "state", "workers", "*.json")):
            try:
                with open(path) as board:
                    found.append(json.load(board))
            except (OSError, ValueError):
                continue
        found = [b for b in found if b.get("worker")]
        if not found:
            return []
        latest = max(b["worker"]["generation"] for b in found)
        return [b for b in found if b["worker"]["generation"] == latest]

    def held(self, boards=None):
        boards = self.boards() if boards is None else boards
        return sum(len(p) for b in boards for p in b["worker"]["partitions"].values())

    def committed(self):
        """Records in committed segments, from the workers' progress objects."""
        total = 0
        for board in self.boards():
            for partitions in board["partitions"].values():
                total += sum(p.get("committed_offset") or 0 for p in partitions.values())
        return total

    def wait(self, what, condition, timeout=600):
        started = time.monotonic()
        while not condition():
            if time.monotonic() - started > timeout:
                sys.exit(f"bench_workers: {what} not within {timeout} s")
            time.sleep(0.05)
        return time.monotonic() - started

    def commit_count(self, partition):
        folder = os.path.join(self.store, self.topic, "topics", self.topic, f"partition={partition}")
        try:
            return sum(1 for name in os.listdir(folder) if name.startswith("segment-") and name.endswith(".json"))
        except FileNotFoundError:
            return 0

    def partitions_of(self, pid):
        """The partitions the worker with process id `pid` holds, from its progress object."""
        for board in self.boards():
            if board["worker"]["name"].endswith(f"-{pid}"):
                return [p for ps in board["worker"]["partitions"].values() for p in ps]
        return []

    def stop_all(self):
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in self.workers:
            worker.wait(timeout=120)


def restore(run, workers, kill_after=None):
    """Restores the backup into a new topic with `workers` workers of one group (one SIGKILLed
    `kill_after` seconds in); returns the wall time until all ended, and the CPU seconds (wait4)
    and peak RSS (VmHWM, sampled while it runs) of each that was not killed."""
    target = f"{run.topic}-restored-{int(time.time() * 1000)}"
    config = os.path.join(run.work, f"{target}.yaml")
    with open(config, "w") as out:
        out.write(
            f"mode: restore\nbackup_id: {run.topic}\ntarget:\n  bootstrap_servers: [\"{run.bootstrap}\"]\n"
            f"storage:\n  backend: filesystem\n  path: {run.store}\n"
            f"restore:\n  topic_mapping:\n    {run.topic}: {target}\n  group_id: {target}\n"
            f"  group_session_timeout_ms: {SESSION_TIMEOUT_MS}\n")
    started = time.monotonic()
    procs = [subprocess.Popen([run.binary, "--quiet", "restore", "--config", config],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
    killed = procs[0].pid if kill_after is not None else None
    peak = {proc.pid: 0 for proc in procs}
    ended = {}
    kill_sent = False
    while len(ended) < len(procs):
        if killed and not kill_sent and time.monotonic() - started >= kill_after:
            os.kill(killed, signal.SIGKILL)
            kill_sent = True
        for proc in procs:
            if proc.pid in ended:
                continue
            peak[proc.pid] = max(peak[proc.pid], peak_rss_mib(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = status
                ended[pid] = (status, usage.ru_utime + usage.ru_stime)
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    cpu, rss = [], []
    for proc in procs:
        status, seconds = ended[proc.pid]
        if proc.pid == killed:
            continue
        if status != 0:
            sys.exit(f"bench_workers: a restore worker failed (status {status})")
        cpu.append(seconds)
        rss.append(peak[proc.pid])
    return elapsed, cpu, rss


def main(binary, bootstrap, workers, work, partitions="24", backlog_mib="128"):
    workers, partitions, backlog_mib = int(workers), int(partitions), int(backlog_mib)
    run = Run(binary, bootstrap, work, partitions)
    for _ in range(workers):
        run.start_worker()
    # The group settles first (every worker holding partitions), then the records arrive.
    run.wait("every worker to hold partitions", lambda: (boards := run.boards()) and len(boards) == workers
             and all(b["worker"]["partitions"] for b in boards) and run.held(boards) == partitions)
    started = time.monotonic()
    records = run.fill(backlog_mib)
    run.wait("the backlog to be backed up", lambda: run.committed() >= records)
    catch_up = time.monotonic() - started
    cpu = [cpu_seconds(w.pid) for w in run.workers]
    rss = [peak_rss_mib(w.pid) for w in run.workers]
    death = join = leave = "-"
    if workers >= 2:
        run.wait("every partition to be held", lambda: run.held() == partitions)
        victim = run.workers[0]
        orphaned = run.partitions_of(victim.pid)
        before = {p: run.commit_count(p) for p in orphaned}
        victim.kill()
        victim.wait()
        killed_at = time.monotonic()
        for p in orphaned:
            run.producer.produce(run.topic, value=b"probe", partition=p)
        run.producer.flush()
        run.wait("the dead worker's partitions to commit again",
                 lambda: all(run.commit_count(p) > before[p] for p in orphaned))
        death = f"{time.monotonic() - killed_at:.2f}"
        generation = max(b["worker"]["generation"] for b in run.boards())
        joined_at = time.monotonic()
        newcomer = run.start_worker()
        run.wait("the new worker to join", lambda: run.partitions_of(newcomer.pid) and run.held() == partitions
                 and max(b["worker"]["generation"] for b in run.boards()) > generation)
        join = f"{time.monotonic() - joined_at:.2f}"
        generation = max(b["worker"]["generation"] for b in run.boards())
        leaving = run.workers[1]
        left_at = time.monotonic()
        leaving.send_signal(signal.SIGTERM)
        run.wait("the others to take the leaving worker's partitions", lambda: (
            (boards := run.boards()) and boards[0]["worker"]["generation"] > generation
            and run.held(boards) == partitions))
        leave = f"{time.monotonic() - left_at:.2f}"
    run.stop_all()
    print(f"{workers} {catch_up:.2f} {','.join(f'{c:.2f}' for c in cpu)} {','.join(f'{r:.0f}' for r in rss)} "
          f"{death} {join} {leave}")
    restored, cpu, rss = restore(run, workers)
    with_a_kill = f"{restore(run, workers, kill_after=0.5)[0]:.2f}" if workers >= 2 else "-"
    print(f"{workers} {restored:.2f} {','.join(f'{c:.2f}' for c in cpu)} {','.join(f'{r:.0f}' for r in rss)} "
          f"{with_a_kill}")


if __name__ == "__main__":
    main(*sys.argv[1:])

#!/usr/bin/env python3
"""Runs one object-store emulator for a test, and ends it when the test process ends.

Usage: store_emulator.py s3|azure PORT DATA_DIR
  s3     moto_server (in-memory; its state is lost when it stops)
  azure  azurite-blob with its blobs kept in DATA_DIR, so a killed emulator restarted on the same
         port and directory serves the same data
Prints "ready PID" once the emulator accepts connections (PID: the emulator's own process, for tests
that stall it with SIGSTOP or kill it), then runs until stdin closes or its parent exits, and stops
the emulator. Creating buckets and containers, and listing what a store holds: store_admin.py.
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

INFRA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".test-infra")


def command(kind, port, data_dir):
    if kind == "s3":
        return [os.path.join(INFRA, "venv", "bin", "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    if kind == "azure":
        return [
            os.path.join(INFRA, "azurite", "node_modules", ".bin", "azurite-blob"),
            "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", data_dir,
            "--skipApiVersionCheck", "--loose", "--silent",
        ]
    raise SystemExit(f"unknown emulator {kind!r}; expected s3 or azure")


def wait_for_port(port, child, deadline_s=60):
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"emulator exited with {child.returncode} before accepting connections")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"emulator not accepting connections on port {port} after {deadline_s}s")


def main():
    kind, port, data_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(data_dir, exist_ok=True)
    log = open(os.path.join(data_dir, f"{kind}-emulator.log"), "ab")
    child = subprocess.Popen(command(kind, port, data_dir), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    parent = os.getppid()

    def stop(code=0):
        if child.poll() is None:
            os.kill(child.pid, signal.SIGCONT)  # a stalled emulator must be able to die
            child.kill()
            child.wait()
        os._exit(code)

    signal.signal(signal.SIGTERM, lambda *_: stop())

    def watch_parent():
        while os.getppid() == parent:
            time.sleep(0.5)
        stop()

    threading.Thread(target=watch_parent, daemon=True).start()
    try:
        wait_for_port(port, child)
    except SystemExit as error:
        print(error, file=sys.stderr, flush=True)
        stop(1)
    print(f"ready {child.pid}", flush=True)
    sys.stdin.read()
    stop()


if __name__ == "__main__":
    main()

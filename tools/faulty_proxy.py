#!/usr/bin/env python3
"""An HTTP proxy in front of an object-store emulator that fails chosen requests, for fault tests.

Usage: faulty_proxy.py UPSTREAM_PORT EVERY_503 EVERY_RESET
  Listens on a free 127.0.0.1 port and prints "ready PORT". Request number n (counted from 1):
  - when n % EVERY_503 == 0: answered "503 Slow Down" (S3's throttling error) without being
    forwarded;
  - else when n % EVERY_RESET == 0: forwarded, then the client's connection is reset before the
    answer reaches it (the request took effect; the client cannot know);
  - else forwarded and answered as the emulator answered.
  0 turns a fault off. Each fault is logged to stderr; runs until stdin closes.
"""
import http.client
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler

from local_http import serve_until_stdin_closes

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
             b'<Message>Please reduce your request rate.</Message></Error>')


class Counter:
    def __init__(self):
        self.lock, self.value = threading.Lock(), 0

    def next(self):
        with self.lock:
            self.value += 1
            return self.value


def handler(upstream_port, every_503, every_reset, counter):
    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def relay(self):
            n = counter.next()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if every_503 and n % every_503 == 0:
                print(f"request {n} {self.command} {self.path}: 503", file=sys.stderr, flush=True)
                self.send_response(503, "Slow Down")
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(SLOW_DOWN)))
                self.end_headers()
                self.wfile.write(SLOW_DOWN)
                return
            upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
            upstream.close()
            if every_reset and n % every_reset == 0:
                print(f"request {n} {self.command} {self.path}: reset after {answer.status}", file=sys.stderr, flush=True)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            self.send_response(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            # A HEAD answer's length is the object's, not its (empty) body's.
            length = answer.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay

    return Proxy


def main():
    upstream_port, every_503, every_reset = (int(a) for a in sys.argv[1:4])
    serve_until_stdin_closes(handler(upstream_port, every_503, every_reset, Counter()))


if __name__ == "__main__":
    main()

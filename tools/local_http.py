"""A test HTTP server on a free 127.0.0.1 port that runs until stdin closes, for the test tools
(faulty_proxy.py, token_server.py): prints "ready PORT" once it listens."""
import sys
import threading
from http.server import ThreadingHTTPServer


def serve_until_stdin_closes(handler_class):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"ready {server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()

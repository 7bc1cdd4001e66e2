#!/usr/bin/env python3
"""An OAuth 2.0 token endpoint (client credentials grant, RFC 6749 section 4.4) for the OIDC tests.

Usage: token_server.py CLIENT_ID CLIENT_SECRET LIFETIME_S
  Listens on a free 127.0.0.1 port and prints "ready PORT". POST /token with the client's id and
  secret in HTTP basic auth and grant_type=client_credentials is answered with an unsigned JWT
  (alg none, sub = the client id, expiring after LIFETIME_S) that the test clusters' unsecured
  OAUTHBEARER validator accepts, and expires_in = LIFETIME_S. Other credentials get 401
  invalid_client. Each issued token is logged to stderr as "issued SCOPE"; runs until stdin closes.
"""
import base64
import json
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

from local_http import serve_until_stdin_closes


def unsigned_jwt(subject, lifetime_s):
    encode = lambda claims: base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    now = int(time.time())
    return f"{encode({'alg': 'none'})}.{encode({'sub': subject, 'iat': now, 'exp': now + lifetime_s})}."


def handler(client_id, client_secret, lifetime_s):
    expected = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()

    class TokenEndpoint(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
            if self.path != "/token" or form.get("grant_type") != ["client_credentials"]:
                return self.answer(400, {"error": "unsupported_grant_type"})
            if self.headers.get("Authorization") != expected:
                return self.answer(401, {"error": "invalid_client", "error_description": "bad client credentials"})
            print(f"issued {form.get('scope', [''])[0]}", file=sys.stderr, flush=True)
            self.answer(200, {"access_token": unsigned_jwt(client_id, lifetime_s), "token_type": "Bearer",
                              "expires_in": lifetime_s})

    return TokenEndpoint


def main():
    client_id, client_secret, lifetime_s = sys.argv[1], sys.argv[2], int(sys.argv[3])
    serve_until_stdin_closes(handler(client_id, client_secret, lifetime_s))


if __name__ == "__main__":
    main()

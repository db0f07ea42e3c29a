#!/usr/bin/env python3
"""A webhook receiver for the integration tests: verifies every request with the official
Standard Webhooks library and appends what it got to a JSON-lines file.

Usage: receiver.py SECRET PORT PORT_FILE LOG_FILE STATUS_FILE

It listens on 127.0.0.1:PORT (0: a free port), written to PORT_FILE once it listens. Each request is
verified with `standardwebhooks.Webhook(SECRET).verify(body, headers)`, then one line is appended
to LOG_FILE: {"webhook_id", "type", "verified", "error", "answered", "body"}. The answer's status
is read from STATUS_FILE at each request (200 when the file is absent); "slow:N" waits a second
and a half, then answers N, so a test can catch a delivery in flight.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

SECRET, PORT, PORT_FILE, LOG_FILE, STATUS_FILE = sys.argv[1:6]
VERIFIER = Webhook(SECRET)
LOCK = threading.Lock()


def planned_status():
    try:
        with open(STATUS_FILE, encoding="utf-8") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return 200, 0.0
    if text.startswith("slow:"):
        return int(text[5:]), 1.5
    return int(text), 0.0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        entry = {"webhook_id": headers.get("webhook-id"), "verified": False, "error": None}
        try:
            payload = VERIFIER.verify(body, headers)
            entry["verified"] = True
            entry["type"] = payload.get("type")
            entry["body"] = payload
        except Exception as e:  # the test reads why
            entry["error"] = f"{type(e).__name__}: {e}"
        status, wait = planned_status()
        time.sleep(wait)
        entry["answered"] = status
        with LOCK, open(LOG_FILE, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")
        try:
            self.send_response(status)
            self.send_header("content-type", "text/plain")
            self.end_headers()
            self.wfile.write(f"answered {status}".encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sender gave up or died (a test kills it on purpose); the log has the request

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    # A sender opens up to 20 connections at once; with the default backlog of 5 the kernel drops
    # some attempts, which the sender then repeats a second later.
    request_queue_size = 128


def main():
    server = Server(("127.0.0.1", int(PORT)), Handler)
    tmp = PORT_FILE + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, PORT_FILE)
    server.serve_forever()


if __name__ == "__main__":
    main()

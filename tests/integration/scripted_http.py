#!/usr/bin/python3
"""scripted_http.py - an HTTP server that answers from a script, for testing
the store writer's answer table (collector/STORE.md) without a real InfluxDB.

    scripted_http.py --port-file FILE [--max-hang S]

Binds 127.0.0.1 on a port the kernel picks and writes it to FILE. Python 3
standard library only.

Control (the test, not the writer under test):
    POST /__script?record=PATH   body: JSON list of rules; resets the request
                                 counter and starts recording into PATH
Every other request is answered by the first rule that matches and has uses
left, else by 204 (an InfluxDB that stored everything). Rule keys:
    status       HTTP status (default 204)
    body         answer body (text)
    headers      {"Retry-After": "2", ...}
    times        how many requests the rule answers (default 1, -1 = all)
    contains     only requests whose body contains this text
    min_bytes    only requests whose body is at least this long
    partial      emulate InfluxDB 1.x: every line containing this text is
                 refused, the others are stored; status 400 with
                 {"error":"partial write: unable to parse 'LINE': ... dropped=0"}
                 naming each refused line, or 204 when there is none
    partial_first  with partial: the body names only the FIRST refused line,
                 as InfluxDB 1.x does for field type conflicts (all are dropped)
    action       "hang": read the request and never answer (up to --max-hang
                 seconds); "close": drop the connection without an answer
    delay_ms     wait before answering
Every request is appended to the record file as one JSON object:
    {"n", "method", "path", "headers", "body", "status", "stored": [lines]}
where "stored" lists the lines this answer means were stored.
"""
import argparse
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

STATE = {"rules": [], "uses": [], "record": None, "n": 0}
LOCK = threading.Lock()
MAX_HANG = 30.0


def pick_rule(body):
    """The first rule that matches body and has uses left (and use it)."""
    with LOCK:
        STATE["n"] += 1
        n = STATE["n"]
        for i, rule in enumerate(STATE["rules"]):
            if STATE["uses"][i] == 0:
                continue
            if "contains" in rule and rule["contains"].encode() not in body:
                continue
            if "min_bytes" in rule and len(body) < rule["min_bytes"]:
                continue
            if STATE["uses"][i] > 0:
                STATE["uses"][i] -= 1
            return n, rule
        return n, {}


def record(entry):
    with LOCK:
        path = STATE["record"]
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")


def partial_answer(rule, lines):
    bad = [ln for ln in lines if rule["partial"] in ln]
    stored = [ln for ln in lines if rule["partial"] not in ln]
    if not bad:
        return 204, "", stored
    named = bad[:1] if rule.get("partial_first") else bad
    msg = "partial write: " + "\n".join(
        "unable to parse '%s': invalid field format" % ln for ln in named) + " dropped=0"
    return 400, json.dumps({"error": msg}), stored


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as InfluxDB does

    def log_message(self, fmt, *args):  # quiet: the record file is the log
        pass

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self.answer(200, "ok\n", {})

    def do_POST(self):
        body = self.read_body()
        url = urlparse(self.path)
        if url.path == "/__script":
            self.load_script(body, parse_qs(url.query))
            return
        n, rule = pick_rule(body)
        lines = [ln for ln in body.decode("utf-8", "replace").split("\n") if ln]
        status = rule.get("status", 204)
        text = rule.get("body", "")
        stored = lines if 200 <= status < 300 else []
        if "partial" in rule:
            status, text, stored = partial_answer(rule, lines)
        action = rule.get("action")
        entry = {"n": n, "method": "POST", "path": self.path,
                 "headers": {k.lower(): v for k, v in self.headers.items()},
                 "body": body.decode("utf-8", "replace"),
                 "status": 0 if action else status, "stored": [] if action else stored}
        record(entry)
        if action == "hang":
            self.hang()
            return
        if action == "close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if rule.get("delay_ms"):
            time.sleep(rule["delay_ms"] / 1000.0)
        self.answer(status, text, rule.get("headers", {}))

    def hang(self):
        """Accepted, never answered: until the client gives up, bounded."""
        deadline = time.monotonic() + MAX_HANG
        self.connection.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                if self.connection.recv(1) == b"":
                    break  # the client closed
            except socket.timeout:
                continue
            except OSError:
                break
        self.close_connection = True

    def load_script(self, body, query):
        rules = json.loads(body or b"[]")
        with LOCK:
            STATE["rules"] = rules
            STATE["uses"] = [r.get("times", 1) for r in rules]
            STATE["n"] = 0
            STATE["record"] = query.get("record", [None])[0]
            if STATE["record"]:
                open(STATE["record"], "w", encoding="utf-8").close()
        self.answer(200, "script loaded\n", {})

    def answer(self, status, text, headers):
        data = text.encode("utf-8")
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if status != 204:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if status != 204:
            self.wfile.write(data)


def main():
    global MAX_HANG
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--max-hang", type=float, default=30.0)
    args = ap.parse_args()
    MAX_HANG = args.max_hang
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(tmp, args.port_file)  # the test sees a whole port number or nothing
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

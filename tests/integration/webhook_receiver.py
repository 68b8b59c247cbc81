#!/usr/bin/python3
"""webhook_receiver.py - a webhook endpoint for the alert notifier's tests
(tests/integration/notify_webhook.sh): records every request and answers
from a script. Python 3 standard library only.

    webhook_receiver.py --record FILE (--port P | --port-file FILE)
                        [--rules JSON] [--max-hang S] [--parent-pid PID]

Binds 127.0.0.1: on port P (to come back on the same port after the test
killed it: "the webhook is down"), or on a port the kernel picks, written
to --port-file once listening. Every POST is appended to the record file,
one JSON object per line, before it is answered:
    {"n", "t" (unix time, s), "path", "headers" (lower-case names),
     "body" (text), "json" (the parsed body, or null), "status" (0: no answer)}

With --parent-pid it exits when that process is gone, so a test killed by
ctest's timeout leaves no receiver behind.

Answers come from the first rule that matches and has uses left, else
200 {"ok":true}. Rules (--rules at start, or POST /__rules with a JSON list,
which also resets the uses):
    status     HTTP status (default 200)
    headers    {"Retry-After": "2"}
    body       answer text
    times      how many requests the rule answers (default 1, -1 = all)
    contains   only requests whose body contains this text
    action     "hang": read the request, never answer (until the client
               closes, at most --max-hang s); "close": drop the connection
"""
import argparse
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"rules": [], "uses": [], "n": 0, "record": None}
MAX_HANG = 30.0


def set_rules(rules):
    with LOCK:
        STATE["rules"] = rules
        STATE["uses"] = [r.get("times", 1) for r in rules]


def pick(body):
    with LOCK:
        STATE["n"] += 1
        for i, rule in enumerate(STATE["rules"]):
            if STATE["uses"][i] == 0:
                continue
            if "contains" in rule and rule["contains"].encode() not in body:
                continue
            if STATE["uses"][i] > 0:
                STATE["uses"][i] -= 1
            return STATE["n"], rule
        return STATE["n"], {}


def record(entry):
    with LOCK:
        with open(STATE["record"], "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real webhook endpoints do
    # Headers and body go out in two writes: without TCP_NODELAY the second
    # waits for the client's delayed ACK (40 ms per request).
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # the record file is the log
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path == "/__rules":
            set_rules(json.loads(body or b"[]"))
            self.answer(200, "rules loaded\n", {})
            return
        num, rule = pick(body)
        action = rule.get("action")
        status = 0 if action else rule.get("status", 200)
        text = body.decode("utf-8", "replace")
        try:
            parsed = json.loads(body.decode("utf-8"))  # strict: invalid UTF-8 fails
        except ValueError:
            parsed = None
        record({"n": num, "t": time.time(), "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": text, "json": parsed, "status": status})
        if action == "hang":
            self.hang()
        elif action == "close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self.answer(status, rule.get("body", '{"ok":true}'), rule.get("headers", {}))

    def hang(self):
        deadline = time.monotonic() + MAX_HANG
        self.connection.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                if self.connection.recv(1) == b"":
                    break  # the client gave up
            except socket.timeout:
                continue
            except OSError:
                break
        self.close_connection = True

    def answer(self, status, text, headers):
        data = text.encode("utf-8")
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def watch_parent(pid, server):
    while True:
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass


def main():
    global MAX_HANG
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--record", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--rules", default="[]")
    ap.add_argument("--max-hang", type=float, default=30.0)
    ap.add_argument("--parent-pid", type=int, default=0)
    args = ap.parse_args()
    MAX_HANG = args.max_hang
    STATE["record"] = args.record
    set_rules(json.loads(args.rules))
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("%d\n" % server.server_address[1])
        os.rename(tmp, args.port_file)  # a whole port number or nothing
    if args.parent_pid:
        threading.Thread(target=watch_parent, args=(args.parent_pid, server),
                         daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

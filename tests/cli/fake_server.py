#!/usr/bin/env python3
"""fake_server.py PORT_FILE - a scripted HTTP server for the CLI tests.

Plays the collector's operator API and a misbehaving InfluxDB:

  POST /alerts/ack?id=N        200 {"ok":true} for ids 1..99, 404 otherwise
  POST /silences?...           200 {"ok":true,"id":1} and remembers the query
  GET  /silences               200 the remembered silences as JSON
  POST /query (db=NAME)        answers chosen by the database name:
      garbage   200 text that is not JSON
      badtype   200 JSON whose integer column holds a string
      truncated 200 a document cut in the middle
      auth      401 {"error":"authorization failed"}
      slowdown  503 {"error":"overloaded"}
      huge      200 a chunk larger than the client's limit is never sent here;
                    instead a 2 MB string value: refused as too long

It binds 127.0.0.1 on a free port and writes the port into PORT_FILE.
Every request is logged to stdout as "METHOD PATH?QUERY".
"""
import http.server
import json
import sys
import urllib.parse

silences = []


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        print("GET " + self.path, flush=True)
        u = urllib.parse.urlparse(self.path)
        if u.path == "/silences":
            self.answer(200, json.dumps({"silences": silences}))
        else:
            self.answer(404, '{"error":"not found"}')

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        print("POST " + self.path, flush=True)
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        if u.path == "/alerts/ack":
            ident = q.get("id", ["0"])[0]
            if ident.isdigit() and 1 <= int(ident) <= 99:
                self.answer(200, '{"ok":true}')
            else:
                self.answer(404, '{"ok":false,"error":"no such alert"}')
        elif u.path == "/silences":
            s = {k: v[0] for k, v in q.items()}
            silences.append(s)
            self.answer(200, json.dumps({"ok": True, "id": len(silences)}))
        elif u.path == "/query":
            form = urllib.parse.parse_qs(body)
            db = form.get("db", [""])[0]
            cols = '"columns":["time","clinic","model","seq"]'
            if db == "garbage":
                self.answer(200, "<html>proxy error</html>", "text/html")
            elif db == "badtype":
                self.answer(200, '{"results":[{"statement_id":0,"series":[{"name":"needle_window",'
                            '"tags":{"device":"X"},' + cols + ',"values":[[1,"a","m","seven"]]}]}]}')
            elif db == "truncated":
                self.answer(200, '{"results":[{"statement_id":0,"series":[{"name":"x",')
            elif db == "auth":
                self.answer(401, '{"error":"authorization failed"}')
            elif db == "slowdown":
                self.answer(503, '{"error":"overloaded"}')
            elif db == "huge":
                big = "x" * (2 << 20)
                self.answer(200, '{"results":[{"statement_id":0,"series":[{"name":"session",'
                            '"tags":{"device":"X"},"columns":["time","clinic"],"values":[[1,"'
                            + big + '"]]}]}]}')
            else:
                self.answer(200, '{"results":[{"statement_id":0}]}')
        else:
            self.answer(404, '{"error":"not found"}')


def main():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(srv.server_address[1]))
    srv.serve_forever()


if __name__ == "__main__":
    main()

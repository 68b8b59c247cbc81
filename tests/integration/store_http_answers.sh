#!/usr/bin/env bash
# integration.store_http_answers: every row of the store writer's answer
# table (collector/STORE.md) against scripted_http.py, which records what
# was sent and how many times. Usage: store_http_answers.sh PATH_TO_store_driver
set -euo pipefail
drv=${1:?usage: store_http_answers.sh PATH_TO_store_driver}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers.sh
source "$here/servers.sh"

nw_require python3 curl
nw_make_workdir store-http
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
unset NEEDLEWATCH_INFLUX_USER NEEDLEWATCH_INFLUX_PASSWORD NEEDLEWATCH_INFLUX_TOKEN

SRV_PID=
nw_test_cleanup()
{
    if [[ -n "$SRV_PID" ]]; then
        kill "$SRV_PID" 2>/dev/null || true
        wait "$SRV_PID" 2>/dev/null || true
    fi
}
python3 "$here/scripted_http.py" --port-file "$NW_WORK/port" --max-hang 20 \
    >"$NW_WORK/scripted.log" 2>&1 &
SRV_PID=$!
for _ in $(seq 100); do
    [[ -s "$NW_WORK/port" ]] && break
    sleep 0.1
done
PORT=$(cat "$NW_WORK/port")
BASE="http://127.0.0.1:$PORT"
URL="influx://127.0.0.1:$PORT/nw"
echo "scripted server $BASE, work $NW_WORK"

passed=0
failed=0
ok() {
    passed=$((passed + 1))
}
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}

# scenario NAME RULES_JSON: load the rules, record into $NW_WORK/NAME.rec.
scenario()
{
    NAME=$1
    REC="$NW_WORK/$NAME.rec"
    DEAD="$NW_WORK/$NAME.dead"
    echo "== $NAME"
    curl -sf -XPOST "$BASE/__script?record=$REC" --data-binary "$2" >/dev/null
}

# drive ARGS...: the driver with this scenario's dead-letter file; its
# checks count as one assertion.
drive()
{
    if "$drv" --dead-letter "$DEAD" "$@" >"$NW_WORK/$NAME.out" 2>&1; then
        ok
    else
        bad "$NAME: driver checks"
    fi
    cat "$NW_WORK/$NAME.out"
}

# verify ARGS: the record and dead-letter file against expectations, in
# Python: requests=N | max_requests=N | exactly_once | poison=WORD:COUNT
verify()
{
    if python3 - "$REC" "$DEAD" "$@" <<'EOF'; then ok; else bad "$NAME: verify $*"; fi
import collections, json, os, sys
rec, dead, *checks = sys.argv[1:]
reqs = [json.loads(l) for l in open(rec)] if os.path.exists(rec) else []
deads = [json.loads(l) for l in open(dead)] if os.path.exists(dead) else []
stored = collections.Counter(l for r in reqs for l in r["stored"])
sent = collections.Counter(l for r in reqs for l in r["body"].split("\n") if l)
problems = []
for c in checks:
    k, _, v = c.partition("=")
    if k == "requests" and len(reqs) != int(v):
        problems.append("%d requests, want %s" % (len(reqs), v))
    elif k == "max_requests" and len(reqs) > int(v):
        problems.append("%d requests, want <= %s" % (len(reqs), v))
    elif k == "exactly_once":
        twice = [l for l, n in stored.items() if n != 1]
        if twice or set(stored) != set(sent):
            problems.append("not every line stored exactly once: %d twice, %d never"
                            % (len(twice), len(set(sent) - set(stored))))
    elif k == "poison":
        word, count = v.split(":")
        bad_lines = {l for l in sent if word in l}
        if len(bad_lines) != int(count):
            problems.append("%d %s lines sent, want %s" % (len(bad_lines), word, count))
        if any(word in l for l in stored):
            problems.append("a %s line was stored" % word)
        good = set(sent) - bad_lines
        if set(stored) != good:
            problems.append("%d good lines never stored" % len(good - set(stored)))
        dl = {d.get("line") for d in deads}
        if dl != bad_lines:
            problems.append("dead letters %d, want the %d %s lines" % (len(dl), len(bad_lines), word))
        for d in deads:
            if not d.get("device") or not d.get("reason"):
                problems.append("dead letter without device or reason: %s" % d)
    elif k == "header":
        name, _, want = v.partition(":")
        got = reqs[0]["headers"].get(name) if reqs else None
        if (want == "" and got is not None) or (want and got != want):
            problems.append("header %s = %r, want %r" % (name, got, want or None))
    elif k == "path":
        if not reqs or reqs[0]["path"] != v:
            problems.append("path %r, want %r" % (reqs[0]["path"] if reqs else None, v))
for p in problems:
    print("  " + p)
print("  %d requests, %d lines sent, %d stored, %d dead letters"
      % (len(reqs), len(sent), len(stored), len(deads)))
sys.exit(1 if problems else 0)
EOF
}

# --- 2xx ------------------------------------------------------------------
scenario ok204 '[]'
NEEDLEWATCH_INFLUX_USER=alice NEEDLEWATCH_INFLUX_PASSWORD='s3cr3t-pw' \
    drive "$URL" write:mix:50:1 check:code=OK,done=50,stored=50,dead=0,requests=1,http=204
verify requests=1 exactly_once path=/write?db=nw\&precision=ms header=expect: \
    "header=content-type:text/plain; charset=utf-8" \
    "header=authorization:Basic $(printf 'alice:s3cr3t-pw' | base64)"
if grep -q 's3cr3t' "$NW_WORK/ok204.out"; then bad "password in driver output"; else ok; fi

# --- 400 partial write naming the lines -------------------------------------
scenario partial '[{"partial": "poison", "times": -1}]'
drive --mark poison:7,50,93 "$URL" write:window:100:1 \
    check:code=OK,done=100,stored=97,dead=3,requests=2
verify requests=2 poison=poison:3
if grep -q 'unable to parse: invalid field format' "$DEAD"; then ok; else bad "reason"; fi

# --- 400 that names only the first refused line (type-conflict style) ------
scenario partial_first '[{"partial": "poison", "partial_first": true, "times": -1}]'
drive --mark poison:7,50,93 "$URL" write:window:100:1 check:code=OK,done=100,dead=3
verify max_requests=24 poison=poison:3

# --- 400 naming no line: bisect -----------------------------------------------
scenario bisect '[{"contains": "poison", "status": 400, "body": "{\"error\":\"bad request\"}", "times": -1}]'
drive --mark poison:10,40 "$URL" write:window:64:1 check:code=OK,done=64,stored=62,dead=2
verify max_requests=25 poison=poison:2

# --- a server that refuses everything without naming a line ----------------
scenario blind '[{"status": 400, "body": "{\"error\":\"bad request\"}", "times": -1}]'
drive "$URL" write:window:20:1 check:code=PROTOCOL,done=8,dead=8 \
    write:window:12:9 check:code=RETRY,requests=0 sleep:100
if grep -q "not dead-lettering more" "$NW_WORK/blind.out"; then ok; else bad "blind message"; fi

# --- request budget: progress on every call, never a loop ------------------
scenario budget '[{"contains": "poison", "status": 400, "body": "{\"error\":\"bad request\"}", "times": -1}]'
drive --max-requests 8 --backoff-min-ms 50 --mark poison:5,20,33,47,60 "$URL" \
    write:window:64:1 check:code=RETRY until-ok:window:64:1:60
verify poison=poison:5
if grep -q "request budget" "$NW_WORK/budget.out"; then ok; else bad "budget message"; fi

# --- 413: split, nothing stored twice ------------------------------------------
scenario split413 '[{"min_bytes": 8000, "status": 413, "body": "{\"error\":\"Request Entity Too Large\"}", "times": -1}]'
drive "$URL" write:window:100:1 check:code=OK,done=100,stored=100,dead=0
verify exactly_once max_requests=40

scenario single413 '[{"contains": "huge", "status": 413, "times": -1}]'
drive --mark huge:5 "$URL" write:window:16:1 check:code=OK,done=16,dead=1
verify poison=huge:1
if grep -q 'HTTP 413' "$DEAD"; then ok; else bad "413 reason"; fi

# --- 429 / 503 with Retry-After ------------------------------------------------
scenario ra429 '[{"status": 429, "headers": {"Retry-After": "2"}, "body": "{\"error\":\"slow down\"}"}]'
drive "$URL" write:status:5:1 check:code=RETRY,done=0,http=429,retry_ge=2000,retry_le=2000 \
    write:status:5:1 check:code=RETRY,requests=0,retry_le=2000 wait \
    write:status:5:1 check:code=OK,done=5,requests=1
verify requests=2

date_in_3s=$(date -u -d '+3 seconds' '+%a, %d %b %Y %H:%M:%S GMT')
scenario ra503date "[{\"status\": 503, \"headers\": {\"Retry-After\": \"$date_in_3s\"}}]"
drive "$URL" write:alert:3:1 check:code=RETRY,http=503,retry_ge=1000,retry_le=3000

# --- 503 / 500 without Retry-After: backoff with jitter, reset on success --
scenario backoff '[{"status": 503, "times": 2}, {"status": 204}, {"status": 500}]'
drive --backoff-min-ms 400 --backoff-max-ms 5000 "$URL" \
    write:event:3:1 check:code=RETRY,retry_ge=200,retry_le=400 wait \
    write:event:3:1 check:code=RETRY,retry_ge=400,retry_le=800 wait \
    write:event:3:1 check:code=OK \
    write:event:3:1 check:code=RETRY,http=500,retry_ge=200,retry_le=400

# --- progress is kept: chunk 1 stored, chunk 2 refused for now ----------------
scenario chunks '[{"status": 204}, {"status": 502}]'
drive --batch-points 10 "$URL" write:window:30:1 check:code=RETRY,done=10,stored=10,requests=2

# --- no answer ----------------------------------------------------------------------
closed=$(nw_free_port 1)
scenario refused '[]'
drive "influx://127.0.0.1:$closed/nw" write:window:5:1 check:code=RETRY,done=0,http=0

scenario hang '[{"action": "hang"}]'
t0=$(date +%s%N)
drive --timeout-ms 1500 "$URL" write:window:5:1 check:code=TIMEOUT,done=0 wait \
    write:window:5:1 check:code=OK,done=5
elapsed=$((($(date +%s%N) - t0) / 1000000))
if ((elapsed < 8000)); then ok; else bad "hang took ${elapsed} ms"; fi

scenario close '[{"action": "close"}]'
drive "$URL" write:window:5:1 check:code=RETRY,done=0,http=0 wait write:window:5:1 check:code=OK

# --- configuration problems: data kept, slow retry --------------------------
scenario auth401 '[{"status": 401, "body": "{\"error\":\"authorization failed\"}"}]'
drive --backoff-max-ms 7000 "$URL" write:window:5:1 \
    check:code=AUTH,done=0,http=401,retry_ge=7000,retry_le=7000
if grep -q "no credentials" "$NW_WORK/auth401.out"; then ok; else bad "401 hint"; fi
scenario auth403 '[{"status": 403}]'
drive "$URL" write:window:5:1 check:code=AUTH,done=0,http=403
scenario nodb404 '[{"status": 404, "body": "{\"error\":\"database not found: \\\"nw\\\"\"}"}]'
drive "$URL" write:window:5:1 check:code=NOT_FOUND,done=0,http=404
if grep -q 'database not found' "$NW_WORK/nodb404.out"; then ok; else bad "404 message"; fi
scenario sys400 '[{"status": 400, "body": "{\"error\":\"database is required\"}", "times": -1}]'
drive "$URL" write:window:5:1 check:code=PROTOCOL,done=0,dead=0,requests=1

# --- v2: path, org/bucket escaping, token header ---------------------------
scenario v2 '[]'
NEEDLEWATCH_INFLUX_TOKEN='tok-XYZ' drive "influx2://127.0.0.1:$PORT/?org=my%20org&bucket=b1" \
    write:session:4:1 check:code=OK,done=4
verify requests=1 'path=/api/v2/write?org=my%20org&bucket=b1&precision=ms' \
    'header=authorization:Token tok-XYZ'
if grep -q 'tok-XYZ' "$NW_WORK/v2.out"; then bad "token in output"; else ok; fi

echo "$passed passed, $failed failed"
((failed == 0))

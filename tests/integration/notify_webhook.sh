#!/usr/bin/env bash
# integration.notify_webhook: the alert notifier (collector/notify.c), run
# in-process by notify_driver, against webhook_receiver.py on free loopback
# ports and a ZeroMQ SUB client:
#   up        every alert delivered once, in order, JSON exact, no secret logged
#   down      receiver down: pushes never block; all delivered once it returns;
#             one "down" and one "up again" log line
#   drain     receiver never there, more alerts than the ZeroMQ pipe holds:
#             the PULL socket keeps draining, the queue bound drops the oldest
#   retry     503 + Retry-After, 500, 429 + Retry-After, 408, a dropped
#             connection: the same alert retried in order, Retry-After honoured
#   hang      a receiver that never answers: timeout, retry, pushes unaffected
#   refuse    400 on some alerts: dropped and counted, later ones delivered
#   overflow  queue bound 10: the oldest dropped and counted, the newest delivered
#   pub       PUB topic frames and protobuf bodies, prefix filtering
# Usage: notify_webhook.sh PATH_TO_notify_driver
set -euo pipefail
drv=${1:?usage: notify_webhook.sh PATH_TO_notify_driver}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers.sh
source "$here/servers.sh"

nw_require python3
nw_make_workdir notify
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
W=$NW_WORK

# rx-start PORT RECORD [RULES]: the receiver on PORT (pid in $W/rx.pid),
# waits until it listens. rx-stop: stops it. Scripts, so that the driver's
# sh: steps can take the receiver down and bring it back mid-run.
cat >"$W/rx-start" <<EOF
#!/usr/bin/env bash
set -eu
rm -f "$W/rx.port"
python3 "$here/webhook_receiver.py" --port "\$1" --port-file "$W/rx.port" --record "\$2" \\
    --rules "\${3:-[]}" --max-hang 20 --parent-pid $$ >>"$W/rx.log" 2>&1 </dev/null &
echo \$! >"$W/rx.pid"
for _ in \$(seq 200); do
    [[ -s "$W/rx.port" ]] && exit 0
    sleep 0.05
done
echo "webhook_receiver.py did not start" >&2
exit 1
EOF
cat >"$W/rx-stop" <<EOF
#!/usr/bin/env bash
[[ -s "$W/rx.pid" ]] || exit 0
pid=\$(cat "$W/rx.pid")
rm -f "$W/rx.pid"
kill "\$pid" 2>/dev/null || exit 0
for _ in \$(seq 100); do
    kill -0 "\$pid" 2>/dev/null || exit 0
    sleep 0.05
done
kill -9 "\$pid" 2>/dev/null || true
EOF
chmod +x "$W/rx-start" "$W/rx-stop"
nw_test_cleanup()
{
    "$W/rx-stop" || true
}

passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad()
{
    failed=$((failed + 1))
    echo "FAIL: $*"
}

# drive NAME ARGS...: the driver, its output in $W/NAME.out; its own checks
# count as one assertion.
drive()
{
    local name=$1
    shift
    if "$drv" "$@" >"$W/$name.out" 2>&1; then ok; else bad "$name: driver checks"; fi
    cat "$W/$name.out"
}

# verify RECORD CHECK...: the receiver's record against the driver's alert
# formula (notify_driver.c). Checks:
#   order=A..B[-K,K...]  the alert ids answered 2xx are exactly A..B without
#                        the listed ones, in this order, each once
#   tail=N:LAST          the ids answered 2xx are N consecutive ones ending
#                        at LAST... or fewer (overflow), strictly increasing
#   attempts=N           requests received
#   fields               every body is the exact JSON of its alert, keys in
#                        order, Content-Type application/json
#   gap=I:SECONDS        request I+1 came at least SECONDS after request I
verify()
{
    local rec=$1
    shift
    if python3 - "$rec" "$@" <<'EOF'; then ok; else bad "verify $rec $*"; fi
import datetime, json, os, sys
rec, *checks = sys.argv[1:]
reqs = [json.loads(l) for l in open(rec, encoding="utf-8")] if os.path.exists(rec) else []
RULES = ["needle_rate_out_of_spec", "cartridge_reuse", "data_gap"]
SEV = ["unspecified", "info", "warning", "critical"]
STATE = ["unspecified", "firing", "resolved", "acknowledged", "renotify"]
T0 = 1795341600000
KEYS = ["device", "clinic", "model", "rule", "severity", "state", "alert_id", "value",
        "threshold", "message", "time", "since", "late"]

def iso(ms):
    t = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)

def expect(k, poison):
    msg = ('alert %d: "quoted" \\back\\slash\\ tab\t nl\n \u00e9\u2713\U0001F600 ctl\x01' % k
           + (" poison" if poison else ""))
    return {"device": "DEV-%04d" % (k % 7), "clinic": "Cl\u00ednica S\u00e3o Paulo, Unit 2",
            "model": "DG-3", "rule": RULES[k % 3], "severity": SEV[1 + k % 3],
            "state": STATE[1 + k % 4], "alert_id": str(k), "value": 100 + k * 0.25,
            "threshold": 140, "message": msg, "time": iso(T0 + k * 1000),
            "since": iso(T0 - 5000), "late": k % 2 == 1}

def ident(r):
    j = r.get("json")
    return int(j["alert_id"]) if isinstance(j, dict) and "alert_id" in j else None

delivered = [ident(r) for r in reqs if 200 <= r["status"] < 300]
problems = []
for c in checks:
    k, _, v = c.partition("=")
    if k == "order":
        rng, _, excl = v.partition("-")
        a, b = (int(x) for x in rng.split(".."))
        skip = {int(x) for x in excl.split(",") if x}
        want = [i for i in range(a, b + 1) if i not in skip]
        if delivered != want:
            dup = len(delivered) - len(set(delivered))
            missing = sorted(set(want) - set(delivered))[:10]
            extra = sorted(set(delivered) - set(want))[:10]
            problems.append("delivered %d ids (%d duplicates), want %d; missing %s, extra %s, "
                            "in order: %s" % (len(delivered), dup, len(want), missing, extra,
                                              delivered == sorted(delivered)))
    elif k == "tail":
        n, last = (int(x) for x in v.split(":"))
        if not delivered or delivered[-1] != last or len(delivered) > n \
                or any(x >= y for x, y in zip(delivered, delivered[1:])):
            problems.append("delivered %d ids ending %s, want at most %d, increasing, ending %d"
                            % (len(delivered), delivered[-1:] or None, n, last))
    elif k == "attempts":
        if len(reqs) != int(v):
            problems.append("%d requests, want %s" % (len(reqs), v))
    elif k == "fields":
        for r in reqs:
            j = r.get("json")
            if not isinstance(j, dict):
                problems.append("request %d: body is not a JSON object: %r" % (r["n"], r["body"][:200]))
                break
            k_id = int(j.get("alert_id", "0"))
            want = expect(k_id, "poison" in j.get("message", ""))
            if list(j.keys()) != KEYS or j != want:
                problems.append("request %d: %r\n      want %r" % (r["n"], j, want))
                break
            ct = r["headers"].get("content-type")
            if ct != "application/json":
                problems.append("request %d: content-type %r" % (r["n"], ct))
                break
    elif k == "gap":
        i, secs = v.split(":")
        i = int(i)
        if len(reqs) <= i or reqs[i]["t"] - reqs[i - 1]["t"] < float(secs):
            got = reqs[i]["t"] - reqs[i - 1]["t"] if len(reqs) > i else None
            problems.append("gap after request %d: %s s, want >= %s" % (i, got, secs))
    else:
        problems.append("unknown check " + c)
for p in problems:
    print("  " + p)
print("  %d requests, %d answered 2xx" % (len(reqs), len(delivered)))
sys.exit(1 if problems else 0)
EOF
}

# count_lines FILE PATTERN MIN MAX: lines matching PATTERN in FILE within bounds.
count_lines()
{
    local n
    n=$(grep -c -- "$2" "$1" || true)
    if ((n >= $3 && n <= $4)); then ok; else bad "$1: $n lines with '$2', want $3..$4"; fi
}

# --- up: in order, exactly once, exact JSON --------------------------------
echo "== up"
P=$(nw_free_port)
"$W/rx-start" "$P" "$W/up.rec"
drive up --webhook "http://127.0.0.1:$P/hooks/s3cr3t-token?key=k3y" \
    push:500 wait:delivered==500 wait:depth==0 check:retries==0 check:failed==0 \
    check:dropped==0 check:up==1 metrics
"$W/rx-stop"
verify "$W/up.rec" order=1..500 attempts=500 fields
if grep -q -e 's3cr3t' -e 'k3y' "$W/up.out"; then bad "the URL's secret path was logged"; else ok; fi

# --- down: pushes never block, everything delivered after it returns -------
echo "== down"
P=$(nw_free_port)
drive down --webhook "http://127.0.0.1:$P/hook" --backoff-min-ms 200 --backoff-max-ms 1000 \
    push:3000 push-took-less:5000 wait:up==0 check:delivered==0 sleep:1500 \
    push:3000 push-took-less:5000 check:delivered==0 \
    "sh:$W/rx-start $P $W/down.rec" \
    wait:delivered==6000:120 wait:depth==0 check:up==1 check:dropped==0 check:failed==0 \
    check:retries\>=2
"$W/rx-stop"
verify "$W/down.rec" order=1..6000 fields
count_lines "$W/down.out" "webhook http://127.0.0.1:$P down:" 1 1
count_lines "$W/down.out" "webhook http://127.0.0.1:$P up again" 1 1

# --- drain: more than the ZeroMQ pipe holds (2 x 10 000), nobody listening:
# 30 000 pushes never block only if the notifier keeps taking them -----------
echo "== drain"
P=$(nw_free_port)
drive drain --webhook "http://127.0.0.1:$P/hook" --queue-max 100 --backoff-min-ms 1000 \
    push:15000 push-took-less:10000 wait:dropped\>=14899:30 \
    push:15000 push-took-less:10000 wait:dropped\>=29899:30 check:depth\<=101 check:delivered==0
count_lines "$W/drain.out" "webhook queue full" 1 3

# --- retry: 503/500/429/408/closed, in order, Retry-After honoured -----------
echo "== retry"
P=$(nw_free_port)
"$W/rx-start" "$P" "$W/retry.rec" '[{"status": 503, "headers": {"Retry-After": "1"}},
    {"status": 500}, {"status": 429, "headers": {"Retry-After": "1"}}, {"status": 408},
    {"action": "close"}]'
drive retry --webhook "http://127.0.0.1:$P/hook" --backoff-min-ms 100 --backoff-max-ms 400 \
    push:20 wait:delivered==20:60 check:retries\>=4 check:retries\<=5 check:up==1 check:failed==0
"$W/rx-stop"
verify "$W/retry.rec" order=1..20 attempts=25 fields gap=1:0.95 gap=3:0.95
count_lines "$W/retry.out" "down:" 1 1

# --- hang: a receiver that takes the request and never answers -------------
echo "== hang"
P=$(nw_free_port)
"$W/rx-start" "$P" "$W/hang.rec" '[{"action": "hang"}]'
drive hang --webhook "http://127.0.0.1:$P/hook" --timeout-ms 1000 --backoff-min-ms 100 \
    push:5 sleep:300 push:200 push-took-less:5000 wait:delivered==205:60 check:retries==1
"$W/rx-stop"
verify "$W/hang.rec" order=1..205 attempts=206

# --- refuse: 400 drops that alert for good, the next ones go on -------------
echo "== refuse"
P=$(nw_free_port)
"$W/rx-start" "$P" "$W/refuse.rec" \
    '[{"status": 400, "contains": "poison", "times": -1, "body": "{\"error\":\"bad alert\"}"}]'
drive refuse --webhook "http://127.0.0.1:$P/hook" \
    push:40:poison=5,6,17,20,33 wait:delivered==35 check:failed==5 check:retries==0 check:up==1
"$W/rx-stop"
verify "$W/refuse.rec" order=1..40-5,6,17,20,33 attempts=40 fields
count_lines "$W/refuse.out" "webhook refused" 1 2
count_lines "$W/refuse.out" "bad alert" 1 1

# --- overflow: bound 10 while Retry-After holds the queue -------------------
echo "== overflow"
P=$(nw_free_port)
"$W/rx-start" "$P" "$W/overflow.rec" '[{"status": 503, "headers": {"Retry-After": "3"}}]'
drive overflow --webhook "http://127.0.0.1:$P/hook" --queue-max 10 \
    push:1 wait:retries==1 push:25 wait:dropped==16:10 wait:depth==10:10 \
    wait:delivered==10:30 check:depth==0
"$W/rx-stop"
verify "$W/overflow.rec" order=17..26 attempts=11
count_lines "$W/overflow.out" "webhook queue full" 1 2

# --- pub: topic frames, protobuf, prefix filters ------------------------------
echo "== pub"
P=$(nw_free_port)
drive pub --pub "tcp://127.0.0.1:$P" sub-ready push:300 sub-check:300 check:published\>=300 \
    check:delivered==0 metrics

echo "$passed passed, $failed failed"
((failed == 0))

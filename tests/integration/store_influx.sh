#!/usr/bin/env bash
# integration.store_influx: the store writer against the real servers.
#  - influx:// to InfluxDB 1.6.7: all five measurements, read back with
#    /query and compared value by value; the same batch again (no
#    duplicates); a real partial write (field type conflict) dead-letters
#    exactly the conflicting points; influxd stopped mid-run: NW_ERR_RETRY,
#    then recovery once it is back.
#  - influx:// and influx2:// to VictoriaMetrics (/write, /api/v2/write),
#    read back through /api/v1/export (fields become <measurement>_<field>).
#  - the same bench against both, in the same run.
# Usage: store_influx.sh PATH_TO_store_driver
set -euo pipefail
drv=${1:?usage: store_influx.sh PATH_TO_store_driver}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers.sh
source "$here/servers.sh"

nw_require influxd victoria-metrics curl python3
nw_make_workdir store-influx
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
unset NEEDLEWATCH_INFLUX_USER NEEDLEWATCH_INFLUX_PASSWORD NEEDLEWATCH_INFLUX_TOKEN
nw_start_influxd "$NW_WORK" || exit 1
nw_start_victoria "$NW_WORK" || exit 1
I=$NW_INFLUX_URL
V=$NW_VICTORIA_URL
echo "influxd $I, victoria-metrics $V, work $NW_WORK"

passed=0
failed=0
ok() {
    passed=$((passed + 1))
}
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}

# step NAME ARGS...: runs the driver, output in $NW_WORK/NAME.out.
step()
{
    local name=$1
    shift
    echo "== $name"
    if "$drv" "$@" >"$NW_WORK/$name.out" 2>&1; then ok; else bad "$name: driver checks"; fi
    grep -v 'warn store: dead-lettered' "$NW_WORK/$name.out" || true
}

iquery()
{
    curl -sf -XPOST "$I/query" --data-urlencode "q=$1" >/dev/null
}

# compare_influx DB EXPECTED_JSONL: every expected point, and nothing else,
# in InfluxDB, value for value.
compare_influx()
{
    if python3 - "$I" "$1" "$2" <<'EOF'; then ok; else bad "InfluxDB $1 differs from $2"; fi
import json, sys, urllib.parse, urllib.request
base, db, expected = sys.argv[1:]
want = [json.loads(l) for l in open(expected)]
problems, by_m = [], {}
for p in want:
    by_m.setdefault(p["measurement"], []).append(p)
for m, points in by_m.items():
    q = urllib.parse.urlencode({"db": db, "epoch": "ms", "q": 'SELECT * FROM "%s"' % m})
    res = json.load(urllib.request.urlopen(base + "/query?" + q, timeout=30))
    series = res["results"][0].get("series", [])
    rows = []
    for s in series:
        rows += [dict(zip(s["columns"], v)) for v in s["values"]]
    tag_keys = list(points[0]["tags"])
    field_keys = sorted({k for p in points for k in p["fields"]})
    def key(t, tags):
        return (t,) + tuple(tags.get(k) or None for k in tag_keys)
    got = {}
    for r in rows:
        k = key(r["time"], r)
        if k in got:
            problems.append("%s: duplicate row %s" % (m, k))
        got[k] = r
    if len(rows) != len(points):
        problems.append("%s: %d rows, want %d" % (m, len(rows), len(points)))
    for p in points:
        r = got.get(key(p["time"], p["tags"]))
        if r is None:
            problems.append("%s: missing %s" % (m, key(p["time"], p["tags"])))
            continue
        for f in field_keys:
            w, g = p["fields"].get(f), r.get(f)
            if w != g or type(w) is bool and type(g) is not bool:
                problems.append("%s t=%d %s: got %r, want %r" % (m, p["time"], f, g, w))
for x in problems[:20]:
    print("  " + x)
print("  InfluxDB %s: %d points compared, %d problems" % (db, len(want), len(problems)))
sys.exit(1 if problems else 0)
EOF
}

# compare_vm BASE SELECTOR DB_LABEL EXPECTED_JSONL COPIES: every numeric
# field as <measurement>_<field>{tags, db} at the point's time, COPIES times.
compare_vm()
{
    curl -sf "$1/internal/force_flush" >/dev/null
    if python3 - "$@" <<'EOF'; then ok; else bad "VictoriaMetrics $2 differs"; fi
import json, math, sys, time, urllib.parse, urllib.request
base, selector, db, expected, copies = sys.argv[1:]
copies = int(copies)
want = [json.loads(l) for l in open(expected)]
def export():
    data = urllib.parse.urlencode({"match[]": selector}).encode()
    body = urllib.request.urlopen(base + "/api/v1/export", data, timeout=30).read().decode()
    out = {}
    for line in body.splitlines():
        s = json.loads(line)
        labels = dict(s["metric"])
        name = labels.pop("__name__")
        out[(name, tuple(sorted(labels.items())))] = list(zip(s["timestamps"], s["values"]))
    return out
samples, expected_n = {}, 0
for p in want:
    for f, v in p["fields"].items():
        if isinstance(v, str):
            continue
        expected_n += copies
for _ in range(100):  # samples become searchable about a second after the write
    samples = export()
    if sum(len(v) for v in samples.values()) >= expected_n:
        break
    time.sleep(0.1)
problems, checked = [], 0
for p in want:
    labels = {k: v for k, v in p["tags"].items() if v}
    if db:
        labels["db"] = db
    for f, v in p["fields"].items():
        if isinstance(v, str):
            continue  # VictoriaMetrics keeps no strings
        sk = ("%s_%s" % (p["measurement"], f), tuple(sorted(labels.items())))
        at = [val for t, val in samples.get(sk, []) if t == p["time"]]
        checked += 1
        if len(at) != copies:
            problems.append("%s at %d: %d samples, want %d" % (sk[0], p["time"], len(at), copies))
        elif any(not math.isclose(a, float(v), rel_tol=1e-12, abs_tol=1e-300) for a in at):
            problems.append("%s at %d: %r, want %r" % (sk[0], p["time"], at, v))
for x in problems[:20]:
    print("  " + x)
print("  VictoriaMetrics %s: %d samples compared (%d copies each), %d problems"
      % (selector, checked, copies, len(problems)))
sys.exit(1 if problems else 0)
EOF
}

iquery "CREATE DATABASE nw"
iquery "CREATE DATABASE nwconflict"
IURL="influx://127.0.0.1:$NW_INFLUX_PORT/nw"

# --- InfluxDB 1.6.7: round trip, then the same batch again ------------------
"$drv" "$IURL" expect:mix:200:1 >"$NW_WORK/mix.jsonl"
step influx_write --dead-letter "$NW_WORK/influx.dead" "$IURL" write:mix:200:1 \
    check:code=OK,done=200,stored=200,dead=0,requests=1,http=204
compare_influx nw "$NW_WORK/mix.jsonl"
step influx_rewrite "$IURL" write:mix:200:1 check:code=OK,done=200 stats
compare_influx nw "$NW_WORK/mix.jsonl"

# --- a real partial write: seq already exists as a float in this shard --------
curl -sf -XPOST "$I/write?db=nwconflict&precision=ms" \
    --data-binary 'needle_window,device=other seq=1.5 1700000000000' >/dev/null
step influx_conflict --dead-letter "$NW_WORK/conflict.dead" \
    "influx://127.0.0.1:$NW_INFLUX_PORT/nwconflict" write:mix:20:1 \
    check:code=OK,done=20,stored=16,dead=4
if [[ $(grep -c 'field type conflict: input field \\"seq\\" on measurement \\"needle_window\\" is type integer' \
    "$NW_WORK/conflict.dead") == 4 ]]; then ok; else bad "conflict dead letters"; fi
"$drv" "$IURL" expect:mix:20:1 | grep -v '"measurement":"needle_window"' >"$NW_WORK/noconflict.jsonl"
compare_influx nwconflict "$NW_WORK/noconflict.jsonl"

# --- influxd stopped mid-run: retry, then recovery --------------------------------
nw_stop influxd
step influx_down "$IURL" write:window:10:500 check:code=RETRY,done=0,http=0
echo "== influx_recover (influxd restarts in 2 s)"
"$drv" --backoff-min-ms 200 --backoff-max-ms 1000 "$IURL" until-ok:window:50:500:60 \
    >"$NW_WORK/recover.out" 2>&1 &
drv_pid=$!
sleep 2
nw_restart influxd || exit 1
if wait "$drv_pid"; then ok; else bad "recovery"; fi
cat "$NW_WORK/recover.out"
if grep -q 'until-ok attempt code=temporary failure' "$NW_WORK/recover.out"; then ok; else bad "no retry seen"; fi
"$drv" "$IURL" expect:window:50:500 >"$NW_WORK/recovered.jsonl"
python3 - "$NW_WORK/mix.jsonl" "$NW_WORK/recovered.jsonl" >"$NW_WORK/all.jsonl" <<'EOF'
import sys
for f in sys.argv[1:]:
    sys.stdout.write(open(f).read())
EOF
compare_influx nw "$NW_WORK/all.jsonl"

# --- VictoriaMetrics: /write (v1) and /api/v2/write (v2) ----------------------------
# servers.sh starts it with -dedup.minScrapeInterval=1ms, so a re-sent batch
# replaces itself (without the flag VictoriaMetrics keeps both copies and
# count_over_time() counts both: production needs the flag too).
VURL="influx://127.0.0.1:$NW_VICTORIA_PORT/nw"
step vm_v1 "$VURL" write:mix:200:1 check:code=OK,done=200,requests=1
compare_vm "$V" '{db="nw"}' nw "$NW_WORK/mix.jsonl" 1
step vm_v1_again "$VURL" write:mix:200:1 check:code=OK,done=200
compare_vm "$V" '{db="nw"}' nw "$NW_WORK/mix.jsonl" 1

# With -dedup.minScrapeInterval=1ms (how STORE.md says to run it) a re-sent
# point overwrites itself, as in InfluxDB.
VD_PID=
nw_test_cleanup()
{
    if [[ -n "$VD_PID" ]]; then
        kill "$VD_PID" 2>/dev/null || true
        wait "$VD_PID" 2>/dev/null || true
    fi
}
VD_PORT=$(nw_free_port 1)
VD="http://127.0.0.1:$VD_PORT"
setpriv --pdeathsig TERM -- victoria-metrics -httpListenAddr "127.0.0.1:$VD_PORT" \
    -storageDataPath "$NW_WORK/victoria-dedup" -retentionPeriod 100y \
    -dedup.minScrapeInterval=1ms >"$NW_WORK/victoria-dedup.log" 2>&1 </dev/null &
VD_PID=$!
for _ in $(seq 300); do
    curl -sf -o /dev/null --max-time 2 "$VD/health" && break
    sleep 0.1
done
NW_LOGS+=("$NW_WORK/victoria-dedup.log")
step vmd_v1 "influx://127.0.0.1:$VD_PORT/nw" write:mix:200:1 check:code=OK,done=200 \
    write:mix:200:1 check:code=OK,done=200
compare_vm "$VD" '{db="nw"}' nw "$NW_WORK/mix.jsonl" 1
"$drv" "$VURL" expect:mix:100:5000 >"$NW_WORK/v2.jsonl"
step vmd_v2 "influx2://127.0.0.1:$VD_PORT/?org=o&bucket=b" write:mix:100:5000 \
    check:code=OK,done=100 write:mix:100:5000 check:code=OK
compare_vm "$VD" '{__name__=~".+",db=""}' "" "$NW_WORK/v2.jsonl" 1

# --- the same bench against both, in this run ------------------------------------
iquery "CREATE DATABASE nwbench"
step bench_influx "influx://127.0.0.1:$NW_INFLUX_PORT/nwbench" bench:50000:1000 stats
step bench_vm "influx://127.0.0.1:$NW_VICTORIA_PORT/nwbench" bench:50000:1000 stats

echo "$passed passed, $failed failed"
((failed == 0))

#!/usr/bin/env bash
# cli_api.sh NEEDLEWATCH SOURCE_DIR
#
# needlewatch as an HTTP client, against fake_server.py on a free loopback
# port: the collector's operator API (alerts ack / silence / silences: the
# requests sent, 200 and 404 handling, NEEDLEWATCH_COLLECTOR) and InfluxDB
# answers that are not what a report can use (not JSON, wrong types, cut
# off, 401, 503, an oversized value): exit 1 with one clear line each.
set -euo pipefail
nw=$1 src=$2
here=$src/tests/cli
source "$src/tests/integration/servers.sh"
nw_require python3
nw_make_workdir cli-api
python3 "$here/fake_server.py" "$NW_WORK/port" >"$NW_WORK/requests.log" 2>&1 &
server=$!
nw_test_cleanup()
{
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
}
for _ in $(seq 100); do
    [[ -s "$NW_WORK/port" ]] && break
    sleep 0.05
done
port=$(cat "$NW_WORK/port")
coll=http://127.0.0.1:$port

out=$("$nw" alerts ack 42 --collector "$coll")
[[ "$out" == "alert 42 acknowledged" ]] || {
    echo "FAIL: ack: $out"
    exit 1
}
echo "ok: $out"
set +e
out=$("$nw" alerts ack 420 --collector "$coll" 2>&1)
rc=$?
set -e
[[ $rc -eq 1 && "$out" == *"no alert with id 420"* ]] || {
    echo "FAIL: ack of an unknown id: exit $rc: $out"
    exit 1
}
echo "ok: exit 1: $out"
out=$(NEEDLEWATCH_COLLECTOR=$coll "$nw" alerts silence --device SP-1 --rule needle_rate_out_of_spec --for 2h)
echo "ok: $out"
NEEDLEWATCH_COLLECTOR=$coll "$nw" alerts silence --for 90m >/dev/null
out=$("$nw" alerts silences --collector "$coll")
echo "ok: silences: $out"
python3 - "$out" <<'PY'
import json, sys
s = json.loads(sys.argv[1])["silences"]
assert s[0] == {"device": "SP-1", "rule": "needle_rate_out_of_spec", "for": "7200"}, s
assert s[1] == {"for": "5400"}, s  # no device, no rule: all
PY
grep -q "^POST /alerts/ack?id=42$" "$NW_WORK/requests.log"
grep -q "^POST /silences?device=SP-1&rule=needle_rate_out_of_spec&for=7200$" "$NW_WORK/requests.log"
echo "ok: requests as the operator API expects them"

expect_influx()
{
    local db=$1 pattern=$2 out rc
    set +e
    out=$("$nw" report --store "influx://127.0.0.1:$port/$db" --from -1d 2>&1)
    rc=$?
    set -e
    if [[ $rc -ne 1 || $(printf '%s\n' "$out" | wc -l) -ne 1 || "$out" != *"$pattern"* ]]; then
        echo "FAIL: InfluxDB answer \"$db\": exit $rc: $out"
        exit 1
    fi
    echo "ok: $db: $out"
}
expect_influx garbage "malformed answer"
expect_influx badtype "not an integer"
expect_influx truncated "ends inside a document"
expect_influx auth "HTTP 401"
expect_influx slowdown "HTTP 503"
expect_influx huge "too long"
# an empty store answers: a report with nothing in it, exit 0
"$nw" report --store "influx://127.0.0.1:$port/empty" --from -1d --format json >/dev/null
echo "PASS cli.api"

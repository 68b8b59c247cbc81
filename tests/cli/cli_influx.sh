#!/usr/bin/env bash
# cli_influx.sh NEEDLEWATCH FIXTURE SOURCE_DIR
#
# The same fixture written into SQLite and into a real InfluxDB 1.6.7
# (tests/integration/servers.sh, free loopback port) by the collector's
# store writer; every command and format of needlewatch run on both stores
# must print byte-identical output, and the InfluxDB figures must equal the
# hand-computed ones too. A second, small query chunk size makes InfluxDB
# answer in many chunks (the streaming parser) - still identical.
set -euo pipefail
nw=$1 fixture=$2 src=$3
here=$src/tests/cli
source "$src/tests/integration/servers.sh"
source "$here/run_all.sh"
nw_require influxd curl python3
nw_make_workdir cli-influx
nw_start_influxd "$NW_WORK" || exit 1
curl -sf -XPOST "$NW_INFLUX_URL/query" --data-urlencode "q=CREATE DATABASE nwcli" >/dev/null

"$fixture" "sqlite:$NW_WORK/fx.db"
"$fixture" "influx://127.0.0.1:$NW_INFLUX_PORT/nwcli"
cli_run_all "$nw" "sqlite:$NW_WORK/fx.db" "$NW_WORK/sqlite" "$here/collector.ini"
cli_run_all "$nw" "influx://127.0.0.1:$NW_INFLUX_PORT/nwcli" "$NW_WORK/influx" \
    "$here/collector.ini"
python3 "$here/check.py" expect "$NW_WORK/influx"

n=0
for f in "$NW_WORK/sqlite"/*; do
    name=$(basename "$f")
    if ! cmp -s "$f" "$NW_WORK/influx/$name"; then
        echo "FAIL: $name differs between SQLite and InfluxDB:"
        diff "$f" "$NW_WORK/influx/$name" | head -20
        exit 1
    fi
    n=$((n + 1))
done
echo "ok: $n outputs identical on SQLite and InfluxDB"

# the streaming parser: 3-row chunks, many documents per answer
NEEDLEWATCH_QUERY_CHUNK=3 "$nw" report --store "influx://127.0.0.1:$NW_INFLUX_PORT/nwcli" \
    --from 2026-11-02 --to 2026-11-09 --format json >"$NW_WORK/chunked.json"
cmp "$NW_WORK/chunked.json" "$NW_WORK/sqlite/report.json"
echo "ok: 3-row chunks give the same report"

# a database that does not exist: one line, exit 1
set +e
out=$("$nw" report --store "influx://127.0.0.1:$NW_INFLUX_PORT/nosuchdb" 2>&1)
rc=$?
set -e
if [[ $rc -ne 1 || "$out" != *"database not found"* ]]; then
    echo "FAIL: missing database: exit $rc, \"$out\""
    exit 1
fi
echo "ok: $out"
echo "PASS cli.influx"

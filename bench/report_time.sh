#!/usr/bin/env bash
# report_time.sh [--quick] [BUILD_DIR] - time `needlewatch report` over a
# fleet's history on SQLite and on InfluxDB 1.6.7.
#
# The full run is the issue's figure: 90 days x 500 devices, one 3-hour
# session per device and day, one window per 60 s (8.1 M windows, plus
# events, hourly status, session summaries and alerts). --quick: 7 days x
# 50 devices. Override with NW_BENCH_DAYS, NW_BENCH_DEVICES, NW_BENCH_WINDOW_S
# (1..60), NW_BENCH_SESSION_MIN.
#
# The data is written by bench/report_gen.c through the collector's store
# writer; then each store gets one warm-up and NW_BENCH_RUNS (default 3)
# timed runs of `needlewatch report --format json` over the whole range,
# and the script prints the data volume, the store size, the times and the
# rows read per second, next to the machine's load. InfluxDB runs on a free
# loopback port (tests/integration/servers.sh) and is stopped at the end.
set -euo pipefail
quick=0
if [[ "${1:-}" == "--quick" ]]; then
    quick=1
    shift
fi
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
nw=$build/cli/needlewatch
gen=$build/tests/cli/report_gen
for b in "$nw" "$gen"; do
    [[ -x "$b" ]] || {
        echo "report_time: $b missing: cmake --build $build" >&2
        exit 1
    }
done
if ((quick)); then
    days=${NW_BENCH_DAYS:-7} devices=${NW_BENCH_DEVICES:-50}
else
    days=${NW_BENCH_DAYS:-90} devices=${NW_BENCH_DEVICES:-500}
fi
win=${NW_BENCH_WINDOW_S:-60} sess=${NW_BENCH_SESSION_MIN:-180} runs=${NW_BENCH_RUNS:-3}

source "$root/tests/integration/servers.sh"
nw_make_workdir bench-report
nw_start_influxd "$NW_WORK" || exit 1
curl -sf -XPOST "$NW_INFLUX_URL/query" --data-urlencode "q=CREATE DATABASE nwbench" >/dev/null
sqlite_url="sqlite:$NW_WORK/bench.db"
influx_url="influx://127.0.0.1:$NW_INFLUX_PORT/nwbench"

echo "== report_time: $days days x $devices devices, ${win} s windows, ${sess} min sessions"
echo "   machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "-- writing (collector store writer)"
"$gen" "$sqlite_url" "$days" "$devices" "$win" "$sess" 1 | sed 's/^/   sqlite: /'
"$gen" "$influx_url" "$days" "$devices" "$win" "$sess" 1 | sed 's/^/   influx: /'
curl -sf -XPOST "$NW_INFLUX_URL/query" --data-urlencode "q=SELECT count(rate_mean) FROM needle_window" \
    --data-urlencode "db=nwbench" | sed 's/^/   influx count: /'
echo
# the range: the generator ends its history at 00:00 UTC today
to=$(date -u +%Y-%m-%d)
from=$(date -u -d "$to - $days days" +%Y-%m-%d)

time_report()
{
    local name=$1 url=$2 best=999999 i t0 t1 ms rss
    "$nw" report --store "$url" --from "$from" --to "$to" --format json -q >"$NW_WORK/$name.json"
    for ((i = 0; i < runs; i++)); do
        t0=$(date +%s%N)
        /usr/bin/time -f '%M' -o "$NW_WORK/$name.rss" \
            "$nw" report --store "$url" --from "$from" --to "$to" --format json -q \
            >"$NW_WORK/$name.json"
        t1=$(date +%s%N)
        ms=$(((t1 - t0) / 1000000))
        ((ms < best)) && best=$ms
        rss=$(cat "$NW_WORK/$name.rss")
        echo "   $name run $((i + 1)): ${ms} ms, max RSS $((rss / 1024)) MiB"
    done
    echo "$best" >"$NW_WORK/$name.best"
}
if ! command -v /usr/bin/time >/dev/null 2>&1 || ! /usr/bin/time -f %M true 2>/dev/null; then
    echo "report_time: /usr/bin/time (Debian package 'time') is needed for RSS" >&2
    exit 1
fi
echo "-- needlewatch report over $from .. $to (best of $runs after a warm-up)"
time_report sqlite "$sqlite_url"
time_report influx "$influx_url"
if cmp -s "$NW_WORK/sqlite.json" "$NW_WORK/influx.json"; then
    echo "   reports identical on both stores"
else
    echo "   WARNING: the reports differ between the stores" >&2
fi
windows=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["fleet"]["windows_received"])' \
    "$NW_WORK/sqlite.json")
sq=$(cat "$NW_WORK/sqlite.best") ix=$(cat "$NW_WORK/influx.best")
echo
echo "== result: $windows windows ($days days x $devices devices, ${win} s windows)"
printf '   %-8s %10s %14s %12s\n' store "best ms" "windows/s" "store size"
printf '   %-8s %10d %14d %12s\n' sqlite "$sq" $((windows * 1000 / (sq > 0 ? sq : 1))) \
    "$(du -sh "$NW_WORK/bench.db" | cut -f1)"
printf '   %-8s %10d %14d %12s\n' influx "$ix" $((windows * 1000 / (ix > 0 ? ix : 1))) \
    "$(du -sh "$NW_WORK/influxd/data" | cut -f1)"
echo "   load after: $(cut -d' ' -f1-3 /proc/loadavg)"

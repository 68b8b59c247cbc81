#!/usr/bin/env bash
# collector_throughput.sh - figure 2: windows the collector stores per
# second, against what a bare subscriber receives in the same setup
# (DESIGN §9: >= 0.9 x at the same QoS, every window accounted for) and,
# catching up, against the store's own ingest limit (>= 0.8 x).
#
#   bench/collector_throughput.sh [--quick] [--keep] [--build DIR]
#   NW_BENCH_STORE=influx bench/collector_throughput.sh ...
#
# NW_BENCH_STORE=influx runs every store row (the store alone, the
# collector) against a real InfluxDB 1.x (Debian's influxd, started here on
# a free port, one database per run) instead of SQLite; the accounting
# counts the rows with InfluxQL.
#
# Live fleet (1 window per message): N=1000 devices (loadgen, one process,
# one epoll loop, QoS 1, 16 in flight each, valid WindowBatch payloads from
# lib/codec.c, per-device seq 1, 2, 3...), publishing as fast as the broker
# takes them. Measured in this run, in this order:
#   base-raw     bare subscriber (loadgen raw client, Receive Maximum 65535)
#   base-nwmqtt  bare subscriber on lib/mqtt.c, the collector's own client
#                code with the collector's defaults (libmosquitto, Receive
#                Maximum 65535, buffered I/O), counting only
#   store-live   the store alone (bench/store_ingest: nw_store_write of the
#                same points in 5000-point batches, same device order)
#   collector    needlewatch-collector --store sqlite:<tmp>: windows stored
#                per second from /metrics nw_points_stored_total over the
#                window; then the accounting (sent = stored + refused +
#                hwm-dropped, and the SQLite row count), hwm drops reported
#   base-raw-p, collector-p  (p = 2..NW_BENCH_PAIRS, default 3; --quick 1)
#                the same two runs again: the broker's own rate moves by up
#                to a third between identical runs (its batching), so the
#                live figure [1] is the mean stored/s of the collector runs
#                over the mean of the baselines; each pair's own ratio is
#                printed below it
# Catching up (256 windows per message, 100 devices):
#   store-catchup  the store alone, 256 consecutive windows per device
#   base-catchup   bare subscriber (raw) receiving messages of the size of a
#                256-window batch (pre-built payloads): the broker's limit
#   collector-catchup  publishers paced at 1.25 x the store limit just
#                measured, so the store, not the broker, is the bottleneck
#   collector-catchup-nospool  the same with --set collector.spool= (no
#                disk spool; a configuration, not a code change): what-if
# Catch-up publishes a fixed amount: 1.25 x store limit x 9 s (--quick: 4 s)
# of windows, so the offered load lasts past the end of the measurement
# window (warm-up + window + ~2 s): the store, not the end of the load,
# limits what is measured. The collector holds at most 2 x batch_points
# points for the writer and drops the messages beyond (counted as writer
# hwm drops, never acked: a real agent re-sends them after its ack
# timeout), so at 1.25 x its limit about a fifth is dropped, by design.
# Accounting: after the publishers stop, the script waits until the stored
# count reaches the sent count, or 5 s without progress, or 20 s; then
# SIGTERM (the collector flushes) and counts the SQLite rows: sent = rows +
# refused + hwm-dropped (counted in /metrics, never acked: agents re-send)
# + "pending". Pending 0 is "every window accounted for"; pending > 0 is
# what was neither stored nor counted as dropped when the bench stopped the
# collector: still in its queues or disk spool (never acked, stored by its
# next run) or lost - the bench cannot tell which, which is why it waits
# for the drain when the collector is fast enough to finish it.
# Default: 2 s warm-up + 5 s windows (~5 min); --quick: 1 + 2 s, 300
# devices, no what-if rows, no base-nwmqtt/store-live/base-catchup info
# rows, 2 s store run, catch-up offered for 2 s, drains bounded at 2 s
# (~30 s). The collector log, /metrics samples (TSV) and every
# RESULT line are in the work dir (kept with --keep).
# CPU at a fixed load (phase "cpu"): the same 1000 live devices paced at
# 10 000 windows/s in total; the collector's CPU (% of one core, /proc over
# the window) is the "CPU per 10 000 windows/s" figure, next to what a bare
# subscriber and the broker use for the same load in the same run. At a
# fixed load the figure does not depend on how the scheduler shares the
# two cores, unlike the saturated live rows.
# NW_BENCH_PHASES="live catchup cpu" (default all three) runs only some.
# NW_BENCH_PERF=DIR records `perf record -g` of each collector run over its
# warm-up + window into DIR/<run>.perf.data (a diagnostic: perf costs CPU).
# NW_BENCH_COLLECTOR_ARGS="--set store.batch_points=20000 ..." adds options
# to every collector run (an experiment, printed in the header).
# NW_BENCH_NICE=N runs the collector under nice -n N (an experiment: how
# much of the gap is the broker's share of the CPU).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_init collector_throughput "$@"
bench_build loadgen store_ingest needlewatch-collector

if ((QUICK)); then
    WARM=1 DUR=2 N=300 NC=50 STORE_S=2 DRAIN_TICKS=8 LINGER=1 CU_SECS=4 PAIRS=1
else
    WARM=2 DUR=5 N=1000 NC=100 STORE_S=5 DRAIN_TICKS=80 LINGER=2 CU_SECS=9 PAIRS=${NW_BENCH_PAIRS:-3}
fi
BATCH=256
COLLECTOR=$BUILD/collector/needlewatch-collector
POLL="python3 $BENCH_DIR/metrics_poll.py"
W=$NW_WORK
STORE_KIND=${NW_BENCH_STORE:-sqlite}

bench_machine start
bench_broker
if [[ $STORE_KIND == influx ]]; then
    nw_start_influxd "$W" || { bench_log "influxd did not start"; exit 1; }
elif [[ $STORE_KIND != sqlite ]]; then
    bench_log "NW_BENCH_STORE=$STORE_KIND: expected sqlite or influx"
    exit 2
fi

# store_url NAME: a fresh store for one run.
store_url()
{
    if [[ $STORE_KIND == influx ]]; then
        curl -sf -XPOST "$NW_INFLUX_URL/query" --data-urlencode "q=CREATE DATABASE \"$1\"" >/dev/null
        echo "influx://127.0.0.1:$NW_INFLUX_PORT/$1"
    else
        echo "sqlite:$W/$1.db"
    fi
}

# store_rows NAME: needle_window rows in the store of run NAME.
store_rows()
{
    if [[ $STORE_KIND == influx ]]; then
        curl -sf -G "$NW_INFLUX_URL/query" --data-urlencode "db=$1" \
            --data-urlencode "q=SELECT count(seq) FROM needle_window" |
            python3 -c 'import json, sys
r = json.load(sys.stdin)["results"][0]
print(r["series"][0]["values"][0][1] if "series" in r else 0)'
    else
        sqlite3 "$W/$1.db" "SELECT count(*) FROM needle_window" 2>/dev/null || echo 0
    fi
}
echo "# live: $N devices, 1 window/msg, QoS 1, window 16; catch-up: $NC devices, $BATCH windows/msg"
echo "# runs: warm-up ${WARM}s, window ${DUR}s; collector: defaults (2 workers, batch 5000, flush 200 ms)${NW_BENCH_COLLECTOR_ARGS:+ + $NW_BENCH_COLLECTOR_ARGS}; store: $STORE_KIND ($([[ $STORE_KIND == influx ]] && echo "InfluxDB $(influxd version 2>/dev/null | head -n 1) on $NW_INFLUX_URL" || echo "SQLite WAL synchronous=FULL in $W"))"

{
    echo "device,clinic,model"
    for ((i = 0; i < N; i++)); do printf 'BENCH-%05d,Clinic %d,DG-3\n' "$i" $((i % 20)); done
    for ((i = 0; i < NC; i++)); do printf 'CATCH-%05d,Clinic %d,DG-3\n' "$i" $((i % 20)); done
} >"$W/inventory.csv"

cpid=""
bench_cleanup()
{
    [[ -n "$cpid" ]] && kill -9 "$cpid" 2>/dev/null
    touch "$W/stop" 2>/dev/null
    return 0
}

# start_collector NAME [ENV...] [-- COLLECTOR ARGS...]: a fresh collector
# on a fresh SQLite file.
start_collector()
{
    local name=$1 i envs=() args=()
    shift
    while (($# > 0)) && [[ "$1" != "--" ]]; do envs+=("$1"); shift; done
    (($# > 0)) && shift
    args=("$@")
    # shellcheck disable=SC2206 # NW_BENCH_COLLECTOR_ARGS: words, for experiments
    args+=(${NW_BENCH_COLLECTOR_ARGS:-})
    http_port=$(nw_free_port 1)
    local url
    url=$(store_url "$name")
    mkdir -p "$W/$name.cwd" # relative default paths (state, spool) land here
    (cd "$W/$name.cwd" && exec env "${envs[@]}" nice -n "${NW_BENCH_NICE:-0}" "$COLLECTOR" -b "$NW_MQTT_URL" -s "$url" \
        -i "$W/inventory.csv" --http "127.0.0.1:$http_port" \
        --set collector.dead_letter="$W/$name.dead.jsonl" "${args[@]}" >"$W/$name.log" 2>&1) &
    cpid=$!
    for i in $(seq 100); do
        if curl -sf "http://127.0.0.1:$http_port/metrics" 2>/dev/null | grep -q '^nw_broker_up 1'; then
            sleep 0.3 # its SUBSCRIBE is on the wire
            return 0
        fi
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$W/$name.log" >&2
    bench_log "collector did not come up"
    exit 1
}

stop_collector()
{
    kill -TERM "$cpid" 2>/dev/null || true
    local i
    for i in $(seq 150); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$cpid" 2>/dev/null || true
    wait "$cpid" 2>/dev/null || true
    cpid=""
}

# collector_run NAME PUBARGS [ENV...] [-- ARGS...]: publishes, samples /metrics, waits
# until the collector has settled everything it will (bounded), stops it.
collector_run()
{
    local name=$1 pubargs=$2 i prev="" same=0
    shift 2
    start_collector "$name" "$@"
    rm -f "$W/stop"
    if [[ -n "${NW_BENCH_PERF:-}" ]]; then # profile the collector over warm-up + window
        perf record -g -p "$cpid" -o "$NW_BENCH_PERF/$name.perf.data" -- sleep $((WARM + DUR)) \
            >"$W/$name.perf.log" 2>&1 &
    fi
    $POLL poll "http://127.0.0.1:$http_port/metrics" "$cpid" "$BROKER_PID" "$W/$name.tsv" \
        "$W/stop" 170 0.25 &
    local ppid=$!
    # shellcheck disable=SC2086
    timeout 150 "$BUILD/bench/loadgen" pub --port "$NW_MQTT_PORT" $pubargs >"$W/$name.pub" \
        2>"$W/$name.pub.err" || { cat "$W/$name.pub.err" >&2; bench_log "$name: publisher failed"; }
    local sent
    sent=$(kv windows_sent "$W/$name.pub")
    # Drain: until stored reaches sent, or 5 s without progress, at most
    # 20 s (--quick: 2 s).
    for i in $(seq "$DRAIN_TICKS"); do
        sleep 0.25
        local stored
        stored=$(tsv_last nw_points_stored_total "$W/$name.tsv")
        [[ "${stored:-0}" == "$sent" ]] && break
        if [[ "$stored" == "$prev" ]]; then
            same=$((same + 1))
            ((same >= 20)) && break
        else
            same=0
        fi
        prev=$stored
    done
    sleep 0.5
    touch "$W/stop"
    wait "$ppid" || true
    stop_collector
}

cw="" # the last "metrics_poll.py window" result; cget KEY reads it
cget() { tr ' ' '\n' <<<"$cw" | sed -n "s/^$1=//p"; }
mib() { awk -v k="${1:-0}" 'BEGIN { printf "%.1f\n", k / 1024 }'; }
times_batch() { awk -v r="${1:-0}" -v b="$BATCH" 'BEGIN { printf "%.0f\n", r * b }'; }

# tsv_last COLUMN FILE: the column's value in the last sample (awk: a
# python start per poll costs up to a second on the loaded box).
tsv_last()
{
    awk -F'\t' -v k="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == k) c = i; next }
        { v = $c } END { if (c) printf "%d\n", v }' "$2" 2>/dev/null || true
}

# account NAME WINDOWS_PER_MSG: sent = SQLite rows + refused + hwm-dropped
# + pending (see the header); sets ACC_*.
account()
{
    local name=$1 per=$2
    local m sent stored rej hw hwr hs rows msgs_rej spool pending wdp
    m=$($POLL last "$W/$name.tsv")
    # metrics_poll prints large values as 1.309184e+06: printf, not a cut at the dot
    get() { tr ' ' '\n' <<<"$m" | sed -n "s/^$1=//p" | awk '{ printf "%.0f\n", $1 }'; }
    sent=$(kv windows_sent "$W/$name.pub")
    stored=$(get nw_points_stored_total)
    rej=$(get nw_items_rejected_total)
    msgs_rej=$(get rejected_msgs)
    hw=$(get hwm_worker)
    hwr=$(get hwm_writer)
    wdp=$(get nw_writer_dropped_points_total) # workers coalesce: count points, not messages
    hs=$(get hwm_settle)
    spool=$(get spool_records)
    rows=$(store_rows "$name")
    pending=$((sent - rows - rej - (hw + msgs_rej) * per - wdp))
    echo "# $name accounting: sent $sent windows = $rows $STORE_KIND rows ($stored stored before SIGTERM)" \
        "+ $rej refused items + $msgs_rej refused msgs x $per + hwm-dropped: worker $hw msgs x $per," \
        "writer $wdp windows ($hwr msgs) + pending $pending (spool chunks at stop: $spool; settle drops $hs)"
    if ((pending < 0)); then
        echo "# $name: MORE rows than sent windows: duplicates or foreign data"
    fi
    ACC_PENDING=$pending ACC_DROPS=$((hw * per + wdp))
}

printf '%-26s %10s %10s %10s %8s %8s %8s %9s\n' run sent/s recv/s stored/s broker% coll% pub% rss_MiB

row()
{
    printf '%-26s %10s %10s %10s %8s %8s %8s %9s\n' "$@"
}

PHASES=${NW_BENCH_PHASES:-live catchup cpu}
CPU_RATE=10000 CPU_COLL="" CPU_SUB="" CPU_BROKER_SUB="" CPU_BROKER_COLL="" CPU_STORED="" CPU_PENDING=
SUBC="--qos 1 --warmup $WARM --duration $DUR --linger $LINGER"
NS_STORED="" NS_RSS="" LIVE_STORED="" LIVE_PENDING="" LIVE_DROPS="" LIVE_RSS=0 CU_STORED="" CU_PENDING="" CU_DROPS="" CU_RSS=0 STORE_LIMIT="" BASE_CU_WPS=""

# ---- live fleet: 1 window per message ------------------------------------
LIVE="--clients $N --qos 1 --window 16 --payload windows --batch 1 --warmup $WARM --duration $DUR"
if [[ " $PHASES " == *" live "* ]]; then
loadgen_pair base-raw "$SUBC --client raw --receive-max 65535" "$LIVE --device-prefix BENCH" >/dev/null
row base-raw "$(fmt0 "$(kv rate "$W/base-raw.pub")")" "$(fmt0 "$(kv rate "$W/base-raw.sub")")" - \
    "$(kv "cpu_pid$BROKER_PID" "$W/base-raw.sub")" - "$(kv cpu_self "$W/base-raw.pub")" -
if ((!QUICK)); then
    loadgen_pair base-nwmqtt "$SUBC --client nwmqtt --receive-max 65535" "$LIVE --device-prefix BENCH" >/dev/null
    row base-nwmqtt "$(fmt0 "$(kv rate "$W/base-nwmqtt.pub")")" "$(fmt0 "$(kv rate "$W/base-nwmqtt.sub")")" - \
        "$(kv "cpu_pid$BROKER_PID" "$W/base-nwmqtt.sub")" - "$(kv cpu_self "$W/base-nwmqtt.pub")" -
fi
if ((!QUICK)); then
    "$BUILD/bench/store_ingest" "$(store_url store-live)" --devices "$N" --run 1 --seconds "$STORE_S" \
        >"$W/store-live.out"
    row store-live - - "$(fmt0 "$(kv rate "$W/store-live.out")")" - - - -
    rm -f "$W"/store-live.db*
fi

collector_run collector "$LIVE --device-prefix BENCH"
cw=$($POLL window "$W/collector.tsv" "$WARM" "$DUR")
row collector "$(fmt0 "$(kv rate "$W/collector.pub")")" "$(fmt0 "$(cget in_rate)")" \
    "$(fmt0 "$(cget rate)")" "$(cget cpu_broker)" "$(cget cpu_collector)" \
    "$(kv cpu_self "$W/collector.pub")" "$(mib "$(cget hwm_kb)")"
account collector 1
LIVE_STORED=$(cget rate) LIVE_PENDING=$ACC_PENDING LIVE_DROPS=$ACC_DROPS LIVE_RSS=$(cget hwm_kb)
PAIR_B=("$(kv rate "$W/base-raw.sub")") PAIR_C=("$LIVE_STORED")
# More pairs, alternated: the broker's own rate moves by up to a third
# between identical runs (35-71 k/s seen), so the figure is the mean of
# PAIRS runs of each.
for ((p = 2; p <= PAIRS; p++)); do
    loadgen_pair "base-raw-$p" "$SUBC --client raw --receive-max 65535" "$LIVE --device-prefix BENCH" >/dev/null
    row "base-raw-$p" "$(fmt0 "$(kv rate "$W/base-raw-$p.pub")")" "$(fmt0 "$(kv rate "$W/base-raw-$p.sub")")" - \
        "$(kv "cpu_pid$BROKER_PID" "$W/base-raw-$p.sub")" - "$(kv cpu_self "$W/base-raw-$p.pub")" -
    PAIR_B+=("$(kv rate "$W/base-raw-$p.sub")")
    collector_run "collector-$p" "$LIVE --device-prefix BENCH"
    cw=$($POLL window "$W/collector-$p.tsv" "$WARM" "$DUR")
    row "collector-$p" "$(fmt0 "$(kv rate "$W/collector-$p.pub")")" "$(fmt0 "$(cget in_rate)")" \
        "$(fmt0 "$(cget rate)")" "$(cget cpu_broker)" "$(cget cpu_collector)" \
        "$(kv cpu_self "$W/collector-$p.pub")" "$(mib "$(cget hwm_kb)")"
    account "collector-$p" 1
    PAIR_C+=("$(cget rate)") LIVE_PENDING=$((LIVE_PENDING + ACC_PENDING)) LIVE_DROPS=$((LIVE_DROPS + ACC_DROPS))
    LIVE_RSS=$(awk -v a="$LIVE_RSS" -v b="$(cget hwm_kb)" 'BEGIN { print (b + 0 > a + 0) ? b : a }')
done
fi

# ---- CPU at a fixed load: 10 000 windows/s ---------------------------------
if [[ " $PHASES " == *" cpu "* ]]; then
loadgen_pair base-10k "$SUBC --client raw --receive-max 65535" \
    "$LIVE --device-prefix BENCH --rate $CPU_RATE" >/dev/null
CPU_SUB=$(kv cpu_self "$W/base-10k.sub") CPU_BROKER_SUB=$(kv "cpu_pid$BROKER_PID" "$W/base-10k.sub")
row base-10k "$(fmt0 "$(kv rate "$W/base-10k.pub")")" "$(fmt0 "$(kv rate "$W/base-10k.sub")")" - \
    "$CPU_BROKER_SUB" "$CPU_SUB" "$(kv cpu_self "$W/base-10k.pub")" -
collector_run collector-10k "$LIVE --device-prefix BENCH --rate $CPU_RATE"
cw=$($POLL window "$W/collector-10k.tsv" "$WARM" "$DUR")
CPU_COLL=$(cget cpu_collector) CPU_BROKER_COLL=$(cget cpu_broker) CPU_STORED=$(cget rate)
row collector-10k "$(fmt0 "$(kv rate "$W/collector-10k.pub")")" "$(fmt0 "$(cget in_rate)")" \
    "$(fmt0 "$CPU_STORED")" "$CPU_BROKER_COLL" "$CPU_COLL" "$(kv cpu_self "$W/collector-10k.pub")" \
    "$(mib "$(cget hwm_kb)")"
account collector-10k 1
CPU_PENDING=$ACC_PENDING
fi

# ---- catching up: 256 windows per message ----------------------------------
if [[ " $PHASES " == *" catchup "* ]]; then
"$BUILD/bench/store_ingest" "$(store_url store-catchup)" --devices "$NC" --run "$BATCH" \
    --seconds "$STORE_S" >"$W/store-catchup.out"
STORE_LIMIT=$(kv rate "$W/store-catchup.out")
row store-catchup - - "$(fmt0 "$STORE_LIMIT")" - - - -
rm -f "$W"/store-catchup.db*
CU="--clients $NC --qos 1 --window 16 --payload windows --batch $BATCH --warmup $WARM --duration $DUR --device-prefix CATCH"
if ((!QUICK)); then
    # Payloads of the same size, pre-built: encoding 256 windows per message
    # would make the load generator, not the broker, the limit.
    CU_SIZE=$("$BUILD/bench/loadgen" pub --port 1 --payload windows --batch "$BATCH" --print-size)
    loadgen_pair base-catchup "$SUBC --client raw --receive-max 65535" \
        "${CU/--payload windows --batch $BATCH/--size $CU_SIZE}" >/dev/null
    BASE_CU_WPS=$(times_batch "$(kv rate "$W/base-catchup.sub")")
    row base-catchup "$(fmt0 "$(times_batch "$(kv rate "$W/base-catchup.pub")")")" \
        "$(fmt0 "$BASE_CU_WPS")" - "$(kv "cpu_pid$BROKER_PID" "$W/base-catchup.sub")" - \
        "$(kv cpu_self "$W/base-catchup.pub")" -
fi
CU_RATE=$(calc "1.25 * $STORE_LIMIT / $BATCH")
CU_COUNT=$(calc "int(1.25 * $STORE_LIMIT * $CU_SECS / $BATCH) + 1")
collector_run collector-catchup "$CU --rate $CU_RATE --count $CU_COUNT"
cw=$($POLL window "$W/collector-catchup.tsv" "$WARM" "$DUR")
row collector-catchup "$(fmt0 "$(times_batch "$(kv rate "$W/collector-catchup.pub")")")" \
    "$(fmt0 "$(cget in_rate)")" "$(fmt0 "$(cget rate)")" "$(cget cpu_broker)" "$(cget cpu_collector)" \
    "$(kv cpu_self "$W/collector-catchup.pub")" "$(mib "$(cget hwm_kb)")"
account collector-catchup "$BATCH"
CU_STORED=$(cget rate) CU_PENDING=$ACC_PENDING CU_DROPS=$ACC_DROPS CU_RSS=$(cget hwm_kb)
NS_STORED="" NS_RSS=""
if ((!QUICK)); then
    collector_run collector-catchup-nospool "$CU --rate $CU_RATE --count $CU_COUNT" -- --set collector.spool=
    cw=$($POLL window "$W/collector-catchup-nospool.tsv" "$WARM" "$DUR")
    row collector-catchup-nospool "$(fmt0 "$(times_batch "$(kv rate "$W/collector-catchup-nospool.pub")")")" \
        "$(fmt0 "$(cget in_rate)")" "$(fmt0 "$(cget rate)")" "$(cget cpu_broker)" "$(cget cpu_collector)" \
        "$(kv cpu_self "$W/collector-catchup-nospool.pub")" "$(mib "$(cget hwm_kb)")"
    account collector-catchup-nospool "$BATCH"
    NS_STORED=$(cget rate) NS_RSS=$(cget hwm_kb)
fi
echo "# (sent/s and recv/s of the catch-up rows are windows/s: messages x $BATCH)"
fi

echo
echo "## collector vs baselines measured in this run (targets: DESIGN §9)"
BASE_RAW=$(kv rate "$W/base-raw.sub") PAIR_RATIOS=""
if ((${#PAIR_C[@]} > 1)); then # means over the pairs
    BASE_RAW=$(printf '%s\n' "${PAIR_B[@]}" | awk '{ s += $1 } END { print s / NR }')
    LIVE_STORED=$(printf '%s\n' "${PAIR_C[@]}" | awk '{ s += $1 } END { print s / NR }')
    for ((p = 0; p < ${#PAIR_C[@]}; p++)); do
        PAIR_RATIOS+="${PAIR_RATIOS:+,}$(ratio "${PAIR_C[$p]}" "${PAIR_B[$p]}")"
    done
fi
BASE_NW=$(kv rate "$W/base-nwmqtt.sub")
STORE_LIVE=$(kv rate "$W/store-live.out")
printf '%-52s %10s %10s %7s %7s\n' figure measured baseline ratio target
printf '%-52s %10s %10s %7s %7s\n' "live: stored/s vs bare subscriber (raw), QoS 1 [1]" "$(fmt0 "$LIVE_STORED")" "$(fmt0 "$BASE_RAW")" "$(ratio "$LIVE_STORED" "$BASE_RAW")" ">=0.9"
printf '%-52s %10s %10s %7s %7s\n' "live: stored/s vs bare subscriber (lib/mqtt.c)" "$(fmt0 "$LIVE_STORED")" "$(fmt0 "$BASE_NW")" "$(ratio "$LIVE_STORED" "$BASE_NW")" "(info)"
printf '%-52s %10s %10s %7s %7s\n' "live: stored/s vs the store alone, same order" "$(fmt0 "$LIVE_STORED")" "$(fmt0 "$STORE_LIVE")" "$(ratio "$LIVE_STORED" "$STORE_LIVE")" "(info)"
printf '%-52s %10s %10s %7s %7s\n' "live: windows hwm-dropped (never acked; re-sent)" "$LIVE_DROPS" "0" "-" "0"
printf '%-52s %10s %10s %7s %7s\n' "live: windows pending at stop (spool/queues)" "$LIVE_PENDING" "0" "-" "0"
if [[ -n "$PAIR_RATIOS" ]]; then
    echo "  [1] mean stored/s of the ${#PAIR_C[@]} collector runs over the mean of the ${#PAIR_B[@]} base-raw runs, alternated"
    printf '%-52s %10s\n' "  each pair's own ratio (collector-p / base-raw-p)" "$PAIR_RATIOS"
fi
printf '%-52s %10s %10s %7s %7s\n' "catch-up: stored/s vs the store's own limit" "$(fmt0 "$CU_STORED")" "$(fmt0 "$STORE_LIMIT")" "$(ratio "$CU_STORED" "$STORE_LIMIT")" ">=0.8"
if [[ -n "$NS_STORED" ]]; then
    printf '%-52s %10s %10s %7s %7s\n' "what-if no spool: catch-up stored/s vs store limit" "$(fmt0 "$NS_STORED")" "$(fmt0 "$STORE_LIMIT")" "$(ratio "$NS_STORED" "$STORE_LIMIT")" "(info)"
    printf '%-52s %10s %10s %7s %7s\n' "what-if no spool: collector peak RSS MiB" "$(mib "$NS_RSS")" "" "" ""
fi
printf '%-52s %10s %10s %7s %7s\n' "catch-up: broker's windows/s to a bare sub (info)" "$(fmt0 "$BASE_CU_WPS")" "" "" ""
printf '%-52s %10s %10s %7s %7s\n' "catch-up: windows hwm-dropped (never acked; re-sent)" "$CU_DROPS" "0" "-" "0"
printf '%-52s %10s %10s %7s %7s\n' "catch-up: windows pending at stop (spool/queues)" "$CU_PENDING" "0" "-" "0"
printf '%-52s %10s %10s %7s %7s\n' "collector peak RSS MiB live / catch-up" "$(mib "$LIVE_RSS")" "$(mib "$CU_RSS")" "" "<=64"
if [[ -n "$CPU_COLL" ]]; then
    printf '%-52s %10s %10s %7s %7s\n' "CPU % of a core at 10 000 windows/s: collector vs bare sub" "$CPU_COLL" "$CPU_SUB" "$(ratio "$CPU_COLL" "$CPU_SUB")" "(info)"
    printf '%-52s %10s %10s %7s %7s\n' "  the same: collector's CPU us per window stored" "$(awk -v c="$CPU_COLL" -v r="$CPU_STORED" 'BEGIN { if (r > 0) printf "%.1f", c * 10000 / r; else print "n/a" }')" "" "" ""
    printf '%-52s %10s %10s %7s %7s\n' "  broker CPU % with collector vs with bare sub" "$CPU_BROKER_COLL" "$CPU_BROKER_SUB" "$(ratio "$CPU_BROKER_COLL" "$CPU_BROKER_SUB")" "(info)"
    printf '%-52s %10s %10s %7s %7s\n' "  windows pending at stop" "$CPU_PENDING" "0" "-" "0"
fi
echo
bench_machine end
summary "store=$STORE_KIND" "live_stored=$(fmt0 "$LIVE_STORED")" "base_raw=$(fmt0 "$BASE_RAW")" \
    "ratio_live=$(ratio "$LIVE_STORED" "$BASE_RAW")" "base_nwmqtt=$(fmt0 "$BASE_NW")" \
    "store_live=$(fmt0 "$STORE_LIVE")" "pending_live=$LIVE_PENDING" "hwm_drops_live=$LIVE_DROPS" \
    "catchup_stored=$(fmt0 "$CU_STORED")" "store_limit=$(fmt0 "$STORE_LIMIT")" \
    "ratio_catchup=$(ratio "$CU_STORED" "$STORE_LIMIT")" "pending_catchup=$CU_PENDING" \
    "hwm_drops_catchup=$CU_DROPS" "live_pair_ratios=${PAIR_RATIOS:-n/a}" \
    "what_if_nospool_catchup_stored=$(fmt0 "$NS_STORED")" \
    "cpu_collector_10k=$CPU_COLL" "cpu_bare_sub_10k=$CPU_SUB" \
    "load=$(cut -d' ' -f1 /proc/loadavg)"

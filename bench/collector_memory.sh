#!/usr/bin/env bash
# collector_memory.sh - figure 5: the collector's memory with 10 000
# connected devices (DESIGN §9: RSS <= 64 MiB there).
#
#   bench/collector_memory.sh [--quick] [--keep] [--build DIR]
#
# A private mosquitto (bench broker, plus max_connections -1), the collector
# on a fresh SQLite store with the inventory of the whole fleet, and
# needlewatch-sim --devices 10000 at a low rate (NW_BENCH_RATE windows per
# second per device, default 0.2: 2 000 windows/s for the fleet, plus a
# status per device at connect and every 30 s), split over
# NW_BENCH_SHARDS processes (default 2: a sim needs 3 descriptors per
# device, and the hard limit here is 20 000). The script raises the soft
# `ulimit -n` to the hard limit for everything it starts.
#
# Measured, in this order:
#   idle        the collector connected to the broker, no device yet: the
#               baseline in the same run (libraries, thread stacks, tables
#               allocated at start)
#   connecting  until the broker holds NW_BENCH_DEVICES (10 000) client
#               connections of the sim (at most 60 s)
#   steady      HOLD seconds more (default 30, --quick 10): every second
#               VmRSS, RssAnon, RssFile, the collector's devices and stored
#               points; at the end VmHWM (the peak over the whole run)
# The figure is VmHWM and the last VmRSS against 64 MiB, with the idle
# RSS of the same run beside it. Every loop is bounded in count and time;
# servers are on free loopback ports and stopped by PID.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_init collector_memory "$@"
bench_build needlewatch-collector needlewatch-sim

DEVICES=${NW_BENCH_DEVICES:-10000}
RATE=${NW_BENCH_RATE:-0.2}
SHARDS=${NW_BENCH_SHARDS:-2}
HOLD=30
((QUICK)) && HOLD=10
COLLECTOR=$BUILD/collector/needlewatch-collector
SIM=$BUILD/agent/needlewatch-sim
W=$NW_WORK

# Descriptors: the broker needs one per device, each sim shard three per
# device of its shard. Only the soft limit can be raised without privileges.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if ((DEVICES + 100 > NOFILE || 3 * DEVICES / SHARDS + 100 > NOFILE)); then
    bench_log "ulimit -n is $NOFILE: too low for $DEVICES devices in $SHARDS shards (raise the hard limit or NW_BENCH_SHARDS)"
    exit 1
fi

bench_machine start
bench_broker
printf '%s\n' "max_connections -1" >>"$NW_MQTT_CONF"
nw_restart mosquitto || exit 1
BROKER_PID=$NW_MQTT_PID
echo "# broker pid $BROKER_PID (restarted with max_connections -1), ulimit -n $NOFILE"
echo "# fleet: $DEVICES devices, $RATE windows/s each, $SHARDS sim processes; hold ${HOLD}s"

CLINICS=$(((DEVICES + 29) / 30))
# The inventory of the whole fleet, from a dry run of one shard (a shard
# needs a third of the descriptors; every shard writes the fleet's list).
"$SIM" --devices "$DEVICES" --clinics "$CLINICS" --inventory-out "$W/inventory.csv" --duration 1 \
    --broker mqtt://127.0.0.1:1 --drain 0 --progress 0 --shard "0/$SHARDS" >/dev/null 2>&1 || true
[[ -s "$W/inventory.csv" ]] || { bench_log "no inventory from the sim"; exit 1; }

cpid=""
sims=()
bench_cleanup()
{
    local p
    for p in "${sims[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    [[ -n "$cpid" ]] && kill -9 "$cpid" 2>/dev/null
    return 0
}

http_port=$(nw_free_port 1)
mkdir -p "$W/cwd"
(cd "$W/cwd" && exec "$COLLECTOR" -b "$NW_MQTT_URL" -s "sqlite:$W/store.db" -i "$W/inventory.csv" \
    --http "127.0.0.1:$http_port" --set collector.dead_letter="$W/dead.jsonl" \
    >"$W/collector.log" 2>&1) &
cpid=$!

metric() { curl -sf "http://127.0.0.1:$http_port/metrics" 2>/dev/null | awk -v k="$1" '$1 == k { printf "%d\n", $2 }'; }
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
# connected CLIENT_PORT: established TCP connections to the broker's port
# (each device is one; the collector is one more).
connected() { ss -Htn state established "( sport = :$NW_MQTT_PORT )" 2>/dev/null | wc -l; }
mib() { awk -v k="${1:-0}" 'BEGIN { printf "%.1f", k / 1024 }'; }

for i in $(seq 100); do
    [[ "$(metric nw_broker_up)" == 1 ]] && break
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.1
done
[[ "$(metric nw_broker_up)" == 1 ]] || { cat "$W/collector.log" >&2; bench_log "collector did not come up"; exit 1; }
sleep 2
IDLE_RSS=$(status_kib "$cpid" VmRSS)
IDLE_THREADS=$(status_kib "$cpid" Threads)
echo "# idle: VmRSS $(mib "$IDLE_RSS") MiB, $IDLE_THREADS threads"

RUN_S=$((60 + HOLD + 10))
for ((i = 0; i < SHARDS; i++)); do
    timeout $((RUN_S + 60)) "$SIM" --broker "$NW_MQTT_URL" --devices "$DEVICES" \
        --clinics "$CLINICS" --rate "$RATE" --duration "$RUN_S" --drain 5 \
        --progress 0 --shard "$i/$SHARDS" >"$W/sim$i.log" 2>&1 &
    sims+=("$!")
done

printf '%-10s %8s %8s %10s %10s %10s %10s %10s\n' phase t_s conns devices stored VmRSS_MiB Anon_MiB File_MiB
sample()
{
    local phase=$1 t=$2
    printf '%-10s %8s %8s %10s %10s %10s %10s %10s\n' "$phase" "$t" "$(connected)" \
        "$(metric nw_devices)" "$(metric nw_points_stored_total)" \
        "$(mib "$(status_kib "$cpid" VmRSS)")" "$(mib "$(status_kib "$cpid" RssAnon)")" \
        "$(mib "$(status_kib "$cpid" RssFile)")"
}

t0=$SECONDS
CONNECTED_AT=""
for i in $(seq 120); do # at most 60 s in 0.5 s steps
    c=$(connected)
    if ((c >= DEVICES)); then
        CONNECTED_AT=$((SECONDS - t0))
        break
    fi
    ((i % 4 == 0)) && sample connecting $((SECONDS - t0))
    kill -0 "$cpid" 2>/dev/null || { bench_log "collector died"; tail "$W/collector.log" >&2; exit 1; }
    sleep 0.5
done
[[ -n "$CONNECTED_AT" ]] || bench_log "only $(connected) connections after 60 s"

MAX_RSS=0
for i in $(seq "$HOLD"); do
    sleep 1
    r=$(status_kib "$cpid" VmRSS)
    ((r > MAX_RSS)) && MAX_RSS=$r
    ((i % 5 == 0 || i == HOLD)) && sample steady $((SECONDS - t0))
done
CONNS=$(connected)
DEVS=$(metric nw_devices)
STORED1=$(metric nw_points_stored_total)
RSS=$(status_kib "$cpid" VmRSS)
HWM=$(status_kib "$cpid" VmHWM)
ANON=$(status_kib "$cpid" RssAnon)
FILE=$(status_kib "$cpid" RssFile)
THREADS=$(status_kib "$cpid" Threads)
HEAP=$(awk '/\[heap\]/ { h = 1; next } h && /^Rss:/ { print $2; exit }' "/proc/$cpid/smaps" 2>/dev/null || echo 0)
# The largest anonymous mappings (heap, thread arenas, stacks): where it goes.
echo "# largest mappings by RSS (KiB):"
awk '/^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "" ? "[anon]" : $6) } /^Rss:/ { rss[name] += $2 }
     END { for (n in rss) if (rss[n] >= 512) printf "#   %8d  %s\n", rss[n], n }' "/proc/$cpid/smaps" 2>/dev/null |
    sort -k2 -nr | head -8

echo
echo "## collector memory with $DEVICES connected devices (target: DESIGN §9)"
printf '%-52s %10s %10s %7s %7s\n' figure measured baseline ratio target
printf '%-52s %10s %10s %7s %7s\n' "broker connections (devices + collector)" "$CONNS" "$((DEVICES + 1))" "" ""
printf '%-52s %10s %10s %7s %7s\n' "devices known to the collector" "${DEVS:-0}" "$DEVICES" "" ""
printf '%-52s %10s %10s %7s %7s\n' "collector VmRSS MiB at the end vs idle, same run" "$(mib "$RSS")" "$(mib "$IDLE_RSS")" "$(ratio "$RSS" "$IDLE_RSS")" "<=64"
printf '%-52s %10s %10s %7s %7s\n' "collector VmHWM MiB (peak of the run)" "$(mib "$HWM")" "65536 KiB" "$(ratio "$HWM" 65536)" "<=1.00"
printf '%-52s %10s %10s %7s %7s\n' "  of which RssAnon / RssFile MiB (at the end)" "$(mib "$ANON")" "$(mib "$FILE")" "" ""
printf '%-52s %10s %10s %7s %7s\n' "  heap MiB, threads" "$(mib "$HEAP")" "$THREADS" "" ""
printf '%-52s %10s %10s %7s %7s\n' "seconds until all devices were connected" "${CONNECTED_AT:-n/a}" "" "" ""
echo

for p in "${sims[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${sims[@]}"; do wait "$p" 2>/dev/null || true; done
sims=()
kill -TERM "$cpid" 2>/dev/null || true
for i in $(seq 150); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
bench_machine end
summary "devices=$DEVICES" "connections=$CONNS" "collector_devices=${DEVS:-0}" "rate=$RATE" \
    "rss_kib=$RSS" "hwm_kib=$HWM" "idle_rss_kib=$IDLE_RSS" "anon_kib=$ANON" "file_kib=$FILE" \
    "stored=$STORED1" "load=$(cut -d' ' -f1 /proc/loadavg)"

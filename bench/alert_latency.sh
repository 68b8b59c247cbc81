#!/usr/bin/env bash
# alert_latency.sh - figure 5: alert latency, out-of-spec window published
# -> needle_rate_out_of_spec FIRING received on needlewatch/v1/<dev>/alert,
# p50/p99/max at 10 000 windows/s of background load (DESIGN §9: p99 <= 5 ms),
# next to the broker's own two-hop latency measured in the same run.
#
#   bench/alert_latency.sh [--quick] [--keep] [--build DIR] [--fake]
#
# Servers (loopback, free ports): mosquitto (bench settings, no persistence),
# needlewatch-collector (--store sqlite: in the work dir, inventory of every
# device, alert state in the work dir) - or, with --fake, bench/alert_latency
# fake-collector, which acks every device and answers the 3rd consecutive
# out-of-spec window of a probe device with an Alert (to validate the
# measuring code while the collector does not publish alerts yet).
# Background: needlewatch-sim, 1000 devices x 10 windows/s (1 window per
# message, QoS 1, acked by the collector), started first, measured over the
# probe run from its --status file.
# Probe (bench/alert_latency.c probe): 8 probe devices in the inventory, one
# window every 50 ms each, cycles of 3 in-spec (120 Hz) and 3 out-of-spec
# (160 Hz) windows, 1 s apart in event time from now - 1 h; the latency of
# each FIRING is its arrival minus the publish time of the latest
# out-of-spec window of its run published before it (the run: the one
# holding the alert's time_ms - 1). trigN counts FIRINGs whose latest
# window was the Nth of the run: the collector meets the default 2 s hold
# at the end of the 2nd window (end - start of the stretch >= 2 s), the
# fake at the 3rd. At the same
# time 200 msg/s of 120-byte stamps go publisher -> broker -> relay
# (alert_latency relay, lib/mqtt.c like the collector) -> broker ->
# subscriber: the broker's two-hop latency, the baseline.
# Default: 60 cycles per probe device (480 alerts, ~20 s of probing);
# --quick: 20 cycles (160 alerts, ~7 s). Bounded: every process has a
# timeout; the probe gives up after 120 s.
# NW_BENCH_NODELAY=1: TCP_NODELAY on the probe's, relay's and fake's own
# connections (diagnostic: Nagle's share; the broker keeps its default).
set -euo pipefail
FAKE=0
args=()
for a in "$@"; do
    if [[ "$a" == --fake ]]; then FAKE=1; else args+=("$a"); fi
done
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_init alert_latency "${args[@]+"${args[@]}"}"
bench_build alert_latency needlewatch-sim
((FAKE)) || bench_build needlewatch-collector

W=$NW_WORK
AL=$BUILD/bench/alert_latency
SIM=$BUILD/agent/needlewatch-sim
COLLECTOR=$BUILD/collector/needlewatch-collector
ND=1000 RATE=10 PROBES=8 PERIOD=50 HOP_RATE=200
if ((QUICK)); then CYCLES=20 SIM_S=25; else CYCLES=60 SIM_S=45; fi
LOAD=$((ND * RATE))
ND_FLAG=""
[[ "${NW_BENCH_NODELAY:-0}" == 1 ]] && ND_FLAG=--nodelay

bench_machine start
bench_broker

pids=()
bench_cleanup()
{
    local p
    for p in "${pids[@]+"${pids[@]}"}"; do kill -9 "$p" 2>/dev/null || true; done
    return 0
}

# The inventory: the sim's fleet (a dry run of the same flags writes it)
# and the probe devices.
"$SIM" --devices "$ND" --clinics 10 --seed 5 --inventory-out "$W/inventory.csv" --duration 1 \
    --drain-timeout 0 --broker mqtt://127.0.0.1:1 --quiet >"$W/sim-dry.log" 2>&1 || true
[[ -s "$W/inventory.csv" ]] || { cat "$W/sim-dry.log" >&2; bench_log "no inventory"; exit 1; }
for ((i = 1; i <= PROBES; i++)); do printf 'PROBE-%04d,Bench Probes,DG-3\n' "$i"; done >>"$W/inventory.csv"

# wait_for FILE PATTERN SECONDS PID: until FILE has PATTERN, PID alive.
wait_for()
{
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$4" 2>/dev/null || break
        sleep 0.1
    done
    cat "$1" >&2 || true
    bench_log "$1: no \"$2\" within $3 s"
    exit 1
}

if ((FAKE)); then
    WHO="fake-collector (bench/alert_latency.c)"
    "$AL" fake-collector --port "$NW_MQTT_PORT" --max-s 280 $ND_FLAG >"$W/fake.out" 2>"$W/fake.err" &
    cpid=$!
    pids+=("$cpid")
    wait_for "$W/fake.out" READY 10 "$cpid"
else
    WHO="needlewatch-collector (sqlite, 2 workers, default rules)"
    http_port=$(nw_free_port 1)
    mkdir -p "$W/collector.cwd"
    (cd "$W/collector.cwd" && exec "$COLLECTOR" -b "$NW_MQTT_URL" \
        -s "sqlite:$W/collector.db" -i "$W/inventory.csv" --http "127.0.0.1:$http_port" \
        --set collector.dead_letter="$W/dead.jsonl" --set alerts.state="$W/alerts.db" \
        >"$W/collector.log" 2>&1) &
    cpid=$!
    pids+=("$cpid")
    up=0
    for i in $(seq 100); do
        if curl -sf "http://127.0.0.1:$http_port/metrics" 2>/dev/null | grep -q '^nw_broker_up 1'; then
            up=1
            break
        fi
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    ((up)) || { cat "$W/collector.log" >&2; bench_log "collector did not come up"; exit 1; }
    sleep 0.3
fi
echo "# collector: $WHO"

"$AL" relay --port "$NW_MQTT_PORT" --max-s 280 $ND_FLAG >"$W/relay.out" 2>"$W/relay.err" &
rpid=$!
pids+=("$rpid")
wait_for "$W/relay.out" READY 10 "$rpid"

# Background: the sim, until after the probe (SIGTERM then).
"$SIM" --broker "$NW_MQTT_URL" --devices "$ND" --clinics 10 --seed 5 --rate "$RATE" \
    --duration "$SIM_S" --drain-timeout 2 --progress 1s --status "$W/sim.status" \
    >"$W/sim.log" 2>&1 &
spid=$!
pids+=("$spid")
wait_for "$W/sim.status" "^connected=$ND\$" 30 "$spid"
sleep 2 # warm-up at full rate
sval() { sed -n "s/^$1=//p" "$W/sim.status" 2>/dev/null | head -1; }
b0=$(sval windows_sent) t0=$(date +%s.%N) busy0=$(pid_cpu_s "$BROKER_PID") cb0=$(pid_cpu_s "$cpid")
sb0=$(pid_cpu_s "$spid") rb0=$(pid_cpu_s "$rpid")
echo "# background: needlewatch-sim $ND devices x $RATE windows/s = $LOAD windows/s offered" \
    "(1 window per message, QoS 1); probe: $PROBES devices, 1 window per ${PERIOD} ms each," \
    "$CYCLES cycles of 3 in + 3 out; two-hop stamps $HOP_RATE msg/s; TCP_NODELAY on our clients: ${ND_FLAG:-no}"
timeout 150 "$AL" probe --port "$NW_MQTT_PORT" --devices "$PROBES" --cycles "$CYCLES" \
    --period-ms "$PERIOD" --hop-rate "$HOP_RATE" --max-s 120 $ND_FLAG >"$W/probe.out" 2>"$W/probe.err" ||
    bench_log "probe: exit $? (no alert received?)"
b1=$(sval windows_sent) t1=$(date +%s.%N) busy1=$(pid_cpu_s "$BROKER_PID") cb1=$(pid_cpu_s "$cpid")
sb1=$(pid_cpu_s "$spid") rb1=$(pid_cpu_s "$rpid")
sim_alive=1
kill -0 "$spid" 2>/dev/null || sim_alive=0
kill -TERM "$spid" "$rpid" 2>/dev/null || true
wait "$spid" 2>/dev/null || true
wait "$rpid" 2>/dev/null || true
kill -TERM "$cpid" 2>/dev/null || true
wait "$cpid" 2>/dev/null || true
cat "$W/probe.err" >&2 || true
grep -h '^RESULT' "$W/probe.out" | sed 's/^/# probe: /'

P=$W/probe.out
el=$(calc "$t1 - $t0")
bg=$(calc "(${b1:-0} - ${b0:-0}) / $el")
cpu_b=$(calc "100 * ($busy1 - $busy0) / $el")
cpu_c=$(calc "100 * ($cb1 - $cb0) / $el")
cpu_s=$(calc "100 * ($sb1 - $sb0) / $el")
cpu_r=$(calc "100 * ($rb1 - $rb0) / $el")
((sim_alive)) || bench_log "WARNING: the background sim ended before the probe did (raise SIM_S)"

echo
echo "## alert latency vs the broker's two-hop latency (same run; DESIGN §9 target p99 <= 5 ms)"
printf '%-52s %10s %10s %10s %10s\n' figure p50_us p90_us p99_us max_us
printf '%-52s %10s %10s %10s %10s\n' "alert: out-of-spec window -> FIRING on MQTT" \
    "$(kv p50_us "$P")" "$(kv p90_us "$P")" "$(kv p99_us "$P")" "$(kv max_us "$P")"
printf '%-52s %10s %10s %10s %10s\n' "broker two hops: pub -> relay -> sub" \
    "$(kv hop_p50_us "$P")" "$(kv hop_p90_us "$P")" "$(kv hop_p99_us "$P")" "$(kv hop_max_us "$P")"
printf '%-52s %10s %10s %10s\n' "ratio alert / two hops" "$(ratio "$(kv p50_us "$P")" "$(kv hop_p50_us "$P")")" \
    "$(ratio "$(kv p90_us "$P")" "$(kv hop_p90_us "$P")")" "$(ratio "$(kv p99_us "$P")" "$(kv hop_p99_us "$P")")"
echo "# alerts: $(kv alerts "$P") FIRING of $(kv expected "$P") expected (latest window of the run: 1st/2nd/3rd/4th+" \
    "$(kv trig1 "$P")/$(kv trig2 "$P")/$(kv trig3 "$P")/$(kv trig4 "$P")), $(kv resolved "$P") RESOLVED," \
    "$(kv unexpected "$P") unexpected FIRING, $(kv other_alerts "$P") other alerts; two-hop samples $(kv hop_n "$P")"
echo "# background measured over the probe: $(fmt0 "$bg") windows/s sent by the sim (offered $LOAD);" \
    "CPU % of one core: broker $(fmt0 "$cpu_b"), collector $(fmt0 "$cpu_c"), sim $(fmt0 "$cpu_s")," \
    "relay $(fmt0 "$cpu_r"); load average at the end $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
if [[ "$(kv alerts "$P")" == 0 || -z "$(kv alerts "$P")" ]]; then
    echo "# NO ALERT received: does this collector publish alerts on needlewatch/v1/<device>/alert?" \
        "(try --fake to check the measuring code)"
fi
echo
bench_machine end
summary "who=$( ((FAKE)) && echo fake || echo collector)" "alert_p50_us=$(kv p50_us "$P")" \
    "alert_p99_us=$(kv p99_us "$P")" "alert_max_us=$(kv max_us "$P")" "alerts=$(kv alerts "$P")" \
    "expected=$(kv expected "$P")" "hop2_p50_us=$(kv hop_p50_us "$P")" \
    "hop2_p99_us=$(kv hop_p99_us "$P")" "ratio_p99=$(ratio "$(kv p99_us "$P")" "$(kv hop_p99_us "$P")")" \
    "background_wps=$(fmt0 "$bg")" "load=$(cut -d' ' -f1 /proc/loadavg)"

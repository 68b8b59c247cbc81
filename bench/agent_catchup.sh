#!/usr/bin/env bash
# agent_catchup.sh - figure 4: how fast needlewatch-agent empties its disk
# queue after an outage (DESIGN §9 target: >= 20 000 windows/s), next to
# what the broker itself carries for one publisher of the same messages.
#
#   bench/agent_catchup.sh [--quick] [--keep] [--build DIR]
#
#  1. A recording of 300 000 one-second windows (83 h of needle running
#     at 120 Hz, a sample every 500 ms; --quick: 50 000) is generated, dated
#     so that every window is valid now. (A 1 h outage is 3 600 windows,
#     drained in well under a second: too short to time; the rate is what
#     the target is about.)
#  2. Outage: the agent replays it with the broker down (its URL points at
#     a closed port), so every window is appended to its disk queue; the
#     fill rate is printed too. SIGTERM once the source is at its end.
#  3. The broker and the ack responder (tests/integration/ack_echo.c, which
#     acks like a collector, at most every 100 ms) start; the agent starts
#     again on the same queue with an empty replay file, so it exits 0 as
#     soon as the collector side has acknowledged everything. Windows/s =
#     queued windows / the agent's run time (start to exit, connect
#     included; /usr/bin/time gives its CPU and peak RSS), and, from the
#     agent's log, from "connected" to "stopping" (the last ack in); the
#     ack responder's count must equal the queued windows.
#  4. Baseline, same run: bench/loadgen with ONE publisher, the agent's
#     in-flight window (16), messages of the size of a 256-window batch (the
#     agent's mqtt.batch_max; pre-built payload, so the load generator does
#     not encode), to a bare subscriber: the broker's msg/s x 256.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_init agent_catchup "$@"
bench_build needlewatch-agent ack_echo loadgen

if ((QUICK)); then WINDOWS=50000 BWARM=1 BDUR=3; else WINDOWS=300000 BWARM=2 BDUR=6; fi
W=$NW_WORK
AGENT=$BUILD/agent/needlewatch-agent
ACK_ECHO=$BUILD/tests/integration/ack_echo
DEV=CATCHUP-1

bench_machine start
bgp=()
bench_cleanup()
{
    local p
    for p in "${bgp[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}

python3 - "$W/recording.csv" "$WINDOWS" <<'EOF'
import sys, time
out, n = sys.argv[1], int(sys.argv[2])
t0 = (int(time.time()) - n - 3600) * 1000  # ends an hour ago: all windows valid now
with open(out, "w") as f:
    f.write("time,rate_hz,depth_mm,pigment_ul\n")
    for i in range(2 * n + 1):
        f.write(f"{t0 + 500 * i},{120 + (i % 7) * 0.5},{0.38 + (i % 5) * 0.01:.2f},0.0072\n")
EOF
echo "# recording: $WINDOWS windows of 1 s, $(wc -l <"$W/recording.csv") samples, $(du -h "$W/recording.csv" | cut -f1)"

# ---- 2. the outage: fill the queue -----------------------------------------
dead_port=$(nw_free_port 1)
t0=$(date +%s.%N)
"$AGENT" -d "$DEV" -s "replay:$W/recording.csv" -b "mqtt://127.0.0.1:$dead_port" -q "$W/queue" \
    >"$W/fill.log" 2>&1 &
apid=$!
bgp+=("$apid")
for _ in $(seq 1200); do
    grep -q "end of input" "$W/fill.log" && break
    kill -0 "$apid" 2>/dev/null || break
    sleep 0.1
done
t1=$(date +%s.%N)
grep -q "end of input" "$W/fill.log" || { cat "$W/fill.log" >&2; bench_log "queue fill did not finish in 120 s"; exit 1; }
kill -TERM "$apid"
wait "$apid" || true
queued=$(sed -n 's/.*stopping: \([0-9]*\) windows.*, \([0-9]*\) records still queued.*/\2/p' "$W/fill.log" | tail -1)
FILL_RATE=$(calc "int($WINDOWS / ($t1 - $t0) + 0.5)")
echo "# outage: $queued records queued (broker down) at ~$FILL_RATE windows/s; queue on disk: $(du -sh "$W/queue" | cut -f1)"

# ---- 3. the broker returns -------------------------------------------------
bench_broker
"$ACK_ECHO" "$NW_MQTT_URL" "$W/acked.txt" >"$W/ack_echo.log" 2>&1 &
ack_pid=$!
bgp+=("$ack_pid")
sleep 0.5
: >"$W/empty.csv"
c0=$(pid_cpu_s "$BROKER_PID")
set +e
timeout 120 /usr/bin/time -f "%e %U %S %M" -o "$W/drain.time" \
    "$AGENT" -d "$DEV" -s "replay:$W/empty.csv" -b "$NW_MQTT_URL" -q "$W/queue" >"$W/drain.log" 2>&1
rc=$?
set -e
c1=$(pid_cpu_s "$BROKER_PID")
kill -TERM "$ack_pid" 2>/dev/null || true
wait "$ack_pid" 2>/dev/null || true
read -r secs ucpu scpu peak_rss <"$W/drain.time"
acpu=$(calc "$ucpu + $scpu")
acked=$(awk -v d="$DEV" '$1 == "W" && $2 == d { print $4 }' "$W/acked.txt" | sort -un | wc -l)
received=$(grep -c "^W $DEV " "$W/acked.txt" || true)
RATE=$(calc "int($queued / $secs + 0.5)")
# connected -> stopping in the agent's own log (ms timestamps)
CONN_S=$(python3 - "$W/drain.log" <<'EOF'
import re, sys
from datetime import datetime
t = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+Z) .*?(connected to|stopping:)", line)
    if m:
        t.setdefault(m.group(2), datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ"))
print("%.3f" % (t["stopping:"] - t["connected to"]).total_seconds() if len(t) == 2 else "0")
EOF
)
RATE_CONN=$(awk -v q="$queued" -v s="$CONN_S" 'BEGIN { if (s > 0) printf "%.0f\n", q / s; else print "n/a" }')
echo "# drain: agent exit $rc after ${secs}s; ack responder saw $acked distinct windows ($received with re-sends) of $queued queued;" \
    "agent CPU $(calc "int(100 * $acpu / $secs + 0.5)")%, VmHWM ${peak_rss} KiB; broker CPU $(calc "int(100 * ($c1 - $c0) / $secs + 0.5)")%"
grep -o 'stopping:.*' "$W/drain.log" | tail -1 | sed 's/^/# agent: /'

# ---- 4. baseline: one publisher, same message shape ------------------------
MSG_SIZE=$("$BUILD/bench/loadgen" pub --port 1 --payload windows --batch 256 --print-size)
loadgen_pair base-1pub "--qos 1 --warmup $BWARM --duration $BDUR --receive-max 65535 --linger 1" \
    "--clients 1 --qos 1 --window 16 --size $MSG_SIZE --warmup $BWARM --duration $BDUR --device-prefix LG" \
    >/dev/null
BASE_MSGS=$(kv rate "$W/base-1pub.sub")
BASE_WPS=$(calc "int(${BASE_MSGS:-0} * 256 + 0.5)")
echo "# baseline: one loadgen publisher, 16 in flight, $MSG_SIZE-byte messages (a 256-window batch):" \
    "$(fmt0 "$BASE_MSGS") msg/s = $BASE_WPS windows/s; broker CPU $(kv "cpu_pid$BROKER_PID" "$W/base-1pub.sub")%," \
    "publisher CPU $(kv cpu_self "$W/base-1pub.pub")%"

echo
echo "## agent catch-up (target DESIGN §9: >= 20000 windows/s)"
printf '%-48s %10s %10s %7s\n' figure measured reference ratio
printf '%-48s %10s %10s %7s\n' "drain windows/s vs target" "$RATE" 20000 "$(ratio "$RATE" 20000)"
printf '%-48s %10s %10s %7s\n' "drain windows/s vs broker, 1 publisher x 256" "$RATE" "$BASE_WPS" "$(ratio "$RATE" "$BASE_WPS")"
printf '%-48s %10s %10s %7s\n' "(info) windows/s from connect to last ack" "$RATE_CONN" 20000 "$(ratio "$RATE_CONN" 20000)"
printf '%-48s %10s %10s %7s\n' "windows acknowledged / queued" "$acked" "$queued" "$(ratio "$acked" "$queued")"
printf '%-48s %10s %10s %7s\n' "(info) queue fill windows/s, broker down" "$FILL_RATE" "" ""
echo
bench_machine end
summary "drain_wps=$RATE" "drain_wps_connected=$RATE_CONN" "broker_1pub_wps=$BASE_WPS" "ratio_target=$(ratio "$RATE" 20000)" \
    "acked=$acked" "queued=$queued" "exit=$rc" "fill_wps=$FILL_RATE" "load=$(cut -d' ' -f1 /proc/loadavg)"

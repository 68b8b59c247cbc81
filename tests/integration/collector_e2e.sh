#!/usr/bin/env bash
# integration.collector_e2e: agent -> real mosquitto -> needlewatch-collector
# -> SQLite, end to end, with the end-to-end acks.
#   1. a recorded session replayed by the agent lands in the store exactly
#      once, under the clinic of the inventory; the agent exits when all is
#      acknowledged;
#   2. the collector is killed with SIGKILL mid-run and restarted: every
#      window produced is in the store exactly once (DESIGN §4's promise);
#   3. hostile payloads (garbage, oversize, spoofed id, NaN) are refused and
#      counted by reason in /metrics, dead-lettered where they carry a seq,
#      and the collector keeps storing;
#   4. SIGTERM flushes, acks and exits 0 within 10 s.
# Usage: collector_e2e.sh COLLECTOR AGENT PROTO_DIR
set -euo pipefail
collector=${1:?usage: collector_e2e.sh COLLECTOR AGENT PROTO_DIR}
agent=${2:?}
proto_dir=${3:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers.sh
source "$here/servers.sh"

nw_require mosquitto mosquitto_pub sqlite3 python3 curl protoc
nw_make_workdir collector-e2e
nw_start_mosquitto "$NW_WORK" || exit 1
W=$NW_WORK
db="$W/store.db"
http_port=$(nw_free_port 1)

bg=()
nw_test_cleanup() { for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }

cat >"$W/inventory.csv" <<'CSV'
device,clinic,model
DG-E2E-1,"Clínica São Paulo, Unit 2",DG-3
DG-E2E-2,North Clinic,DG-3
CSV

start_collector() {
  "$collector" -b "$NW_MQTT_URL" -s "sqlite:$db" -i "$W/inventory.csv" \
    --http "127.0.0.1:$http_port" --set collector.dead_letter="$W/dead.jsonl" --set collector.state="$W/state.db" --set collector.spool="$W/spool" \
    --set store.flush=100ms >>"$W/collector.log" 2>&1 &
  cpid=$!; bg+=("$cpid")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null && return 0; sleep 0.1; done
  cat "$W/collector.log"; echo "FAIL: collector not healthy"; exit 1
}

q() { sqlite3 "$db" "$1"; }

# exactly_once DEVICE: every window seq 1..max stored once.
exactly_once() {
  local r
  r=$(q "SELECT count(*), count(DISTINCT seq), coalesce(max(seq),0), coalesce(min(seq),0)
         FROM needle_window WHERE device='$1'")
  IFS='|' read -r n distinct max min <<<"$r"
  if [[ "$n" != "$distinct" || "$n" != "$max" || "$min" != 1 ]]; then
    echo "FAIL: $1: $n rows, $distinct distinct seqs, seq $min..$max"; exit 1
  fi
  echo "ok: $1: windows 1..$max stored exactly once"
}

echo "== 1. replayed session, end to end"
start_collector
python3 - "$W/session.csv" <<'PY'
import sys, time
t0 = (int(time.time()) - 900) * 1000
with open(sys.argv[1], "w") as f:
    f.write(f"{t0},event,session_start,session_id=s-e2e,operator=OP-1\n")
    f.write(f"{t0},event,cartridge_inserted,cartridge_id=CRT-E2E,needle_config=3RL,lot=L1\n")
    for i in range(601):
        f.write(f"{t0 + 100 * i},{150 if 200 <= i < 300 else 120},0.38,0.0144\n")
    f.write(f"{t0 + 60000},event,session_end,session_id=s-e2e,reason=normal\n")
PY
timeout 60 "$agent" -d DG-E2E-1 -s "replay:$W/session.csv" -b "$NW_MQTT_URL" -q "$W/q1" \
  >"$W/agent1.log" 2>&1 || { cat "$W/agent1.log" "$W/collector.log"; echo "FAIL: replay not acked"; exit 1; }
exactly_once DG-E2E-1
[[ $(q "SELECT count(*) FROM needle_window WHERE device='DG-E2E-1'") == 60 ]] || { echo "FAIL: expected 60 windows"; exit 1; }
[[ $(q "SELECT DISTINCT clinic FROM needle_window WHERE device='DG-E2E-1'") == "Clínica São Paulo, Unit 2" ]] ||
  { echo "FAIL: clinic not from the inventory"; exit 1; }
[[ $(q "SELECT count(*) FROM needle_window WHERE device='DG-E2E-1' AND in_spec=0") == 10 ]] ||
  { echo "FAIL: expected the 10 windows at 150 Hz out of spec"; exit 1; }
[[ $(q "SELECT count(*) FROM device_event WHERE device='DG-E2E-1'") == 3 ]] || { echo "FAIL: events"; exit 1; }
echo "ok: clinic from the inventory, 10 windows out of spec, 3 events"

echo "== 1b. SIGHUP reloads the inventory; a broken one is refused"
printf 'device,clinic\nbroken\n' >"$W/inventory.csv"
kill -HUP "$cpid"; sleep 0.5
grep -q "SIGHUP: .*inventory.csv:1: .*the current inventory stays" "$W/collector.log" ||
  { tail -3 "$W/collector.log"; echo "FAIL: broken inventory not refused"; exit 1; }
printf 'device,clinic,model\nDG-E2E-1,Moved Clinic,DG-3\nDG-E2E-2,North Clinic,DG-3\n' >"$W/inventory.csv"
kill -HUP "$cpid"; sleep 0.5
grep -q "SIGHUP: inventory .* reloaded: 2 devices" "$W/collector.log" || { echo "FAIL: no reload"; exit 1; }
python3 - "$W/session2.csv" <<'PY'
import sys, time
t0 = (int(time.time()) - 600) * 1000
with open(sys.argv[1], "w") as f:
    for i in range(101):
        f.write(f"{t0 + 100 * i},120,0.38,0.0144\n")
PY
timeout 60 "$agent" -d DG-E2E-1 -s "replay:$W/session2.csv" -b "$NW_MQTT_URL" -q "$W/q1" \
  >"$W/agent1b.log" 2>&1 || { cat "$W/agent1b.log"; echo "FAIL: second replay not acked"; exit 1; }
[[ $(q "SELECT count(*) FROM needle_window WHERE device='DG-E2E-1' AND clinic='Moved Clinic'") == 10 ]] ||
  { echo "FAIL: windows after the reload not under the new clinic"; exit 1; }
exactly_once DG-E2E-1
echo "ok: reload applied to new windows, broken inventory refused"

echo "== 2. collector killed with SIGKILL three times mid-run"
common=(-d DG-E2E-2 -b "$NW_MQTT_URL" -q "$W/q2" --set agent.window=250ms --set mqtt.ack_timeout=2s)
"$agent" "${common[@]}" -s sim >"$W/agent2.log" 2>&1 & apid=$!; bg+=("$apid")
for round in 1 2 3; do
  sleep 2
  kill -9 "$cpid"; wait "$cpid" 2>/dev/null || true
  echo "collector killed ($round)"
  sleep 1
  start_collector
done
sleep 3
kill -TERM "$apid"; wait "$apid" || true
: >"$W/empty.csv"
timeout 60 "$agent" "${common[@]}" -s "replay:$W/empty.csv" >"$W/agent2b.log" 2>&1 ||
  { cat "$W/agent2b.log"; echo "FAIL: queue not drained after collector restart"; exit 1; }
exactly_once DG-E2E-2
if grep -q "are lost on the device" "$W/collector.log"; then
  echo "FAIL: the restarted collector took acknowledged windows for lost ones"; exit 1
fi
acked=$(sqlite3 "$W/state.db" "SELECT window_seq FROM device_acks WHERE device='DG-E2E-2'")
[[ "$acked" == $(q "SELECT max(seq) FROM needle_window WHERE device='DG-E2E-2'") ]] ||
  { echo "FAIL: persisted watermark $acked is not the last stored window"; exit 1; }
echo "ok: watermark $acked persisted across the restart, no false loss"

echo "== 3. hostile input"
protoc --proto_path="$proto_dir" --python_out="$W" needlewatch.proto
topic=needlewatch/v1
mosquitto_pub -h 127.0.0.1 -p "$NW_MQTT_PORT" -q 1 -t "$topic/DG-E2E-1/telemetry" -m 'not protobuf at all'
head -c 300000 /dev/zero | mosquitto_pub -h 127.0.0.1 -p "$NW_MQTT_PORT" -q 1 -t "$topic/DG-E2E-1/telemetry" -s
PYTHONPATH="$W" /usr/bin/python3 - "$W" <<'PY'
import sys, time
import needlewatch_pb2 as pb
now = int(time.time() * 1000)
def batch(dev, seq, rate):
    m = pb.WindowBatch(device_id=dev, epoch=1)
    m.windows.add(seq=seq, start_ms=now - 1000, duration_ms=1000, cycles=120, running_ms=1000,
                  rate_mean_hz=rate, rate_min_hz=rate, rate_max_hz=rate, depth_mean_mm=0.4,
                  depth_min_mm=0.4, depth_max_mm=0.4, session_id="", cartridge_id="", pigment_lot="")
    return m.SerializeToString()
open(sys.argv[1] + "/spoof.bin", "wb").write(batch("DG-E2E-2", 1, 120.0))
open(sys.argv[1] + "/nan.bin", "wb").write(batch("DG-NAN", 1, float("nan")))
PY
mosquitto_pub -h 127.0.0.1 -p "$NW_MQTT_PORT" -q 1 -t "$topic/DG-E2E-1/telemetry" -f "$W/spoof.bin"
mosquitto_pub -h 127.0.0.1 -p "$NW_MQTT_PORT" -q 1 -t "$topic/DG-NAN/telemetry" -f "$W/nan.bin"
mosquitto_pub -h 127.0.0.1 -p "$NW_MQTT_PORT" -q 1 -t "$topic/bad+id/telemetry" -m x 2>/dev/null || true
sleep 1
curl -sf "http://127.0.0.1:$http_port/metrics" >"$W/metrics.txt"
for want in 'reason="malformed"} 1' 'reason="too_big"} 1' 'reason="id_mismatch"} 1' 'nw_items_rejected_total 1'; do
  grep -qF "$want" "$W/metrics.txt" || { cat "$W/metrics.txt"; echo "FAIL: /metrics lacks $want"; exit 1; }
done
grep -q '"device":"DG-NAN".*"reason":"not_finite"' "$W/dead.jsonl" || { echo "FAIL: NaN window not dead-lettered"; exit 1; }
[[ $(q "SELECT count(*) FROM needle_window WHERE device='DG-NAN'") == 0 ]] || { echo "FAIL: NaN stored"; exit 1; }
grep -q "rejected (malformed)" "$W/collector.log" || { echo "FAIL: refusal not logged"; exit 1; }
kill -0 "$cpid" || { echo "FAIL: collector died on hostile input"; exit 1; }
echo "ok: garbage, oversize, spoofed id and NaN refused, counted and logged; collector alive"

echo "== 4. SIGTERM"
t0=$(date +%s%N)
kill -TERM "$cpid"
wait "$cpid"; rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[[ $rc == 0 && $ms -lt 10000 ]] || { echo "FAIL: exit $rc after $ms ms"; exit 1; }
echo "ok: collector stopped cleanly in $ms ms"
cp "$W/collector.log" "${NW_E2E_LOG:-/dev/null}" 2>/dev/null || true
echo "1 passed, 0 failed"

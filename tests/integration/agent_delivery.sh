#!/usr/bin/env bash
# integration.agent_delivery: needlewatch-agent against a real mosquitto,
# with ack_echo standing in for the collector's ack path.
#   1. replay: a recorded 2-minute session is delivered, every window and
#      event exactly as produced, and the agent exits once all is acked;
#   2. the agent is killed with SIGKILL and restarted, the broker is stopped
#      and restarted under it, and the "collector" drops the first messages
#      after PUBACK: afterwards every window seq from 1 to the last is
#      present, no seq is used for two different windows, nothing is lost.
# Usage: agent_delivery.sh AGENT ACK_ECHO
set -euo pipefail
agent=${1:?usage: agent_delivery.sh AGENT ACK_ECHO}
echo_bin=${2:?usage: agent_delivery.sh AGENT ACK_ECHO}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers.sh
source "$here/servers.sh"

nw_require mosquitto python3
nw_make_workdir agent-delivery
nw_start_mosquitto "$NW_WORK" || exit 1
W=$NW_WORK

bg_pids=()
nw_test_cleanup() { for p in "${bg_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }

# verify OUT DEVICE MIN_WINDOWS MIN_EVENTS: no holes, no reuse, enough data.
verify() {
  python3 - "$@" <<'PY'
import sys
out, device, min_w, min_e = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
seen = {"W": {}, "E": {}}
order = []
for line in open(out):
    if line.startswith("S "):
        continue
    kind, dev, epoch, seq, t, extra = line.split()
    if dev != device:
        continue
    if kind == "W" and int(seq) not in seen["W"]:
        order.append(int(seq))
    prev = seen[kind].get(int(seq))
    if prev is not None and prev != (epoch, t, extra):
        sys.exit(f"FAIL: {kind} seq {seq} used twice: {prev} and {(epoch, t, extra)}")
    seen[kind][int(seq)] = (epoch, t, extra)
for kind, minimum in (("W", min_w), ("E", min_e)):
    seqs = sorted(seen[kind])
    if len(seqs) < minimum:
        sys.exit(f"FAIL: {kind}: {len(seqs)} received, expected at least {minimum}")
    if seqs != list(range(1, len(seqs) + 1)):
        holes = sorted(set(range(1, seqs[-1] + 1)) - set(seqs))
        sys.exit(f"FAIL: {kind}: holes at {holes[:10]} (of {len(holes)})")
    epochs = {v[0] for v in seen[kind].values()}
    if len(epochs) != 1:
        sys.exit(f"FAIL: {kind}: {len(epochs)} epochs, expected 1")
# Re-sends repeat old windows, but each window is first seen in seq order
# unless a resend after a lost message fills a hole (then out of order).
if not getattr(sys, "allow_reorder", False) and sys.argv[5:6] != ["reorder-ok"] and order != sorted(order):
    sys.exit("FAIL: windows first arrived out of order")
print(f"ok: {device}: windows 1..{len(seen['W'])}, events 1..{len(seen['E'])}, no holes, no reuse")
PY
}

echo "== 1. replay of a recorded session"
python3 - "$W/session.csv" <<'PY'
import sys, time
t0 = (int(time.time()) - 600) * 1000
with open(sys.argv[1], "w") as f:
    f.write("time,rate_hz,depth_mm,pigment_ul\n")
    f.write(f"{t0},event,session_start,session_id=s-replay-1,operator=OP-7\n")
    f.write(f"{t0},event,cartridge_inserted,cartridge_id=CRT-R1,needle_config=3RL,lot=L9\n")
    f.write(f"{t0},event,pigment_loaded,lot=PL-3,shade=Charcoal 2,volume_ul=1500\n")
    f.write("this is not a sample\n")
    for i in range(1201):
        f.write(f"{t0 + 100 * i},120,0.38,0.0144\n")
    f.write(f"{t0 + 120000},event,session_end,session_id=s-replay-1,reason=normal\n")
PY
"$echo_bin" "$NW_MQTT_URL" "$W/acks1.txt" & bg_pids+=($!)
if ! timeout 60 "$agent" -d DG-REPLAY -s "replay:$W/session.csv" -b "$NW_MQTT_URL" \
     -q "$W/q-replay" >"$W/agent1.log" 2>&1; then
  cat "$W/agent1.log"; echo "FAIL: replay agent did not finish with everything acked"; exit 1
fi
verify "$W/acks1.txt" DG-REPLAY 120 4
grep -q "replay line 5: expected TIME" "$W/agent1.log" ||
  { echo "FAIL: the bad source line was not reported with its line number"; exit 1; }
echo "ok: bad source line 5 refused with its number, the rest delivered"
python3 - "$W/acks1.txt" <<'PY'
import sys
w = [l.split() for l in open(sys.argv[1]) if l.startswith("W ")]
cycles = sum(int(x[5]) for x in w)
if cycles != 14400:
    sys.exit(f"FAIL: {cycles} cycles delivered, the recording has 14400")
print("ok: 14400 cycles delivered, as recorded")
PY

echo "== 2. kill -9, broker restart, lost-after-PUBACK"
kill "${bg_pids[0]}"; wait "${bg_pids[0]}" 2>/dev/null || true; bg_pids=()
"$echo_bin" "$NW_MQTT_URL" "$W/acks2.txt" 3 & bg_pids+=($!)
common=(-d DG-CRASH -b "$NW_MQTT_URL" -q "$W/q-crash" --set agent.window=250ms
        --set mqtt.ack_timeout=2s --set agent.heartbeat=1s)
"$agent" "${common[@]}" -s sim >"$W/agent2a.log" 2>&1 & apid=$!; bg_pids+=($apid)
sleep 3
kill -9 "$apid"; wait "$apid" 2>/dev/null || true
echo "agent killed with SIGKILL"
"$agent" "${common[@]}" -s sim >"$W/agent2b.log" 2>&1 & apid=$!; bg_pids+=($apid)
sleep 2
nw_stop mosquitto
echo "broker stopped for 20 s"
sleep 20
nw_restart mosquitto || { echo "FAIL: broker restart"; exit 1; }
echo "broker restarted"
sleep 4
kill -TERM "$apid"; wait "$apid" || { cat "$W/agent2b.log"; echo "FAIL: agent exit on SIGTERM"; exit 1; }
# Drain what is still queued: an empty replay ends at once, and the agent
# exits when every queued record is acknowledged.
: >"$W/empty.csv"
if ! timeout 60 "$agent" "${common[@]}" -s "replay:$W/empty.csv" >"$W/agent2c.log" 2>&1; then
  cat "$W/agent2c.log"; echo "FAIL: queue did not drain"; exit 1
fi
grep -q "re-sending" "$W/agent2a.log" "$W/agent2b.log" "$W/agent2c.log" ||
  { echo "FAIL: no re-send after the lost messages"; exit 1; }
grep -q "queueing on disk" "$W/agent2b.log" || { echo "FAIL: broker loss not logged"; exit 1; }
verify "$W/acks2.txt" DG-CRASH 20 3 reorder-ok

echo "== 3. queue full while the broker is away: oldest dropped, counted in status"
nw_stop mosquitto
small=(-d DG-FULL -b "$NW_MQTT_URL" -q "$W/q-full" --set agent.window=100ms
       --set queue.max_bytes=16K --set queue.segment_bytes=4K --set agent.heartbeat=1s)
"$agent" "${small[@]}" -s sim >"$W/agent3.log" 2>&1 & apid=$!; bg_pids+=($apid)
sleep 12   # ~120 windows of ~90 bytes: well over 16 KiB
nw_restart mosquitto || { echo "FAIL: broker restart"; exit 1; }
"$echo_bin" "$NW_MQTT_URL" "$W/acks3.txt" & bg_pids+=($!)
dropped=0
for _ in $(seq 45); do   # the agent's reconnect backoff may be up to 30 s by now
  sleep 1
  dropped=$(awk '$1 == "S" && $2 == "DG-FULL" {d = $5} END {print d + 0}' "$W/acks3.txt")
  [[ "$dropped" -gt 0 ]] && break
done
kill -TERM "$apid"; wait "$apid" || { echo "FAIL: agent exit"; exit 1; }
[[ "$dropped" -gt 0 ]] || { cat "$W/acks3.txt" | head; echo "FAIL: no drop reported in status"; exit 1; }
echo "ok: queue bound held, $dropped windows dropped and reported in the status"
echo "1 passed, 0 failed"

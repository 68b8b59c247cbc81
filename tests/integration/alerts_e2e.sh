#!/usr/bin/env bash
# integration.alerts_e2e: the alert rules end to end on a real broker. A
# simulated fleet with one fault per rule, each on its own device, runs
# through needlewatch-collector (SQLite store). For every rule: exactly one
# firing and one resolved alert for the faulted device, none for any other
# device. The collector is restarted while an alert is open: the alert stays
# open (the operator API still lists it) and never fires a second time.
# Alerts arrive on the MQTT alert topic, are acknowledged through the
# operator API, and session summaries reach the store.
# Usage: alerts_e2e.sh COLLECTOR SIM
set -euo pipefail
collector=${1:?usage: alerts_e2e.sh COLLECTOR SIM}
sim=${2:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers.sh
source "$here/servers.sh"

nw_require mosquitto mosquitto_sub sqlite3 curl python3
nw_make_workdir alerts-e2e
nw_start_mosquitto "$NW_WORK" || exit 1
W=$NW_WORK
http_port=$(nw_free_port)
hook_port=$(nw_free_port) # the webhook receiver: down until the fleet has run
API="http://127.0.0.1:$http_port"
bg=()
cpid=
nw_test_cleanup() {
  [ -n "$cpid" ] && kill -9 "$cpid" 2>/dev/null
  for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}

# The fleet: 24 machines, 20x time, one fault per rule (virtual START:LEN).
devices=24
faults=(
  --fault "needle_rate_out_of_spec@SIM-0002:3m:6m"
  --fault "needle_rate_unstable@SIM-0003:3m:2m"
  --fault "needle_depth_out_of_spec@SIM-0004:3m:2m"
  --fault "device_offline@SIM-0005:4m:1m"
  --fault "cartridge_reuse@SIM-0006:3m"
  --fault "unknown_device@SIM-0008"
  --fault "data_gap@SIM-0009:2m:11m"
  --fault "maintenance_due@SIM-0010:3m:3m"
  --fault "pigment_overuse@SIM-0011:6m:2m"
  --fault "cartridge_worn@SIM-0012:6m:10m"
)
declare -A faulted=(
  [needle_rate_out_of_spec]=SIM-0002 [needle_rate_unstable]=SIM-0003
  [needle_depth_out_of_spec]=SIM-0004 [device_offline]=SIM-0005
  [cartridge_reuse]=SIM-0006 [unknown_device]=SIM-0008 [data_gap]=SIM-0009
  [maintenance_due]=SIM-0010 [pigment_overuse]=SIM-0011 [cartridge_worn]=SIM-0012
)
sim_args=(-n "$devices" -m 3 --rate 20 --seed 5 --ack-timeout 5s --progress 0 "${faults[@]}")

# The inventory from a dry run of the same fleet (unknown_device left out).
"$sim" -b "mqtt://127.0.0.1:$(nw_free_port)" "${sim_args[@]}" --duration 1 --drain 0s \
  --inventory-out "$W/inventory.csv" >"$W/dry.log" 2>&1 || true
grep -q '^SIM-0001,' "$W/inventory.csv" || { echo "FAIL: no inventory from the dry run"; exit 1; }
grep -q '^SIM-0008,' "$W/inventory.csv" && { echo "FAIL: unknown_device is in the inventory"; exit 1; }
# cartridge_worn: a normal cartridge and a worn one both gain ~120 cycles per
# running second, so over a short run they differ by less than any sane
# fleet limit. SIM-0012 gets a model of its own with a limit its 10 min of
# forced needling (72 000 cycles, plus at most 6 min before) crosses and a
# normal 17 min run cannot reach before the fault (6 min x 120 Hz < 60 000);
# every other device keeps the default 3 000 000.
sed -i 's/^\(SIM-0012,.*\),DG-3$/\1,DG-3-wear-test/' "$W/inventory.csv"
grep -q '^SIM-0012,.*,DG-3-wear-test$' "$W/inventory.csv" || { echo "FAIL: inventory edit"; exit 1; }
cat >"$W/collector.ini" <<EOF
[alerts]
webhook = http://127.0.0.1:$hook_port/hook?token=not-in-logs
webhook_timeout = 1s
webhook_backoff_max = 5s

[model "DG-3-wear-test"]
cartridge_max_cycles = 60000
EOF

start_collector() {
  "$collector" -c "$W/collector.ini" -b "$NW_MQTT_URL" -s "sqlite:$W/store.db" -i "$W/inventory.csv" \
    --http "127.0.0.1:$http_port" --set store.flush=100ms \
    --set "collector.state=$W/state.db" --set "collector.spool=$W/spool" \
    --set "collector.dead_letter=$W/dead.jsonl" --set "alerts.state=$W/alerts.db" \
    >>"$W/collector$1.log" 2>&1 &
  cpid=$!
  for _ in $(seq 100); do curl -sf "$API/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "FAIL: collector did not come up"; cat "$W/collector$1.log"; exit 1
}

# alert_open RULE DEVICE: whether the operator API lists it.
alert_open() {
  curl -sf "$API/alerts" | python3 -c '
import json, sys
rule, dev = sys.argv[1], sys.argv[2]
sys.exit(0 if any(a["rule"] == rule and a["device"] == dev for a in json.load(sys.stdin)) else 1)
' "$1" "$2"
}

mosquitto_sub -h 127.0.0.1 -p "$NW_MQTT_PORT" -V mqttv5 -q 1 -t 'needlewatch/v1/+/alert' \
  -F '%t' >"$W/alert-topics.txt" 2>/dev/null &
bg+=($!)
start_collector 1
# Devices go offline when the sim exits, after its 50 s run and its drain:
# device_offline is judged on what happened before the end of the run.
run_end_ms=$(($(date +%s%N) / 1000000 + 50000))
"$sim" -b "$NW_MQTT_URL" "${sim_args[@]}" --duration 50 --drain 30s >"$W/sim.log" 2>&1 &
sim_pid=$!
bg+=("$sim_pid")

# Restart while the rate alert is open (it opens at 3 min of virtual time,
# about 9 s in, and stays open for 6 min, about 18 s).
for _ in $(seq 300); do alert_open needle_rate_out_of_spec SIM-0002 && break; sleep 0.1; done
alert_open needle_rate_out_of_spec SIM-0002 || { echo "FAIL: the rate alert never opened"; exit 1; }
kill -TERM "$cpid"
wait "$cpid" || { echo "FAIL: collector exit status $? on SIGTERM"; exit 1; }
start_collector 2
alert_open needle_rate_out_of_spec SIM-0002 ||
  { echo "FAIL: the open rate alert was forgotten across the restart"; exit 1; }
echo "ok: open alert survives a collector restart"

# An operator acknowledges it.
id=$(curl -sf "$API/alerts" | python3 -c '
import json, sys
print(next(a["alert_id"] for a in json.load(sys.stdin) if a["device"] == "SIM-0002"))')
[ "$(curl -s -o /dev/null -w '%{http_code}' -XPOST "$API/alerts/ack?id=$id")" = 200 ] ||
  { echo "FAIL: ack of alert $id refused"; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' -XPOST "$API/alerts/ack?id=12345")" = 404 ] ||
  { echo "FAIL: ack of an unknown alert not 404"; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' -XPOST "$API/silences?rule=nope&for=1h")" = 400 ] ||
  { echo "FAIL: a silence for an unknown rule not refused"; exit 1; }

sim_rc=0
wait "$sim_pid" || sim_rc=$?
[ "$sim_rc" = 0 ] || { echo "FAIL: sim exit $sim_rc"; tail -5 "$W/sim.log"; exit 1; }

# unknown_device resolves once the device is in the inventory.
echo "SIM-0008,Clinic 1,DG-3" >>"$W/inventory.csv"
kill -HUP "$cpid"
for _ in $(seq 50); do alert_open unknown_device SIM-0008 || break; sleep 0.1; done
sleep 1

# The webhook comes back: every change the running collector logged is
# delivered (the sim above finished with everything acknowledged while it
# was down: ingest never waited for it).
python3 "$here/webhook_receiver.py" --record "$W/hook.jsonl" --port "$hook_port" \
  --parent-pid $$ >"$W/hook.log" 2>&1 &
bg+=($!)
expected=$(grep -cE 'alert (firing|resolved):' "$W/collector2.log" || true)
# The notifier retries a dead webhook with backoff up to
# alerts.webhook_backoff_max (5 s here); wait up to 90 s all the same (a
# sanitizer build on a loaded machine is slow).
for _ in $(seq 900); do
  got=$(python3 -c '
import json, sys
print(sum(1 for l in open(sys.argv[1]) if json.loads(l)["json"]["state"] in ("firing", "resolved")))
' "$W/hook.jsonl" 2>/dev/null || echo 0)
  [ "$got" -ge "$expected" ] && break
  sleep 0.1
done
[ -s "$W/hook.jsonl" ] || { echo "FAIL: the webhook received nothing within 90 s of coming back"; exit 1; }
python3 - "$W/collector2.log" "$W/hook.jsonl" <<'PY' || exit 1
import json, re, sys
logged = set(re.findall(r"alert (firing|resolved): .*\[\w+, id (\d+)\]", open(sys.argv[1]).read()))
logged = {(state, int(i)) for state, i in logged}
got = [json.loads(l)["json"] for l in open(sys.argv[2])]
hooked = {(j["state"], int(j["alert_id"])) for j in got if j["state"] in ("firing", "resolved")}
if not logged or logged - hooked:
    sys.exit(f"FAIL: webhook missed {sorted(logged - hooked)} of {len(logged)} logged changes")
print(f"ok: webhook down during the run, then all {len(logged)} logged alert changes delivered")
PY
grep -q 'not-in-logs' "$W"/collector*.log && { echo "FAIL: the webhook token is in the log"; exit 1; }
kill -TERM "$cpid"
wait "$cpid" || { echo "FAIL: collector exit status on SIGTERM"; exit 1; }
cpid=

fail=0
for rule in "${!faulted[@]}"; do
  dev=${faulted[$rule]}
  cut=""
  [ "$rule" = device_offline ] && cut=" AND time < $run_end_ms"
  read -r fired resolved others <<<"$(sqlite3 -separator ' ' "$W/store.db" "
    SELECT (SELECT count(*) FROM alert WHERE rule='$rule' AND device='$dev' AND state='firing'$cut),
           (SELECT count(*) FROM alert WHERE rule='$rule' AND device='$dev' AND state='resolved'),
           (SELECT count(*) FROM alert WHERE rule='$rule' AND device<>'$dev' AND state='firing'$cut)")"
  if [ "$fired" = 1 ] && [ "$resolved" = 1 ] && [ "$others" = 0 ]; then
    echo "ok: $rule: one firing and one resolved on $dev, none elsewhere"
  else
    echo "FAIL: $rule on $dev: $fired firing, $resolved resolved, $others firing on other devices"
    fail=1
  fi
done
sqlite3 "$W/store.db" "SELECT device, rule, state, time FROM alert ORDER BY time" >"$W/alerts.txt"
[ "$fail" = 0 ] || { cat "$W/alerts.txt"; exit 1; }

acked=$(sqlite3 "$W/store.db" "SELECT count(*) FROM alert WHERE alert_id=$id AND state='acknowledged'")
[ "$acked" = 1 ] || { echo "FAIL: $acked acknowledged rows for alert $id"; exit 1; }
echo "ok: acknowledged once"

on_mqtt=$(grep -c '^needlewatch/v1/SIM-0002/alert$' "$W/alert-topics.txt" || true)
[ "$on_mqtt" -ge 3 ] || { echo "FAIL: $on_mqtt alerts of SIM-0002 on MQTT, expected firing, ack, resolved"; exit 1; }
echo "ok: alerts on the MQTT alert topic ($on_mqtt for SIM-0002)"

read -r sessions bad <<<"$(sqlite3 -separator ' ' "$W/store.db" "
  SELECT count(*), sum(windows > windows_expected OR rate_in_spec_pct > 100 OR duration_s < 0)
    FROM session")"
[ "$sessions" -gt 0 ] && [ "$bad" = 0 ] ||
  { echo "FAIL: $sessions session points, $bad inconsistent"; exit 1; }
echo "ok: $sessions session summaries"

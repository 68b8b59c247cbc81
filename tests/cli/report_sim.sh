#!/usr/bin/env bash
# cli.report_sim: the QA report of a real, seeded run. A simulated fleet
# (24 machines, 3 clinics, 20x time) with one injected fault - needle rate
# out of spec on SIM-0005 for exactly 5 min of clinic time - goes through
# mosquitto and needlewatch-collector into SQLite; then `needlewatch report`
# must agree with what was injected, computed independently:
#   - the faulted clinic ranks worst;
#   - SIM-0005's out-of-spec minutes are 5 within one window (1 s) plus
#     the report's rounding (0.01 min);
#   - the clinic's out-of-spec minutes are at least that, and every other
#     clinic's are what the store's own windows say (SQL on the store);
#   - exactly one needle_rate_out_of_spec alert, on SIM-0005;
#   - completeness 100 % (every window the sim made was stored).
# Usage: report_sim.sh NEEDLEWATCH COLLECTOR SIM
set -euo pipefail
cli=${1:?usage: report_sim.sh NEEDLEWATCH COLLECTOR SIM}
collector=${2:?}
sim=${3:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../integration/servers.sh
source "$here/../integration/servers.sh"

nw_require mosquitto sqlite3 python3
nw_make_workdir report-sim
nw_start_mosquitto "$NW_WORK" || exit 1
W=$NW_WORK
bg=()
nw_test_cleanup() { for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }

args=(-n 24 -m 3 --rate 20 --seed 21 --ack-timeout 5s --progress 0
      --fault "needle_rate_out_of_spec@SIM-0005:4m:5m")
"$sim" -b "mqtt://127.0.0.1:$(nw_free_port)" "${args[@]}" --duration 1 --drain 0s \
  --inventory-out "$W/inventory.csv" >"$W/dry.log" 2>&1 || true
grep -q '^SIM-0005,' "$W/inventory.csv" || { echo "FAIL: no inventory"; exit 1; }

"$collector" -b "$NW_MQTT_URL" -s "sqlite:$W/store.db" -i "$W/inventory.csv" \
  --set store.flush=100ms --set "collector.state=$W/state.db" --set "collector.spool=$W/spool" \
  --set "collector.dead_letter=$W/dead.jsonl" --set "alerts.state=$W/alerts.db" \
  >"$W/collector.log" 2>&1 &
cpid=$!
bg+=("$cpid")
sleep 0.5
from=$(date -u -d '-2 hours' +%Y-%m-%dT%H:%M:%SZ)
"$sim" -b "$NW_MQTT_URL" "${args[@]}" --duration 40 --drain 30s >"$W/sim.log" 2>&1 ||
  { echo "FAIL: sim: $(tail -2 "$W/sim.log")"; exit 1; }
kill -TERM "$cpid"
wait "$cpid" || { echo "FAIL: collector exit status"; exit 1; }
to=$(date -u +%Y-%m-%dT%H:%M:%SZ)

"$cli" report --store "sqlite:$W/store.db" --from "$from" --to "$to" --format json \
  >"$W/clinics.json"
"$cli" report --store "sqlite:$W/store.db" --from "$from" --to "$to" --format json --by device \
  >"$W/devices.json"
"$cli" alerts --all --store "sqlite:$W/store.db" --from "$from" --to "$to" --format json \
  >"$W/alerts.json"
sqlite3 -separator '|' "$W/store.db" \
  "SELECT clinic, sum(CASE WHEN in_spec = 0 THEN running_ms ELSE 0 END) / 60000.0
     FROM needle_window GROUP BY clinic" >"$W/oos.txt"
made=$(sed -n 's/.*summary: devices=.* windows=\([0-9]*\) .*/\1/p' "$W/sim.log" | tail -n 1)

python3 - "$W" "$made" <<'PY'
import csv, json, sys
w, made = sys.argv[1], int(sys.argv[2])
inv = {r["device"]: r["clinic"] for r in csv.DictReader(open(f"{w}/inventory.csv"))}
faulted = inv["SIM-0005"]
clinics = json.load(open(f"{w}/clinics.json"))["clinics"]
devices = json.load(open(f"{w}/devices.json"))["devices"]
alerts = json.load(open(f"{w}/alerts.json"))
oos = {l.split("|")[0]: float(l.split("|")[1]) for l in open(f"{w}/oos.txt").read().split("\n") if l}
fails = []
worst = min(clinics, key=lambda c: c["rank"])
if worst["clinic"] != faulted:
    fails.append(f"worst clinic is {worst['clinic']!r}, the fault was in {faulted!r}")
dev = next(d for d in devices if d.get("device") == "SIM-0005")
# one window (1 s) of slack, plus the report's rounding to 0.01 min
if abs(dev["out_of_spec_minutes"] - 5.0) > 1 / 60 + 0.005 + 1e-9:
    fails.append(f"SIM-0005: {dev['out_of_spec_minutes']} min out of spec, injected 5")
for c in clinics:
    want = oos.get(c["clinic"], 0.0)
    if abs(c["out_of_spec_minutes"] - want) > 0.01:
        fails.append(f"{c['clinic']}: report {c['out_of_spec_minutes']} min, store {want:.3f}")
rows = alerts if isinstance(alerts, list) else alerts.get("alerts", [])
rate = [a for a in rows if a["rule"] == "needle_rate_out_of_spec"]
if {a["device"] for a in rate} != {"SIM-0005"}:
    fails.append(f"rate alerts on {sorted({a['device'] for a in rate})}, expected SIM-0005 only")
fleet = json.load(open(f"{w}/clinics.json"))["fleet"]
if fleet["windows_received"] != made or fleet["completeness_pct"] != 100:
    fails.append(f"completeness: {fleet['windows_received']} of {made} made, {fleet['completeness_pct']} %")
if fails:
    sys.exit("FAIL: " + "\nFAIL: ".join(fails))
print(f"ok: report of a seeded sim run: {faulted} ranks worst, SIM-0005 "
      f"{dev['out_of_spec_minutes']:.3f} min out of spec (injected 5), per-clinic minutes match "
      f"the store, one rate alert on SIM-0005, {made} windows 100 % complete")
PY

#!/usr/bin/env bash
# integration.sim_collector_stores: a simulated fleet through a real broker
# and needlewatch-collector into each store: SQLite, InfluxDB 1.6.7 (v1
# /write) and VictoriaMetrics (v2 /api/v2/write). For each: the sim ends
# with every window acknowledged, and the store holds exactly the windows
# the sim made, per device, without a duplicate.
# Usage: sim_collector_stores.sh COLLECTOR SIM
set -euo pipefail
collector=${1:?usage: sim_collector_stores.sh COLLECTOR SIM}
sim=${2:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers.sh
source "$here/servers.sh"

nw_require mosquitto influxd victoria-metrics sqlite3 curl python3
nw_make_workdir sim-stores
nw_start_mosquitto "$NW_WORK" || exit 1
nw_start_influxd "$NW_WORK" || exit 1
nw_start_victoria "$NW_WORK" || exit 1
W=$NW_WORK
curl -sf -XPOST "$NW_INFLUX_URL/query" --data-urlencode "q=CREATE DATABASE nw" >/dev/null
bg=()
nw_test_cleanup() { for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }

# run NAME STORE_URL: one fleet through one collector; prints windows made.
run() {
  local name=$1 url=$2 d="$W/$1"
  mkdir -p "$d"
  printf 'device,clinic,model\n' >"$d/inventory.csv"
  "$collector" -b "$NW_MQTT_URL" -s "$url" -i "$d/inventory.csv" --set store.flush=100ms \
    --set "collector.state=$d/state.db" --set "collector.spool=$d/spool" \
    --set "collector.dead_letter=$d/dead.jsonl" --set "collector.client_id=c-$name" >"$d/collector.log" 2>&1 &
  local cpid=$!; bg+=("$cpid")
  sleep 0.5
  "$sim" -b "$NW_MQTT_URL" -n 12 -m 3 --rate 10 --duration 8 --seed 11 --id-prefix "$name-" \
    --ack-timeout 3s --drain 20s --inventory-out "$d/inventory.csv" >"$d/sim.log" 2>&1 || true
  kill -TERM "$cpid"; wait "$cpid" || { echo "FAIL: $name collector exit"; exit 1; }
  local summary
  summary=$(grep "summary: devices=" "$d/sim.log" | tail -n 1)
  [[ "$summary" == *" unacked=0 "* ]] || { echo "FAIL: $name: sim left records unacked: $summary"; exit 1; }
  sed -n 's/.* windows=\([0-9]*\) .*/\1/p' <<<"$summary"
}

check() { # NAME MADE COUNTS(device count maxseq lines)
  python3 - "$@" <<'PY'
import sys
name, made, text = sys.argv[1], int(sys.argv[2]), sys.argv[3]
total = 0
rows = [l.split() for l in text.strip().splitlines()]
if len(rows) != 12:
    sys.exit(f"FAIL: {name}: {len(rows)} devices in the store, expected 12")
for dev, count, top in rows:
    count, top = int(float(count)), int(float(top))
    if count != top:
        sys.exit(f"FAIL: {name}: {dev}: {count} windows for seqs 1..{top}")
    total += count
if total != made:
    sys.exit(f"FAIL: {name}: {total} windows stored, the sim made {made}")
print(f"ok: {name}: {total} windows stored for 12 devices, exactly what the sim made, no duplicates")
PY
}

made=$(run sq "sqlite:$W/store.db")
counts=$(sqlite3 -separator ' ' "$W/store.db" \
  "SELECT device, count(*), max(seq) FROM needle_window GROUP BY device")
check sqlite "$made" "$counts"

made=$(run ix "influx://127.0.0.1:$NW_INFLUX_PORT/nw")
res=$(curl -sf -G "$NW_INFLUX_URL/query" --data-urlencode db=nw \
  --data-urlencode "q=SELECT count(seq), max(seq) FROM needle_window GROUP BY device")
counts=$(python3 -c '
import json, sys
for s in json.loads(sys.argv[1])["results"][0]["series"]:
    v = s["values"][0]
    print(s["tags"]["device"], v[1], v[2])' "$res")
check influx-v1 "$made" "$counts"

made=$(run vm "influx2://127.0.0.1:$NW_VICTORIA_PORT/?org=nw&bucket=nw")
# /api/v1/export returns raw samples (queries hide the last 30 s by default).
curl -sf "$NW_VICTORIA_URL/internal/force_flush" >/dev/null || true
res=$(curl -sf -G "$NW_VICTORIA_URL/api/v1/export" --data-urlencode 'match[]=needle_window_seq')
counts=$(python3 -c '
import json, sys
for line in sys.argv[1].splitlines():
    r = json.loads(line)
    print(r["metric"]["device"], len(r["timestamps"]), int(max(r["values"])))' "$res")
check victoria-v2 "$made" "$counts"
echo "1 passed, 0 failed"

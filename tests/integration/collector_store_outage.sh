#!/usr/bin/env bash
# integration.collector_store_outage: the store goes away under load.
# agent -> mosquitto -> collector -> real InfluxDB 1.6.7. InfluxDB is
# stopped while the agent sends: the collector keeps ingesting into its
# on-disk spool, stops acknowledging (the agent's queue grows), logs the
# outage once, and when InfluxDB returns drains the spool; at the end every
# window is in InfluxDB exactly once.
# Usage: collector_store_outage.sh COLLECTOR AGENT
set -euo pipefail
collector=${1:?usage: collector_store_outage.sh COLLECTOR AGENT}
agent=${2:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers.sh
source "$here/servers.sh"

nw_require mosquitto influxd curl python3
nw_make_workdir store-outage
nw_start_mosquitto "$NW_WORK" || exit 1
nw_start_influxd "$NW_WORK" || exit 1
W=$NW_WORK
curl -sf -XPOST "$NW_INFLUX_URL/query" --data-urlencode "q=CREATE DATABASE nw" >/dev/null
http_port=$(nw_free_port 1)
bg=()
nw_test_cleanup() { for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }

metric() { curl -sf "http://127.0.0.1:$http_port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

"$collector" -b "$NW_MQTT_URL" -s "influx://127.0.0.1:$NW_INFLUX_PORT/nw" \
  --http "127.0.0.1:$http_port" --set collector.state="$W/state.db" \
  --set collector.spool="$W/spool" --set collector.dead_letter="$W/dead.jsonl" \
  --set store.flush=100ms --set store.timeout=2s >"$W/collector.log" 2>&1 &
cpid=$!; bg+=("$cpid")
common=(-d DG-OUT-1 -b "$NW_MQTT_URL" -q "$W/q" --set agent.window=100ms --set mqtt.ack_timeout=3s)
"$agent" "${common[@]}" -s sim >"$W/agent.log" 2>&1 & apid=$!; bg+=("$apid")
sleep 3
nw_stop influxd
echo "influxd stopped for 30 s"
sleep 30
spooled=$(metric nw_spool_records)
up=$(metric nw_store_up)
echo "during the outage: store_up=$up spool_records=$spooled"
[[ "$up" == 0 ]] || { echo "FAIL: store not seen down"; exit 1; }
[[ "${spooled:-0}" -gt 0 ]] || { echo "FAIL: nothing spooled while the store was down"; exit 1; }
nw_restart influxd || { echo "FAIL: influxd restart"; exit 1; }
echo "influxd back"
sleep 4
kill -TERM "$apid"; wait "$apid" || true
: >"$W/empty.csv"
timeout 90 "$agent" "${common[@]}" -s "replay:$W/empty.csv" >"$W/agent2.log" 2>&1 ||
  { tail -20 "$W/agent2.log" "$W/collector.log"; echo "FAIL: agent queue did not drain"; exit 1; }
grep -q "writer: store .* down:" "$W/collector.log" || { echo "FAIL: outage not logged"; exit 1; }
[[ $(grep -c "writer: store .* down:" "$W/collector.log") == 1 ]] || { echo "FAIL: outage logged more than once"; exit 1; }
grep -q "up again" "$W/collector.log" || { echo "FAIL: recovery not logged"; exit 1; }
grep -q "spooling to disk" "$W/collector.log" || { echo "FAIL: spool on not logged"; exit 1; }
grep -q "spool drained" "$W/collector.log" || { echo "FAIL: spool off not logged"; exit 1; }
res=$(curl -sf -G "$NW_INFLUX_URL/query" --data-urlencode "db=nw" \
  --data-urlencode "q=SELECT count(seq), min(seq), max(seq) FROM needle_window WHERE device='DG-OUT-1'")
python3 - "$res" <<'PY'
import json, sys
row = json.loads(sys.argv[1])["results"][0]["series"][0]["values"][0]
_, count, lo, hi = row
if lo != 1 or count != hi:
    sys.exit(f"FAIL: {count} windows stored for seqs {lo}..{hi}: not exactly once")
print(f"ok: windows 1..{hi} in InfluxDB exactly once after the outage")
PY
kill -TERM "$cpid"; wait "$cpid" || { echo "FAIL: collector exit"; exit 1; }
echo "1 passed, 0 failed"

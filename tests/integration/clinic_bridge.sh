#!/usr/bin/env bash
# integration.clinic_bridge: DESIGN §7's clinic topology on loopback. The
# machines talk to their clinic's mosquitto, which is bridged (mosquitto's
# own bridge, QoS 1) to the central broker the collector reads; the
# end-to-end acks travel back over the same bridge. The central broker is
# stopped for 8 s mid-run (a WAN outage): the clinic keeps working, and
# after the run every window is stored exactly once and acknowledged.
# Usage: clinic_bridge.sh COLLECTOR SIM
set -euo pipefail
collector=${1:?usage: clinic_bridge.sh COLLECTOR SIM}
sim=${2:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers.sh
source "$here/servers.sh"

nw_require mosquitto sqlite3 curl
nw_make_workdir clinic-bridge
W=$NW_WORK
nw_start_mosquitto "$W" || exit 1 # the central broker
central_port=$NW_MQTT_PORT

mkdir -p "$W/clinic"
clinic_port=$(nw_free_port)
cat >"$W/clinic/mosquitto.conf" <<EOF
listener $clinic_port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $W/clinic/
max_queued_messages 100000
user $(id -un)
log_dest stderr
log_type error
log_type warning
log_type notice

connection central
address 127.0.0.1:$central_port
remote_clientid clinic-1-bridge
cleansession false
restart_timeout 1 2
topic needlewatch/v1/+/telemetry out 1
topic needlewatch/v1/+/event out 1
topic needlewatch/v1/+/status out 1
topic needlewatch/v1/+/ack in 1
topic needlewatch/v1/+/alert in 1
EOF
_nw_start clinic "$W/clinic/mosquitto.log" _nw_tcp_open "$clinic_port" -- \
  mosquitto -c "$W/clinic/mosquitto.conf" || exit 1

bg=()
nw_test_cleanup() { for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
printf 'device,clinic,model\n' >"$W/inventory.csv"
"$collector" -b "$NW_MQTT_URL" -s "sqlite:$W/store.db" -i "$W/inventory.csv" \
  --set store.flush=100ms --set "collector.state=$W/state.db" --set "collector.spool=$W/spool" \
  --set "collector.dead_letter=$W/dead.jsonl" --set "alerts.state=$W/alerts.db" \
  >"$W/collector.log" 2>&1 &
cpid=$!
bg+=("$cpid")
sleep 0.5

"$sim" -b "mqtt://127.0.0.1:$clinic_port" -n 10 -m 1 --rate 10 --duration 20 --seed 3 \
  --ack-timeout 5s --drain 40s --buffer 1M --progress 0 --inventory-out "$W/inventory.csv" \
  >"$W/sim.log" 2>&1 &
sim_pid=$!
bg+=("$sim_pid")
sleep 6
nw_stop mosquitto # the WAN goes down
echo "central broker down"
sleep 8
nw_restart mosquitto || { echo "FAIL: central broker did not restart"; exit 1; }
echo "central broker back"
sim_rc=0
wait "$sim_pid" || sim_rc=$?
kill -TERM "$cpid"
wait "$cpid" || { echo "FAIL: collector exit status"; exit 1; }

summary=$(grep "summary: devices=" "$W/sim.log" | tail -n 1)
[ "$sim_rc" = 0 ] && [[ "$summary" == *" unacked=0 "* ]] ||
  { echo "FAIL: sim exit $sim_rc: $summary"; exit 1; }
made=$(sed -n 's/.* windows=\([0-9]*\) .*/\1/p' <<<"$summary")
read -r stored devices dup <<<"$(sqlite3 -separator ' ' "$W/store.db" "
  SELECT count(*), count(DISTINCT device),
         (SELECT count(*) FROM (SELECT device FROM needle_window GROUP BY device
                                 HAVING count(*) <> max(seq)))
    FROM needle_window")"
[ "$stored" = "$made" ] && [ "$devices" = 10 ] && [ "$dup" = 0 ] ||
  { echo "FAIL: $stored windows stored for $devices devices ($dup with holes or duplicates), sim made $made"; exit 1; }
grep -qE "Connecting bridge.* central" "$W/clinic/mosquitto.log" ||
  { echo "FAIL: the clinic broker never bridged"; exit 1; }
echo "ok: through a clinic bridge with an 8 s WAN outage: $stored windows stored once each, all acknowledged"

#!/usr/bin/env bash
# The main job on one machine, from a fresh Debian 12:
#   installs what is missing, builds, starts a private mosquitto broker on a
#   free loopback port, needlewatch-collector on the embedded SQLite store,
#   and needlewatch-sim with a fleet (200 machines in 8 clinics, time
#   compressed 20x, two injected faults), prints progress while it runs,
#   then a per-clinic summary read from the store.
# Everything it starts is stopped on exit or Ctrl-C. Idempotent: every run
# gets a fresh directory under run/ (kept afterwards: the store, logs).
#
#   deploy/run.sh [--devices N] [--clinics M] [--minutes MIN]
set -euo pipefail
cd "$(dirname "$0")/.."

devices=200 clinics=8 minutes=3
while [ $# -gt 0 ]; do
  case "$1" in
    --devices) devices=$2; shift 2 ;;
    --clinics) clinics=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf '\n==> %s\n' "$*"; }

say "installing dependencies"
bash deploy/install-deps.sh
say "building"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

run="run/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$run"
run=$(cd "$run" && pwd)
pids=()
stop_all() {
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap 'stop_all' EXIT
trap 'echo; echo "stopping (Ctrl-C)"; exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
mqtt_port=$(free_port)
http_port=$(free_port)

say "broker: mosquitto on 127.0.0.1:$mqtt_port"
cat >"$run/mosquitto.conf" <<EOF
listener $mqtt_port 127.0.0.1
allow_anonymous true
# No broker persistence: agents keep everything until the collector's
# end-to-end ack, so a broker restart loses nothing; and with
# autosave_on_changes the broker would rewrite its whole database after
# every queued message under this load.
persistence false
# The collector is one subscriber for the whole fleet: let the broker queue
# enough for it that a short stall is not a drop (mosquitto drops the newest
# after acknowledging them, DESIGN §4).
max_queued_messages 200000
max_inflight_messages 100
user $(id -un)
EOF
mosquitto -c "$run/mosquitto.conf" >"$run/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$mqtt_port") 2>/dev/null && break; sleep 0.1; done

# The fleet's inventory first, from a one-second dry run of the same fleet
# (no broker: nothing is sent), so the collector knows every machine's
# clinic before the first window arrives.
build/agent/needlewatch-sim -b "mqtt://127.0.0.1:$(free_port)" -n "$devices" -m "$clinics" \
  --seed 7 --duration 1 --drain-timeout 0s --quiet --inventory-out "$run/inventory.csv" \
  >"$run/inventory-dry-run.log" 2>&1 || true
[ "$(wc -l <"$run/inventory.csv")" -gt "$devices" ] ||
  { echo "run.sh: could not write the inventory (see $run/inventory-dry-run.log)" >&2; exit 1; }
say "collector: needlewatch-collector, store sqlite:$run/needlewatch.db, /metrics on 127.0.0.1:$http_port"
build/collector/needlewatch-collector -b "mqtt://127.0.0.1:$mqtt_port" \
  -s "sqlite:$run/needlewatch.db" -i "$run/inventory.csv" --http "127.0.0.1:$http_port" \
  --set "collector.state=$run/collector-state.db" --set "collector.spool=$run/spool" \
  --set "collector.dead_letter=$run/dead-letter.jsonl" >"$run/collector.log" 2>&1 &
collector_pid=$!
pids+=($collector_pid)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null && break; sleep 0.1; done

# Fault start/length are virtual time: 1 wall minute = 20 virtual minutes.
rate=20
f1=$(printf 'SIM-%04d' $((devices < 7 ? 1 : 7)))
f2=$(printf 'SIM-%04d' $((devices < 42 ? devices : 42)))
faults=(--fault "needle_rate_out_of_spec@$f1:20m:10m"
        --fault "needle_depth_out_of_spec@$f2:40m:6m")
say "fleet: needlewatch-sim, $devices machines in $clinics clinics, ${minutes} min at 20x ($((minutes * 20)) min of clinic time)"
echo "    faults: needle rate 152 Hz on $f1 for 10 min, depth 0.62 mm on $f2 for 6 min"
build/agent/needlewatch-sim -b "mqtt://127.0.0.1:$mqtt_port" -n "$devices" -m "$clinics" \
  --rate "$rate" --duration "${minutes}m" --seed 7 --buffer 256K --ack-timeout 10s \
  --progress 10s "${faults[@]}" 2>&1 | sed -u 's/^/    sim: /' &
sim_pid=$!
pids+=($sim_pid)

sim_rc=0
wait "$sim_pid" || sim_rc=$?
case $sim_rc in
  0) ;;
  3) echo "    (the sim ended with records unacknowledged after its drain: see above)" ;;
  *) echo "run.sh: needlewatch-sim failed (exit $sim_rc)" >&2; exit 1 ;;
esac
sleep 1
say "stored (from /metrics)"
curl -sf "http://127.0.0.1:$http_port/metrics" |
  grep -E '^nw_(points_stored_total|windows_in_total|events_in_total|acks_sent_total|devices|store_up|broker_up) ' |
  sed 's/^/    /'

say "per clinic, from the store (run/${run##*/}/needlewatch.db)"
sqlite3 -header -column "$run/needlewatch.db" "
  SELECT clinic,
         count(DISTINCT device)                                   AS machines,
         count(*)                                                  AS windows,
         printf('%.1f', sum(running_ms) / 3600000.0)               AS running_h,
         printf('%.2f', 100.0 * avg(in_spec))                      AS in_spec_pct,
         printf('%.1f', sum(CASE WHEN in_spec = 0 THEN duration_ms ELSE 0 END) / 60000.0)
                                                                   AS out_of_spec_min,
         printf('%.1f', sum(pigment_ul) / 1000.0)                  AS pigment_ml
    FROM needle_window GROUP BY clinic ORDER BY 100.0 * avg(in_spec), clinic;" | sed 's/^/    /'
echo
echo "    the two faulted machines:"
sqlite3 -header -column "$run/needlewatch.db" "
  SELECT device, clinic, sum(CASE WHEN in_spec = 0 THEN 1 ELSE 0 END) AS windows_out_of_spec,
         printf('%.1f', max(rate_max)) AS max_rate_hz, printf('%.3f', max(depth_max)) AS max_depth_mm
    FROM needle_window WHERE device IN ('$f1', '$f2') GROUP BY device;" | sed 's/^/    /'
echo
echo "Logs, inventory and the store are in $run"
echo "(alert rules and the needlewatch report command are not built yet; see the issues)"

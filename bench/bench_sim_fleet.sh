#!/usr/bin/env bash
# bench_sim_fleet.sh - how many devices needlewatch-sim runs on this machine,
# at what message rate and memory, against a private mosquitto on loopback.
#
#   bench/bench_sim_fleet.sh BUILD_DIR [DEVICES [RATE [SECONDS [SHARDS [ACKER]]]]]
#
#   DEVICES  fleet size (default 1000)
#   RATE     windows per second per device (default 1: real time)
#   SECONDS  run length (default 30; bounded to 600)
#   SHARDS   sim processes splitting the fleet with --shard (default 1); one
#            process needs 3 descriptors per device (libmosquitto keeps a
#            socketpair per client), so a hard limit of 20000 caps it near
#            6600 devices
#   ACKER    none (default): a bare subscriber counts what the broker
#            delivers, nothing is acked (the sim re-sends after its ack
#            timeout); collector: needlewatch-collector on a SQLite store in
#            the work dir acks, so the numbers are end to end
#
# Prints one line per shard (the sim's summary), the bare subscriber's
# count, and max RSS of each process. Measure on a quiet machine, and the
# reference (bare subscriber) in the same run: numbers move with load.
set -euo pipefail
build=${1:?usage: bench_sim_fleet.sh BUILD_DIR [DEVICES [RATE [SECONDS [SHARDS [ACKER]]]]]}
devices=${2:-1000}
rate=${3:-1}
secs=${4:-30}
shards=${5:-1}
acker=${6:-none}
((secs <= 600)) || { echo "SECONDS: at most 600"; exit 2; }
sim=$build/agent/needlewatch-sim
collector=$build/collector/needlewatch-collector
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../tests/integration/servers.sh
source "$here/../tests/integration/servers.sh"
nw_require mosquitto mosquitto_sub python3
nw_make_workdir bench-sim
nw_start_mosquitto "$NW_WORK" || exit 1
W=$NW_WORK
bg=()
# shellcheck disable=SC2317 # called by the EXIT trap of servers.sh
nw_test_cleanup() { for p in "${bg[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; }

"$sim" --devices "$devices" --inventory-out "$W/inventory.csv" --duration 1 \
  --broker mqtt://127.0.0.1:1 --drain 0 --progress 0 >/dev/null 2>&1 || true
if [[ "$acker" == collector ]]; then
  timeout $((secs + 120)) "$collector" --broker "$NW_MQTT_URL" --store "sqlite:$W/nw.db" \
    --inventory "$W/inventory.csv" >"$W/collector.log" 2>&1 & bg+=("$!")
  sleep 1
fi
timeout $((secs + 120)) mosquitto_sub -h 127.0.0.1 -p "$NW_MQTT_PORT" \
  -t 'needlewatch/v1/+/telemetry' -F '%t' >"$W/sub.txt" 2>/dev/null & sub=$!; bg+=("$sub")
sleep 0.5
sims=()
for ((i = 0; i < shards; i++)); do
  /usr/bin/time -f "shard $i: max RSS %M KiB, CPU %P, %e s" -o "$W/time$i.txt" \
    timeout $((secs + 120)) "$sim" --broker "$NW_MQTT_URL" --devices "$devices" \
    --clinics $(((devices + 29) / 30)) --rate "$rate" --duration "$secs" --drain 20 \
    --progress 10s --shard "$i/$shards" --status "$W/status$i.txt" >"$W/sim$i.log" 2>&1 &
  sims+=("$!")
done
peak_broker=0
for ((t = 0; t < secs + 25; t++)); do
  running=0
  for p in "${sims[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
  ((running)) || break
  rss=$(ps -o rss= -p "$NW_MQTT_PID" 2>/dev/null || echo 0)
  ((rss > peak_broker)) && peak_broker=$rss
  sleep 1
done
rc=0
for p in "${sims[@]}"; do wait "$p" || rc=$?; done
sleep 1
kill -TERM "$sub" 2>/dev/null || true
wait "$sub" 2>/dev/null || true
for ((i = 0; i < shards; i++)); do
  grep -h "notice summary: devices=" "$W/sim$i.log" | sed 's/.*summary: //'
  cat "$W/time$i.txt"
done
echo "bare subscriber received $(wc -l <"$W/sub.txt") telemetry messages in the run"
echo "broker peak RSS ${peak_broker} KiB"
if [[ "$acker" == collector ]]; then
  tail -n 2 "$W/collector.log"
fi
exit "$rc"

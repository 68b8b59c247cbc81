#!/usr/bin/env bash
# integration.collector_scaleout: N ingest + M aggregate processes over tcp
# ZeroMQ (DESIGN §7), on loopback. Two ingest processes share the MQTT 5
# subscription ($share/nw/...); two aggregate processes hold three workers
# between them and write one SQLite store. Four agents replay sessions and
# must each end with every window stored exactly once; then one ingest
# process is killed with SIGKILL while agents run, and after the drain
# still nothing is lost or doubled.
# Usage: collector_scaleout.sh COLLECTOR AGENT
set -euo pipefail
collector=${1:?usage: collector_scaleout.sh COLLECTOR AGENT}
agent=${2:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers.sh
source "$here/servers.sh"

nw_require mosquitto sqlite3 python3
nw_make_workdir scaleout
nw_start_mosquitto "$NW_WORK" || exit 1
W=$NW_WORK
read -r pw0 pw1 pw2 pa0 pa1 <<<"$(nw_free_port 5 | tr '\n' ' ')"
workers="tcp://127.0.0.1:$pw0,tcp://127.0.0.1:$pw1,tcp://127.0.0.1:$pw2"
acks="tcp://127.0.0.1:$pa0,tcp://127.0.0.1:$pa1"
bg=()
nw_test_cleanup() { for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
common=(--set "collector.dead_letter=$W/dead.jsonl" --set store.flush=100ms)

aggregate() { # NAME LISTEN FIRST
  "$collector" --role aggregate -s "sqlite:$W/store.db" "${common[@]}" \
    --set "collector.listen=$2" --set "collector.first_worker=$3" --set collector.total_workers=3 \
    --set "collector.ack_to=$acks" --set "collector.state=$W/state-$1.db" \
    --set "collector.spool=$W/spool-$1" >>"$W/$1.log" 2>&1 &
  bg+=($!)
}
ingest() { # NAME ACK_PORT
  "$collector" --role ingest -b "$NW_MQTT_URL" "${common[@]}" --set collector.share_group=nw \
    --set "collector.client_id=ingest-$1" --set "collector.aggregate=$workers" \
    --set "collector.ack_listen=tcp://127.0.0.1:$2" >>"$W/$1.log" 2>&1 &
  bg+=($!)
  echo $! >"$W/$1.pid"
}
aggregate agg0 "tcp://127.0.0.1:$pw0,tcp://127.0.0.1:$pw1" 0
aggregate agg1 "tcp://127.0.0.1:$pw2" 2
ingest in0 "$pa0"
ingest in1 "$pa1"
sleep 1

q() { sqlite3 "$W/store.db" "$1"; }
exactly_once() {
  local r n distinct max min
  r=$(q "SELECT count(*), count(DISTINCT seq), coalesce(max(seq),0), coalesce(min(seq),0)
         FROM needle_window WHERE device='$1'")
  IFS='|' read -r n distinct max min <<<"$r"
  [[ "$n" == "$distinct" && "$n" == "$max" && "$min" == 1 && "$n" -ge "$2" ]] ||
    { echo "FAIL: $1: $n rows, $distinct distinct, seq $min..$max (want >= $2)"; exit 1; }
  echo "ok: $1: windows 1..$max exactly once"
}

echo "== 1. four agents through 2 ingest + 2 aggregate processes"
python3 - "$W/session.csv" <<'PY'
import sys, time
t0 = (int(time.time()) - 900) * 1000
with open(sys.argv[1], "w") as f:
    f.write(f"{t0},event,session_start,session_id=s-so,operator=OP-1\n")
    for i in range(401):
        f.write(f"{t0 + 100 * i},122,0.37,0.001\n")
    f.write(f"{t0 + 40000},event,session_end,session_id=s-so,reason=normal\n")
PY
pids=()
for d in 1 2 3 4; do
  timeout 90 "$agent" -d "DG-SO-$d" -s "replay:$W/session.csv" -b "$NW_MQTT_URL" -q "$W/q$d" \
    >"$W/agent$d.log" 2>&1 & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { tail "$W"/*.log; echo "FAIL: an agent was not fully acked"; exit 1; }; done
for d in 1 2 3 4; do exactly_once "DG-SO-$d" 40; done
for n in agg0 agg1; do
  grep -q "role aggregate" "$W/$n.log" || { echo "FAIL: $n did not start as aggregate"; exit 1; }
done
stored0=$(grep -c . "$W/agg0.log"); : "$stored0"

echo "== 2. an ingest process killed with SIGKILL under load"
pids=()
for d in 5 6; do
  "$agent" -d "DG-SO-$d" -s sim -b "$NW_MQTT_URL" -q "$W/q$d" --set agent.window=250ms \
    --set mqtt.ack_timeout=2s >"$W/agent$d.log" 2>&1 & pids+=($!); bg+=($!)
done
sleep 3
kill -9 "$(cat "$W/in0.pid")"
echo "ingest in0 killed"
sleep 3
for p in "${pids[@]}"; do kill -TERM "$p"; wait "$p" || true; done
: >"$W/empty.csv"
for d in 5 6; do
  timeout 60 "$agent" -d "DG-SO-$d" -s "replay:$W/empty.csv" -b "$NW_MQTT_URL" -q "$W/q$d" \
    --set mqtt.ack_timeout=2s >"$W/agent${d}b.log" 2>&1 ||
    { tail "$W/agent${d}b.log" "$W/in1.log"; echo "FAIL: DG-SO-$d not drained by the surviving ingest"; exit 1; }
  exactly_once "DG-SO-$d" 10
done
echo "1 passed, 0 failed"

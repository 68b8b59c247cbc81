#!/usr/bin/env bash
# integration.collector_curve: CURVE + ZAP between collector processes
# (DESIGN §7, §8; collector/zsec.h), on loopback.
#  1. Key handling: --curve-keygen writes NAME.key 0600 and NAME.pub and
#     never overwrites; collector.curve = on without a key, with a 0644
#     secret key, or with a wrong public key refuses to start (exit 2).
#  2. Two ingest + two aggregate processes over tcp ZeroMQ with
#     collector.curve = on, each with its own key pair, and an MQTT 5 shared
#     subscription: a simulated fleet ends fully acknowledged and the store
#     holds exactly the windows the sim made, each once.
#  3. zap_probe knocks at an aggregate worker endpoint: an allowed key gets
#     its window stored (positive control); an unknown CURVE key, NULL and
#     PLAIN are refused, never stored, counted in /metrics, and the process
#     keeps working.
#  4. An aggregate process without its ZAP handler (NW_TEST_ZAP_OFF=1)
#     refuses even an allowed key: it fails closed.
#  5. SIGTERM: all of them stop and exit 0 (the ZAP thread goes first).
# Usage: collector_curve.sh COLLECTOR SIM ZAP_PROBE
set -euo pipefail
collector=${1:?usage: collector_curve.sh COLLECTOR SIM ZAP_PROBE}
sim=${2:?}
probe=${3:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers.sh
source "$here/servers.sh"

nw_require mosquitto sqlite3 python3 curl
nw_make_workdir curve
nw_start_mosquitto "$NW_WORK" || exit 1
W=$NW_WORK
read -r pw0 pw1 pw2 pa0 pa1 ph0 ph1 ph2 ph3 pz phz <<<"$(nw_free_port 11 | tr '\n' ' ')"
workers="tcp://127.0.0.1:$pw0,tcp://127.0.0.1:$pw1,tcp://127.0.0.1:$pw2"
acks="tcp://127.0.0.1:$pa0,tcp://127.0.0.1:$pa1"
bg=()
nw_test_cleanup() { for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
fail() {
  echo "FAIL: $*"
  for f in "$W"/agg1.log "$W"/aggz.log; do [[ -f $f ]] && { echo "--- tail of $f"; tail -n 15 "$f"; }; done
  exit 1
}
# probe ARGS...: zap_probe, bounded (it gives up on a handshake after 5 s;
# a hang anywhere else must fail this test with a reason, not time it out).
probe() { timeout 30 "$probe" "$@" || echo "probe exit $?"; }
key() { grep -v '^#' "$1"; } # the Z85 line of a .pub file

echo "== 1. keys"
mkdir -p "$W/keys"
for n in in0 in1 agg0 agg1 aggz; do
  "$collector" --curve-keygen "$W/keys/$n" >"$W/keygen-$n.out" || fail "keygen $n"
done
[[ $(stat -c %a "$W/keys/in0.key") == 600 ]] || fail "in0.key is not mode 0600"
[[ $(key "$W/keys/in0.pub" | wc -c) == 41 ]] || fail "in0.pub is not one 40-character key"
grep -q -F -e "$(key "$W/keys/in0.pub")" "$W/keygen-in0.out" || fail "keygen did not print the public key"
if "$collector" --curve-keygen "$W/keys/in0" >"$W/keygen-again.out" 2>&1; then
  fail "keygen overwrote an existing key"
fi
grep -q "not overwritten" "$W/keygen-again.out" || fail "keygen: no clear refusal to overwrite"
echo "ok: key pairs made (secret 0600); an existing pair is never overwritten"

# Aggregates admit the ingest processes (and the probe's allowed key: in0's);
# ingest processes admit the aggregates. Clients map each endpoint to the
# public key of the process that binds it.
mkdir -p "$W/peers-agg" "$W/peers-in"
cp "$W/keys/in0.pub" "$W/keys/in1.pub" "$W/peers-agg/"
cp "$W/keys/agg0.pub" "$W/keys/agg1.pub" "$W/keys/aggz.pub" "$W/peers-in/"
{
  echo "# worker endpoints -> aggregate process keys"
  echo "tcp://127.0.0.1:$pw0 $(key "$W/keys/agg0.pub")"
  echo "tcp://127.0.0.1:$pw1 $(key "$W/keys/agg0.pub")"
  echo "tcp://127.0.0.1:$pw2 $(key "$W/keys/agg1.pub")"
  echo "tcp://127.0.0.1:$pz $(key "$W/keys/aggz.pub")"
} >"$W/servers-in"
{
  echo "tcp://127.0.0.1:$pa0 $(key "$W/keys/in0.pub")"
  echo "tcp://127.0.0.1:$pa1 $(key "$W/keys/in1.pub")"
} >"$W/servers-agg"

common=(--set "collector.dead_letter=$W/dead.jsonl" --set store.flush=100ms --set collector.curve=on)
curve() { # NAME PEERS SERVERS
  echo --set "collector.curve_secret_file=$W/keys/$1.key" --set "collector.curve_public_file=$W/keys/$1.pub" \
    --set "collector.curve_peers=$2" --set "collector.curve_server_key_file=$3"
}
# curve's words are paths without spaces (mktemp): split on purpose.
# shellcheck disable=SC2046
aggregate() { # NAME LISTEN FIRST HTTP [extra...]
  local name=$1 listen=$2 first=$3 http=$4
  shift 4
  "$collector" --role aggregate -s "sqlite:$W/store.db" "${common[@]}" \
    $(curve "$name" "$W/peers-agg" "$W/servers-agg") --http "127.0.0.1:$http" \
    --set "collector.listen=$listen" --set "collector.first_worker=$first" --set collector.total_workers=3 \
    --set "collector.ack_to=$acks" --set "collector.state=$W/state-$name.db" \
    --set "alerts.state=$W/alerts-$name.db" --set "collector.spool=$W/spool-$name" "$@" >>"$W/$name.log" 2>&1 &
  bg+=($!)
}
# shellcheck disable=SC2046
ingest() { # NAME ACK_PORT HTTP
  "$collector" --role ingest -b "$NW_MQTT_URL" "${common[@]}" --set collector.share_group=nw \
    $(curve "$1" "$W/peers-in" "$W/servers-in") --http "127.0.0.1:$3" \
    --set "collector.client_id=ingest-$1" --set "collector.aggregate=$workers" \
    --set "collector.ack_listen=tcp://127.0.0.1:$2" >>"$W/$1.log" 2>&1 &
  bg+=($!)
}
refuses_to_start() { # WHAT EXPECTED-TEXT ARGS...
  local what=$1 text=$2 rc=0
  shift 2
  timeout 20 "$collector" --role aggregate -s "sqlite:$W/refused.db" "${common[@]}" \
    --set "collector.listen=tcp://127.0.0.1:$pz" --set "collector.ack_to=$acks" \
    --set "collector.state=$W/state-refused.db" --set "alerts.state=$W/alerts-refused.db" \
    --set "collector.spool=$W/spool-refused" "$@" >"$W/refused.log" 2>&1 || rc=$?
  [[ $rc == 2 ]] || { cat "$W/refused.log"; fail "$what: exit $rc, expected 2"; }
  grep -q -- "$text" "$W/refused.log" || { cat "$W/refused.log"; fail "$what: no \"$text\" in the error"; }
  echo "ok: $what: exit 2, \"$text\""
}
refuses_to_start "curve on, no keys" "needs collector.curve_secret_file"
cp "$W/keys/agg1.key" "$W/open.key" && chmod 0644 "$W/open.key"
# shellcheck disable=SC2046
refuses_to_start "secret key mode 0644" "must be readable by its owner only" \
  $(curve agg1 "$W/peers-agg" "$W/servers-agg") --set "collector.curve_secret_file=$W/open.key"
# shellcheck disable=SC2046
refuses_to_start "public key of another pair" "is not the public key of" \
  $(curve agg1 "$W/peers-agg" "$W/servers-agg") --set "collector.curve_public_file=$W/keys/agg0.pub"
printf 'not-a-key\n' >"$W/bad.pub"
# shellcheck disable=SC2046
refuses_to_start "a peer file that is not a key" "a CURVE key is 40 Z85 characters" \
  $(curve agg1 "$W/bad.pub" "$W/servers-agg")
grep -q -F -e "$(key "$W/keys/agg1.key")" "$W"/refused.log && fail "a secret key was printed"

echo "== 2. a simulated fleet through 2 ingest + 2 aggregate processes, CURVE on"
aggregate agg0 "tcp://127.0.0.1:$pw0,tcp://127.0.0.1:$pw1" 0 "$ph0"
aggregate agg1 "tcp://127.0.0.1:$pw2" 2 "$ph1"
ingest in0 "$pa0" "$ph2"
ingest in1 "$pa1" "$ph3"
metric() { # HTTP-PORT NAME-WITH-LABELS: its value (0 if absent)
  { curl -sf --max-time 3 "http://127.0.0.1:$1/metrics" || true; } | awk -v m="$2" '$1 == m { print $2; f = 1 } END { if (!f) print 0 }'
}
for i in $(seq 1 100); do
  up=0
  for p in "$ph0" "$ph1" "$ph2" "$ph3"; do
    [[ $(metric "$p" nw_curve_enabled) == 1 ]] && up=$((up + 1))
  done
  ((up == 4)) && break
  ((i < 100)) || { tail "$W"/*.log; fail "the four processes did not come up with CURVE on"; }
  sleep 0.1
done
grep -q "CURVE on tcp:// pipeline sockets" "$W/agg0.log" || fail "agg0 did not log CURVE on"
"$sim" -b "$NW_MQTT_URL" -n 12 -m 3 --rate 10 --duration 8 --seed 23 --id-prefix cz- \
  --ack-timeout 3s --drain 30s >"$W/sim.log" 2>&1 || true
summary=$(grep "summary: devices=" "$W/sim.log" | tail -n 1)
[[ "$summary" == *" unacked=0 "* ]] || { tail "$W"/*.log; fail "the sim left records unacked: $summary"; }
made=$(sed -n 's/.* windows=\([0-9]*\) .*/\1/p' <<<"$summary")
counts=$(sqlite3 -separator ' ' "$W/store.db" \
  "SELECT device, count(*), count(DISTINCT seq), max(seq) FROM needle_window
   WHERE device LIKE 'cz-%' GROUP BY device")
python3 - "$made" "$counts" <<'PY'
import sys
made, rows = int(sys.argv[1]), [l.split() for l in sys.argv[2].strip().splitlines()]
if len(rows) != 12:
    sys.exit(f"FAIL: {len(rows)} devices in the store, expected 12")
total = 0
for dev, n, distinct, top in rows:
    if not (n == distinct == top):
        sys.exit(f"FAIL: {dev}: {n} rows, {distinct} distinct seqs, max {top}: not exactly once")
    total += int(n)
if total != made:
    sys.exit(f"FAIL: {total} windows stored, the sim made {made}")
print(f"ok: {total} windows of 12 devices stored exactly once, all the sim made, over CURVE")
PY
for p in "$ph0" "$ph1" "$ph2" "$ph3"; do
  a=$(metric "$p" nw_curve_peers_accepted_total)
  ((a >= 1)) || fail "process on http $p counted no accepted CURVE peer"
done
echo "ok: every process accepted its peers over CURVE (nw_curve_peers_accepted_total)"

echo "== 3. probes at agg1's worker endpoint (tcp://127.0.0.1:$pw2)"
ep="tcp://127.0.0.1:$pw2"
stored() { sqlite3 "$W/store.db" "SELECT count(*) FROM needle_window WHERE device='$1'"; }
# refused R1[+R2]: the sum of the refusal counters named. A NULL or PLAIN
# peer is counted as "mechanism", or as "handshake" when it hangs up before
# libzmq has matched the mechanisms (a race of the peer, not of ours).
refused() {
  local sum=0 r
  for r in ${1//+/ }; do
    sum=$((sum + $(metric "$ph1" "nw_curve_peers_refused_total{reason=\"$r\"}")))
  done
  echo "$sum"
}
out=$(probe "$ep" PROBE-OK curve "$W/keys/in0.key" "$W/keys/in0.pub" "$W/servers-in")
[[ $out == accepted ]] || fail "the allowed key was not accepted: $out"
for i in $(seq 1 50); do [[ $(stored PROBE-OK) == 1 ]] && break; sleep 0.1; done
[[ $(stored PROBE-OK) == 1 ]] || fail "the allowed probe's window was not stored"
echo "ok: positive control: an allowed key's window is stored"
mal() { metric "$ph1" 'nw_rejected_total{reason="malformed"}'; }
before=$(mal)
out=$(NW_PROBE_LYING_BATCH=1 probe "$ep" PROBE-LIE curve "$W/keys/in0.key" "$W/keys/in0.pub" "$W/servers-in")
[[ $out == accepted ]] || fail "the lying batch's probe was not accepted: $out"
for i in $(seq 1 50); do [[ $(stored PROBE-LIE) == 1 ]] && break; sleep 0.1; done
[[ $(stored PROBE-LIE) == 1 ]] || fail "the lying batch's real message was not stored"
for i in $(seq 1 50); do [[ $(mal) == $((before + 2)) ]] && break; sleep 0.1; done
[[ $(mal) == $((before + 2)) ]] || fail "the NaN window and the missing message of a lying batch were not both rejected as malformed ($before -> $(mal))"
grep -q -e "an input batch ends after 2 of its 3 messages" "$W/agg1.log" || fail "the lying batch was not logged"
grep -q -e "an input record was refused as malformed (windows that do not validate)" "$W/agg1.log" ||
  fail "the NaN window was not logged"
echo "ok: a batch claiming more messages than it holds, one a NaN window: the real one stored, the other two rejected as malformed and logged"
probe_refused() { # MODE DEVICE REASON
  local before out after
  before=$(refused "$3")
  out=$(probe "$ep" "$2" "$1" "" "" "$W/servers-in")
  [[ $out == refused* ]] || fail "$1 was not refused: $out"
  local deadline=$((SECONDS + 20))
  while ((SECONDS < deadline)); do # the socket monitor reports asynchronously
    after=$(refused "$3")
    ((after > before)) && break
    sleep 0.1
  done
  ((after > before)) || fail "$1: nw_curve_peers_refused_total{reason=\"$3\"} stayed $before"
  echo "ok: $1 refused ($out), counted as $3 ($before -> $after)"
}
probe_refused curve-unknown PROBE-UNKNOWN unknown_key
probe_refused null PROBE-NULL mechanism+handshake
probe_refused plain PROBE-PLAIN mechanism+handshake
grep -q "refused CURVE public key" "$W/agg1.log" || fail "agg1 did not log the refused key"
n=$(grep -c "refused CURVE public key" "$W/agg1.log")
((n == 1)) || fail "the refused key was logged $n times (once a minute expected)"
sleep 1
for d in PROBE-UNKNOWN PROBE-NULL PROBE-PLAIN; do
  [[ $(stored "$d") == 0 ]] || fail "$d reached the store"
done
echo "ok: nothing of the refused probes reached the store"
for p in "${bg[@]}"; do kill -0 "$p" || fail "a collector process died"; done
"$sim" -b "$NW_MQTT_URL" -n 2 -m 1 --rate 10 --duration 3 --seed 29 --id-prefix cz2- \
  --ack-timeout 3s --drain 20s >"$W/sim2.log" 2>&1 || true
summary=$(grep "summary: devices=" "$W/sim2.log" | tail -n 1)
[[ "$summary" == *" unacked=0 "* ]] || fail "after the probes, a fleet was not fully acked: $summary"
echo "ok: all four processes still run and a new fleet is stored and acked"
for k in "$W"/keys/*.key; do
  grep -q -F -e "$(key "$k")" "$W"/*.log && fail "secret key $k appears in a log"
done
echo "ok: no secret key in any log"

echo "== 4. no ZAP handler: fail closed"
export NW_TEST_ZAP_OFF=1 # tests only: the collector starts no ZAP handler
aggregate aggz "tcp://127.0.0.1:$pz" 0 "$phz" --set collector.total_workers=1 \
  --set "collector.ack_to=tcp://127.0.0.1:$pa0" -s "sqlite:$W/storez.db"
unset NW_TEST_ZAP_OFF
for i in $(seq 1 100); do
  [[ $(metric "$phz" nw_curve_enabled) == 1 ]] && break
  ((i < 100)) || { tail "$W/aggz.log"; fail "aggz did not come up"; }
  sleep 0.1
done
[[ $(metric "$phz" nw_curve_zap_handler) == 0 ]] || fail "aggz reports a ZAP handler"
out=$(probe "tcp://127.0.0.1:$pz" PROBE-NOZAP curve "$W/keys/in0.key" "$W/keys/in0.pub" "$W/servers-in")
[[ $out == refused* ]] || fail "without a ZAP handler an allowed key was accepted: $out"
sleep 1
[[ $(sqlite3 "$W/storez.db" "SELECT count(*) FROM needle_window WHERE device='PROBE-NOZAP'" 2>/dev/null || echo 0) == 0 ]] ||
  fail "PROBE-NOZAP was stored"
nz=$(metric "$phz" 'nw_curve_peers_refused_total{reason="no_zap_handler"}')
((nz >= 1)) || fail "aggz did not count the refusal as no_zap_handler"
[[ $(metric "$phz" nw_curve_peers_accepted_total) == 0 ]] || fail "aggz accepted a peer"
echo "ok: without its ZAP handler even an allowed key is refused ($out), counted ($nz)"
echo "-- what agg1 and aggz logged about refusals:"
grep -h "zsec" "$W/agg1.log" "$W/aggz.log" | cut -c1-200

echo "== 5. SIGTERM: every process stops cleanly with its ZAP thread"
for p in "${bg[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${bg[@]}"; do
  for i in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && fail "pid $p still runs 15 s after SIGTERM"
  rc=0; wait "$p" || rc=$?
  [[ $rc == 0 ]] || fail "pid $p exited $rc after SIGTERM"
done
bg=()
echo "ok: all five processes exited 0"
echo "1 passed, 0 failed"

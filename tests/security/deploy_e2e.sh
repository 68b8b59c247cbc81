#!/usr/bin/env bash
# security.deploy_e2e: the real needlewatch-agent and needlewatch-collector
# through the shipped broker deployment (TLS + client certificates for the
# device, password file for the collector on loopback, ACL, client-id
# plugin):
#   - the agent's windows are stored and acknowledged end to end;
#   - a payload whose device id differs from the topic (DG-A's own topic,
#     the ACL allows it) is refused by the collector and counted;
#   - no credential (the collector's password, private keys) appears in any
#     process's command line (ps), in the broker's, collector's or agent's
#     log, or in --help.
# Usage: deploy_e2e.sh PLUGIN_SO AGENT COLLECTOR PROTO_DIR
set -euo pipefail
plugin=${1:?usage: deploy_e2e.sh PLUGIN_SO AGENT COLLECTOR PROTO_DIR}
agent=${2:?}
collector=${3:?}
proto_dir=${4:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../integration/servers.sh
source "$here/../integration/servers.sh"
# shellcheck source=seclib.sh
source "$here/seclib.sh"

nw_require sqlite3 curl protoc python3
sec_setup deploy-e2e "$plugin"
W=$NW_WORK
http_port=$(nw_free_port)

printf '%s\n%s\n' "$SEC_COLLECTOR_USER" "$SEC_COLLECTOR_PW" >"$W/collector.credentials"
chmod 0600 "$W/collector.credentials"
printf 'device,clinic,model\nDG-A,Clinic A,DG-3\nDG-B,Clinic B,DG-3\n' >"$W/inventory.csv"

"$collector" -b "mqtt://127.0.0.1:$SEC_PLAIN_PORT" -s "sqlite:$W/store.db" -i "$W/inventory.csv" \
  --http "127.0.0.1:$http_port" --set "mqtt.credentials_file=$W/collector.credentials" \
  --set collector.client_id=needlewatch-collector --set store.flush=100ms \
  --set "collector.state=$W/state.db" --set "collector.spool=$W/spool" \
  --set "collector.dead_letter=$W/dead.jsonl" --set "alerts.state=$W/alerts.db" \
  >"$W/collector.log" 2>&1 &
SEC_BG+=($!)
metrics() { curl -sf "http://127.0.0.1:$http_port/metrics"; }
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null ||
  sec_fail "collector not up with the password file on the loopback listener ($(tail -3 "$W/collector.log"))"
sec_pass "collector connected to the loopback listener with its password file"

"$agent" -d DG-A -s sim -b "mqtts://127.0.0.1:$SEC_TLS_PORT" -q "$W/agent-DG-A" \
  --set "mqtt.ca_file=$SEC_PKI/ca.pem" --set "mqtt.cert_file=$SEC_PKI/devices/DG-A.pem" \
  --set "mqtt.key_file=$SEC_PKI/devices/DG-A.key" --set agent.window=200ms \
  >"$W/agent.log" 2>&1 &
SEC_BG+=($!)

stored=0
for _ in $(seq 150); do
  stored=$(sqlite3 "$W/store.db" "SELECT count(*) FROM needle_window WHERE device='DG-A'" 2>/dev/null || echo 0)
  acks=$(metrics | sed -n 's/^nw_acks_sent_total \([0-9]*\)$/\1/p')
  [ "${stored:-0}" -ge 10 ] && [ "${acks:-0}" -ge 1 ] && break
  sleep 0.1
done
[ "${stored:-0}" -ge 10 ] && [ "${acks:-0}" -ge 1 ] ||
  sec_fail "agent over TLS: $stored windows stored, ${acks:-0} acks ($(tail -3 "$W/agent.log"))"
sec_pass "agent DG-A over TLS with its certificate: $stored windows stored, $acks acks sent"

# A payload naming DG-B on DG-A's own topic (allowed by the ACL).
protoc --proto_path="$proto_dir" --python_out="$W" needlewatch.proto
PYTHONPATH="$W" /usr/bin/python3 - "$W" <<'PY'
import sys, time
import needlewatch_pb2 as pb
m = pb.WindowBatch(device_id="DG-B", epoch=7)
now = int(time.time() * 1000)
m.windows.add(seq=1, start_ms=now - 1000, duration_ms=1000, cycles=120, running_ms=1000,
              rate_mean_hz=120, rate_min_hz=120, rate_max_hz=120, depth_mean_mm=0.4,
              depth_min_mm=0.4, depth_max_mm=0.4, session_id="", cartridge_id="",
              pigment_lot="")
open(sys.argv[1] + "/spoof.bin", "wb").write(m.SerializeToString())
PY
before=$(metrics | sed -n 's/^nw_rejected_total{reason="id_mismatch"} \([0-9]*\)$/\1/p')
dev_pub DG-A needlewatch/v1/DG-A/telemetry "" -f "$W/spoof.bin" -q 1 ||
  sec_fail "DG-A could not publish on its own telemetry topic"
for _ in $(seq 50); do
  after=$(metrics | sed -n 's/^nw_rejected_total{reason="id_mismatch"} \([0-9]*\)$/\1/p')
  [ "$after" -gt "$before" ] && break
  sleep 0.1
done
[ "$after" -gt "$before" ] || {
  metrics | grep -E '^nw_(rejected|messages_in)' | grep -v ' 0$' >&2
  sec_fail "spoofed payload not counted as id_mismatch ($before -> $after)"
}
n=$(sqlite3 "$W/store.db" "SELECT count(*) FROM needle_window WHERE device='DG-B'")
[ "$n" = 0 ] || sec_fail "a window of DG-B was stored from DG-A's topic"
sec_pass "payload naming DG-B on DG-A's topic refused (id_mismatch), nothing stored for DG-B"

# No credential in command lines, logs or --help.
secrets=("$SEC_COLLECTOR_PW")
key_line=$(grep -v -- '-----' "$SEC_PKI/devices/DG-A.key" | head -n 1)
secrets+=("$key_line")
ps -eo args >"$W/ps.txt"
grep -q "$SEC_COLLECTOR_PW" "$W/collector.credentials" || sec_fail "control: password not in its file"
for s in "${secrets[@]}"; do
  for f in "$W/ps.txt" "$SEC_LOG" "$W/collector.log" "$W/agent.log"; do
    if grep -qF -- "$s" "$f"; then sec_fail "a credential appears in ${f##*/}"; fi
  done
  for bin in "$agent" "$collector"; do
    if "$bin" --help | grep -qF -- "$s"; then sec_fail "a credential appears in ${bin##*/} --help"; fi
  done
done
grep -q -- "mqtts://127.0.0.1:$SEC_TLS_PORT" "$W/ps.txt" || sec_fail "control: ps does not show the agent"
sec_pass "no password or private key in ps, the three logs or --help"

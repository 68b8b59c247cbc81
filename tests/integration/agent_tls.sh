#!/usr/bin/env bash
# integration.agent_tls: needlewatch-agent over mqtts:// to a real mosquitto
# TLS listener that requires a client certificate (CN = device id), with a
# CA made here by openssl. The agent with its certificate delivers a
# replayed session end to end; without a client certificate it never
# connects, and says so once.
# Usage: agent_tls.sh AGENT ACK_ECHO
set -euo pipefail
agent=${1:?usage: agent_tls.sh AGENT ACK_ECHO}
echo_bin=${2:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers.sh
source "$here/servers.sh"

nw_require mosquitto openssl python3
nw_make_workdir agent-tls
W=$NW_WORK
pki=$W/pki
mkdir -p "$pki"
bg=()
nw_test_cleanup() { for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }

# A CA, the broker's certificate for 127.0.0.1, a device certificate.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=needlewatch test CA" \
  -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
cert() { # NAME CN [EXT]
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 ${3:+-extfile "$3"} -out "$pki/$1.pem" 2>/dev/null
}
printf 'subjectAltName=IP:127.0.0.1\n' >"$pki/san.ext"
cert broker 127.0.0.1 "$pki/san.ext"
cert device DG-TLS-1

nw_start_mosquitto "$W" || exit 1
tls_port=$(nw_free_port 1)
cat >>"$NW_MQTT_CONF" <<CONF
listener $tls_port 127.0.0.1
cafile $pki/ca.pem
certfile $pki/broker.pem
keyfile $pki/broker.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
CONF
nw_restart mosquitto || exit 1

"$echo_bin" "$NW_MQTT_URL" "$W/acks.txt" & bg+=($!)
python3 - "$W/session.csv" <<'PY'
import sys, time
t0 = (int(time.time()) - 300) * 1000
with open(sys.argv[1], "w") as f:
    f.write(f"{t0},event,session_start,session_id=s-tls,operator=OP-3\n")
    for i in range(301):
        f.write(f"{t0 + 100 * i},118,0.36,0.001\n")
    f.write(f"{t0 + 30000},event,session_end,session_id=s-tls,reason=normal\n")
PY
tls=(--set "mqtt.ca_file=$pki/ca.pem" --set "mqtt.cert_file=$pki/device.pem" --set "mqtt.key_file=$pki/device.key")
timeout 60 "$agent" -d DG-TLS-1 -s "replay:$W/session.csv" -b "mqtts://127.0.0.1:$tls_port" \
  -q "$W/q1" "${tls[@]}" >"$W/agent1.log" 2>&1 ||
  { cat "$W/agent1.log"; echo "FAIL: the agent with its certificate did not deliver over TLS"; exit 1; }
n=$(grep -c "^W DG-TLS-1 " "$W/acks.txt")
[[ $n == 30 ]] || { echo "FAIL: $n windows over TLS, expected 30"; exit 1; }
echo "ok: 30 windows delivered and acknowledged over mqtts:// with a client certificate"

timeout 5 "$agent" -d DG-TLS-1 -s sim -b "mqtts://127.0.0.1:$tls_port" -q "$W/q2" \
  --set "mqtt.ca_file=$pki/ca.pem" >"$W/agent2.log" 2>&1 || true
if grep -q "connected to" "$W/agent2.log"; then
  echo "FAIL: connected without a client certificate"; exit 1
fi
[[ $(grep -c "queueing on disk" "$W/agent2.log") -le 1 ]] || { echo "FAIL: one line per retry"; exit 1; }
echo "ok: refused without a client certificate"
echo "1 passed, 0 failed"

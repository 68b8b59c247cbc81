#!/usr/bin/env bash
# security.clientid_takeover: a device with a valid certificate cannot take
# another device's client id and so disconnect it (DESIGN section 8). The
# nw_clientid plugin refuses, and the real device stays connected.
#
#   1. DG-B is connected (subscribed to its acks). DG-A, with its own valid
#      certificate, connects with client id DG-B: refused (0x87); DG-B's
#      connection is untouched (no takeover in the broker log, its
#      subscriber still runs and still receives the next ack).
#   2. Controls: DG-A as DG-A connects; the collector account connects with
#      client ids under its exempt prefix.
#   3. Also refused: DG-A sending username DG-B; DG-A claiming a collector
#      client id; the collector account claiming DG-B.
#   4. The attack is real: against the same config with mosquitto's own
#      use_identity_as_username true (which skips every auth plugin), the
#      same connection disconnects DG-B. This is what step 1 would see
#      without the plugin - the test can fail.
# Usage: clientid_takeover.sh PLUGIN_SO
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../integration/servers.sh
source "$here/../integration/servers.sh"
# shellcheck source=seclib.sh
source "$here/seclib.sh"
sec_setup sec-takeover "${1:?usage: clientid_takeover.sh PLUGIN_SO}"
W=$NW_WORK
P=needlewatch/v1
TAKEOVER='already connected, closing old connection'

# connect_b FILE: DG-B subscribed to its own acks, waited for with acks.
connect_b()
{
    local out=$1 i
    dev_sub_bg DG-B "$out" "$P/DG-B/ack"
    B_PID=${SEC_BG[-1]}
    for i in $(seq 50); do
        col_pub "$P/DG-B/ack" "ready-$i" >/dev/null 2>&1 || true
        wait_for_line "$out" " ready-$i\$" 0.2 && return 0
    done
    sec_fail "DG-B never received its acks"
}

# b_still_connected FILE LABEL: DG-B's subscriber runs, the broker logged no
# takeover, and an ack published now still reaches it.
b_still_connected()
{
    local out=$1 label=$2
    kill -0 "$B_PID" 2>/dev/null || sec_fail "$label: DG-B's connection is gone"
    if grep -q "DG-B $TAKEOVER" "$SEC_LOG"; then
        sec_fail "$label: the broker disconnected DG-B ($TAKEOVER)"
    fi
    col_pub "$P/DG-B/ack" "after-$label" >/dev/null || sec_fail "collector ack publish failed"
    wait_for_line "$out" " after-$label\$" 5 || sec_fail "$label: DG-B no longer receives its acks"
}

connect_b "$W/b.txt"
sec_pass "DG-B connected with its certificate and receives its acks"

# 1. DG-A claims DG-B's client id.
if dev_pub DG-A "$P/DG-A/telemetry" takeover -i DG-B >"$W/a-as-b.out" 2>&1; then
    sec_fail "DG-A connected with client id DG-B"
fi
grep -q 'Not authorized' "$W/a-as-b.out" || sec_fail "DG-A as DG-B: not a 'not authorized' refusal: $(cat "$W/a-as-b.out")"
grep -q "nw_clientid: refused client id 'DG-B' .*differs from certificate CN 'DG-A'" "$SEC_LOG" ||
    sec_fail "the plugin did not log the refusal with its reason"
b_still_connected "$W/b.txt" takeover
sec_pass "DG-A's certificate with client id DG-B is refused (0x87); DG-B stays connected"

# 2. Controls: the same certificate under its own id, the collector's ids.
dev_pub DG-A "$P/DG-A/telemetry" own-id >"$W/a.out" 2>&1 ||
    sec_fail "DG-A with its own client id was refused: $(cat "$W/a.out")"
col_pub "$P/DG-B/ack" exempt -i needlewatch-collector-7 >"$W/c7.out" 2>&1 ||
    sec_fail "collector with client id needlewatch-collector-7 refused: $(cat "$W/c7.out")"
wait_for_line "$W/b.txt" " exempt\$" 5 || sec_fail "ack from needlewatch-collector-7 not delivered"
sec_pass "controls: DG-A as DG-A connects; the collector connects as needlewatch-collector-7"

# 3. More claims that must fail, each leaving DG-B connected.
claim()
{
    local label=$1
    shift
    if "$@" >"$W/claim.out" 2>&1; then
        sec_fail "$label: connected"
    fi
    grep -q 'Not authorized' "$W/claim.out" || sec_fail "$label: $(cat "$W/claim.out")"
    b_still_connected "$W/b.txt" "${label// /-}"
    sec_pass "refused: $label; DG-B stays connected"
}
claim "DG-A's certificate with username DG-B" dev_pub DG-A "$P/DG-A/telemetry" x -u DG-B
claim "DG-A's certificate with a collector client id" \
    dev_pub DG-A "$P/DG-A/telemetry" x -i needlewatch-collector-sub
claim "the collector account with client id DG-B" col_pub "$P/DG-B/ack" x -i DG-B
if grep -q "$SEC_COLLECTOR_PW" "$SEC_LOG"; then
    sec_fail "the collector's password appears in the broker log"
fi

# 4. The same attack against mosquitto's own certificate mapping.
sec_stop_bg
nw_stop mosquitto
sed -e 's/^use_identity_as_username false$/use_identity_as_username true/' "$SEC_CONF" >"$W/variant.conf"
grep -q '^use_identity_as_username true$' "$W/variant.conf" || sec_fail "variant config"
SEC_LOG=$W/variant.log
_nw_start mosquitto "$SEC_LOG" _nw_tcp_open "$SEC_PLAIN_PORT" -- mosquitto -c "$W/variant.conf" ||
    sec_fail "variant broker did not start"
_nw_wait_until "${NW_PIDS[-1]}" "$SEC_LOG" mosquitto _nw_tcp_open "$SEC_TLS_PORT" ||
    sec_fail "variant TLS listener"
connect_b "$W/b2.txt"
dev_pub DG-A "$P/DG-A/telemetry" takeover -i DG-B >"$W/variant-a.out" 2>&1 || true
wait_for_line "$SEC_LOG" "DG-B $TAKEOVER" 5 ||
    sec_fail "control: without the plugin's check the takeover did not happen either - the test above proves nothing"
grep -q "u'DG-A'" "$SEC_LOG" || sec_fail "control: the takeover was not by DG-A"
sec_pass "control: with use_identity_as_username true (plugin skipped) DG-A's certificate does disconnect DG-B"

echo "$SEC_PASSED passed, 0 failed"

#!/usr/bin/env bash
# security.device_acl: what a device with a valid certificate may publish and
# receive, against the shipped broker config, ACL and plugin.
#
#   - its telemetry, events and status reach the collector (the control);
#   - a publish under another device's id is refused with 0x87 and never
#     reaches the collector; nor do its writes to its own ack/alert topics
#     (only the collector writes those);
#   - it receives its own ack but never another device's, whatever filter
#     it subscribes with (the exact topic, +, #);
#   - a payload over max_packet_size is refused, one just under it passes.
#
# Each refusal is judged behind a barrier: after the refused publish the
# same device publishes a marker it may publish, and the collector's
# subscription must show the marker and not the refused message (the broker
# processes one client's packets in order).
# Usage: device_acl.sh PLUGIN_SO
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../integration/servers.sh
source "$here/../integration/servers.sh"
# shellcheck source=seclib.sh
source "$here/seclib.sh"
sec_setup sec-acl "${1:?usage: device_acl.sh PLUGIN_SO}"
W=$NW_WORK
P=needlewatch/v1

col_sub_bg "$W/col.txt" "$P/+/+"
# Barrier: the collector's subscription is live once a marker arrives.
for _ in $(seq 50); do
    dev_pub DG-A "$P/DG-A/event" sub-ready 2>/dev/null || true
    wait_for_line "$W/col.txt" " sub-ready$" 0.2 && break
done
wait_for_line "$W/col.txt" " sub-ready$" 1 || sec_fail "collector subscription never became live"

# pub_as ID TOPIC MSG: publish and remember whether the broker refused it.
pub_as()
{
    dev_pub "$@" 2>"$W/pub.err" || {
        cat "$W/pub.err"
        return 1
    }
    if grep -q 'Not authorized' "$W/pub.err"; then
        return 2
    fi
    return 0
}

# 1. own topics: the control.
for kind in telemetry event status; do
    pub_as DG-A "$P/DG-A/$kind" "own-$kind" || sec_fail "DG-A could not publish its own $kind"
    wait_for_line "$W/col.txt" "^$P/DG-A/$kind own-$kind\$" 5 ||
        sec_fail "collector did not receive DG-A's $kind"
done
sec_pass "a device publishes its own telemetry, event and status; the collector receives them"

# 2. another device's topics, and its own collector-only topics.
n=0
for topic in "$P/DG-B/telemetry" "$P/DG-B/event" "$P/DG-B/status" "$P/DG-A/ack" "$P/DG-A/alert" \
    "$P/DG-A/telemetry/extra" "needlewatch/v2/DG-A/telemetry"; do
    n=$((n + 1))
    rc=0
    pub_as DG-A "$topic" "spoof-$n" || rc=$?
    if [[ $rc != 2 ]]; then
        sec_fail "publish by DG-A to $topic was not refused with 'Not authorized' (rc $rc)"
    fi
    pub_as DG-A "$P/DG-A/telemetry" "marker-$n" || sec_fail "marker $n refused"
    wait_for_line "$W/col.txt" " marker-$n\$" 5 || sec_fail "marker $n never arrived"
    if grep -q " spoof-$n\$" "$W/col.txt"; then
        sec_fail "the collector received DG-A's publish to $topic"
    fi
done
sec_pass "a device cannot publish under another device's id, nor to its own ack/alert (0x87, nothing delivered)"

# 3. acks: DG-A subscribes with every filter it might try; DG-B with its own.
dev_sub_bg DG-A "$W/a.txt" "$P/DG-B/ack" -t "$P/+/ack" -t '#' -t "$P/DG-A/ack"
dev_sub_bg DG-B "$W/b.txt" "$P/DG-B/ack"
for i in $(seq 50); do
    col_pub "$P/DG-A/ack" "ack-a-ready-$i" >/dev/null 2>&1 || true
    col_pub "$P/DG-B/ack" "ack-b-ready-$i" >/dev/null 2>&1 || true
    wait_for_line "$W/a.txt" "ack-a-ready" 0.2 && wait_for_line "$W/b.txt" "ack-b-ready" 0.2 && break
done
col_pub "$P/DG-B/ack" ack-for-b || sec_fail "collector could not publish DG-B's ack"
col_pub "$P/DG-A/ack" ack-for-a || sec_fail "collector could not publish DG-A's ack"
wait_for_line "$W/b.txt" "^$P/DG-B/ack ack-for-b\$" 5 || sec_fail "DG-B did not receive its own ack"
wait_for_line "$W/a.txt" "^$P/DG-A/ack ack-for-a\$" 5 || sec_fail "DG-A did not receive its own ack"
if grep -q "DG-B" "$W/a.txt"; then
    cat "$W/a.txt"
    sec_fail "DG-A received DG-B's ack"
fi
sec_pass "a device receives its own acks, never another device's (exact, + and # filters)"

# 4. size limit: 255 KiB passes, 300 KiB is refused (the client is
# disconnected), and the collector sees only the first.
head -c $((255 * 1024)) /dev/zero | tr '\0' 'x' >"$W/ok.bin"
head -c $((300 * 1024)) /dev/zero | tr '\0' 'y' >"$W/big.bin"
dev_pub DG-A "$P/DG-A/telemetry" "" -f "$W/ok.bin" 2>/dev/null ||
    sec_fail "a 255 KiB publish was refused"
rc=0
dev_pub DG-A "$P/DG-A/telemetry" "" -f "$W/big.bin" 2>/dev/null || rc=$?
pub_as DG-A "$P/DG-A/telemetry" marker-size || sec_fail "marker after the big message refused"
wait_for_line "$W/col.txt" " marker-size\$" 5 || sec_fail "size marker never arrived"
grep -q "^$P/DG-A/telemetry xxxx" "$W/col.txt" || sec_fail "the 255 KiB message did not arrive"
if grep -q "^$P/DG-A/telemetry yyyy" "$W/col.txt"; then
    sec_fail "a 300 KiB message passed max_packet_size (mosquitto_pub rc $rc)"
fi
sec_pass "a message over max_packet_size is refused; one under it passes"

echo "$SEC_PASSED passed, 0 failed"

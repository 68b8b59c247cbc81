#!/usr/bin/env bash
# security.password_auth: the loopback listener of the shipped config, where
# the local collector logs in with a username and password from the
# password file, and what may leak credentials.
#
#   control   the collector account with its password subscribes to every
#             device's topics and publishes acks
#   refused   a wrong password, an unknown user, no credentials at all, a
#             device id without a password, the collector's password on the
#             TLS port without a certificate
#   ACL       the collector may not publish a device's telemetry
#   bound     the plain listener listens on 127.0.0.1 only
#   secrets   neither the right nor the wrong password appears in the
#             broker's log, in the password file, or in any process's
#             command line while the collector's client runs
# Usage: password_auth.sh PLUGIN_SO
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../integration/servers.sh
source "$here/../integration/servers.sh"
# shellcheck source=seclib.sh
source "$here/seclib.sh"
sec_setup sec-passwd "${1:?usage: password_auth.sh PLUGIN_SO}"
W=$NW_WORK
P=needlewatch/v1
WRONG="wrong-$(openssl rand -hex 8)"

# The plain listener is bound to loopback only.
ss -Hltn "sport = :$SEC_PLAIN_PORT" >"$W/ss.txt"
grep -q "127.0.0.1:$SEC_PLAIN_PORT" "$W/ss.txt" || sec_fail "plain listener not on 127.0.0.1: $(cat "$W/ss.txt")"
if grep -qE "(0\.0\.0\.0|\*|\[::\]):$SEC_PLAIN_PORT" "$W/ss.txt"; then
    sec_fail "plain listener on a wildcard address: $(cat "$W/ss.txt")"
fi
grep -q '^listener 1883 127.0.0.1$' "$SEC_REPO/deploy/mosquitto/needlewatch.conf" ||
    sec_fail "deploy config: the plain listener is not 'listener 1883 127.0.0.1'"
sec_pass "the plain listener (1883 in the deploy config) is bound to 127.0.0.1 only"

# Control: the collector's account (credentials from its options file).
col_sub_bg "$W/col.txt" "$P/+/+"
for _ in $(seq 50); do
    dev_pub DG-A "$P/DG-A/event" sub-ready 2>/dev/null || true
    wait_for_line "$W/col.txt" " sub-ready$" 0.2 && break
done
wait_for_line "$W/col.txt" " sub-ready$" 1 || sec_fail "collector could not subscribe with its password"
dev_sub_bg DG-A "$W/a.txt" "$P/DG-A/ack"
for i in $(seq 50); do
    col_pub "$P/DG-A/ack" "ack-$i" >/dev/null 2>&1 || sec_fail "collector could not publish an ack"
    wait_for_line "$W/a.txt" " ack-$i\$" 0.2 && break
done
wait_for_line "$W/a.txt" " ack-" 1 || sec_fail "DG-A never received the collector's ack"
sec_pass "control: the collector account logs in on loopback, reads device topics, publishes acks"

# While the collector's clients run: no password on any command line.
ps -eo args >"$W/ps.txt"
if grep -qF "$SEC_COLLECTOR_PW" "$W/ps.txt"; then
    sec_fail "the collector's password is visible in ps"
fi
grep -q "mosquitto_sub .*-p $SEC_PLAIN_PORT" "$W/ps.txt" || sec_fail "ps check saw no collector client"
sec_pass "the password is on no command line (ps) while the collector's client runs"

# refused LABEL CMD...: CMD (a publish of bad-N to DG-A's ack) must fail
# with "not authorised", and DG-A must not receive bad-N; a control ack
# published afterwards must arrive.
n=0
refused()
{
    local label=$1
    shift
    n=$((n + 1))
    if "$@" -t "$P/DG-A/ack" -m "bad-$n" >"$W/bad.out" 2>&1; then
        sec_fail "$label: connected and published"
    fi
    col_pub "$P/DG-A/ack" "good-$n" >/dev/null || sec_fail "control ack $n"
    wait_for_line "$W/a.txt" " good-$n\$" 5 || sec_fail "control ack $n never arrived"
    if grep -q " bad-$n\$" "$W/a.txt"; then
        sec_fail "$label: the message was delivered"
    fi
    sec_pass "refused: $label ($(tr '\n' ' ' <"$W/bad.out" | cut -c1-60))"
}
plain() { timeout 10 mosquitto_pub -V mqttv5 -q 1 -h 127.0.0.1 -p "$SEC_PLAIN_PORT" "$@"; }
# A wrong password goes through an options file as the right one does.
mkdir -p "$W/wrong-cfg"
printf -- '-u %s\n-P %s\n' "$SEC_COLLECTOR_USER" "$WRONG" >"$W/wrong-cfg/mosquitto_pub"
refused "the collector account with a wrong password" \
    env XDG_CONFIG_HOME="$W/wrong-cfg" timeout 10 mosquitto_pub -V mqttv5 -q 1 -h 127.0.0.1 \
    -p "$SEC_PLAIN_PORT" -i "$SEC_COLLECTOR_USER"
refused "an unknown user" plain -u needlewatch-intruder -P "$WRONG" -i needlewatch-intruder
refused "no credentials" plain -i needlewatch-collector
refused "a device id without a password" plain -u DG-A -i DG-A
refused "the collector's password on the TLS port without a certificate" \
    env XDG_CONFIG_HOME="$NW_WORK/collector-cfg" timeout 10 mosquitto_pub -V mqttv5 -q 1 \
    -h 127.0.0.1 -p "$SEC_TLS_PORT" --cafile "$SEC_PKI/ca.pem" -i "$SEC_COLLECTOR_USER"

# The collector account may not write a device's telemetry.
col_pub "$P/DG-A/telemetry" forged-by-collector 2>"$W/forge.err" || true
grep -q 'Not authorized' "$W/forge.err" || sec_fail "collector publish to a device's telemetry not refused"
dev_pub DG-A "$P/DG-A/telemetry" after-forge >/dev/null 2>&1 || sec_fail "DG-A marker"
wait_for_line "$W/col.txt" " after-forge\$" 5 || sec_fail "marker after forge"
if grep -q " forged-by-collector\$" "$W/col.txt"; then
    sec_fail "the collector's forged telemetry was delivered"
fi
sec_pass "the collector account cannot publish a device's telemetry (0x87)"

# Secrets: in neither log nor password file.
sec_stop_bg
for secret in "$SEC_COLLECTOR_PW" "$WRONG"; do
    if grep -rqF "$secret" "$SEC_LOG" "$SEC_DIR/passwd" "$W"/*.err 2>/dev/null; then
        grep -rnF "$secret" "$SEC_LOG" "$SEC_DIR/passwd" "$W"/*.err || true
        sec_fail "a password appears in a log or the password file (above)"
    fi
done
grep -q "^$SEC_COLLECTOR_USER:\\\$7\\\$" "$SEC_DIR/passwd" ||
    sec_fail "the password file does not hold a PBKDF2-SHA512 (\$7\$) hash"
grep -q 'not authorised' "$SEC_LOG" || sec_fail "the broker log does not record the refusals"
sec_pass "no password (right or wrong) in the broker log or the password file (\$7\$ hash)"

echo "$SEC_PASSED passed, 0 failed"

#!/usr/bin/env bash
# security.tls_matrix: the TLS listener of the shipped broker config refuses
# every connection that is not TLS 1.2+ with a valid client certificate from
# our CA:
#
#   control     a device certificate, TLS 1.2 and TLS 1.3: connects, publishes
#   refused     plaintext MQTT on the TLS port
#               TLS without a client certificate
#               a certificate with the right CN from another CA
#               an expired certificate, and one not valid yet (openssl ca
#               -startdate/-enddate with our own CA)
#               a revoked certificate (deploy/certs.sh revoke, crlfile), and
#               one revoked while the broker runs, after a reload (SIGHUP)
#               TLS 1.1 - by a client proven able to speak TLS 1.1 (it
#               completes a TLS 1.1 handshake with openssl s_server here;
#               mosquitto_pub --tls-version tlsv1.1 cannot: see below)
#
# A refused publish must fail in mosquitto_pub *and* never reach the
# collector's subscription; each is followed by a control publish that does.
# Usage: tls_matrix.sh PLUGIN_SO
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../integration/servers.sh
source "$here/../integration/servers.sh"
# shellcheck source=seclib.sh
source "$here/seclib.sh"

# Before the broker starts: the bad certificates (all with CN DG-A, so only
# the certificate itself is wrong), and DG-R revoked in the CRL it loads.
sec_before_start()
{
    local bad=$NW_WORK/bad
    mkdir -p "$bad/devices"
    bash "$SEC_REPO/deploy/certs.sh" "$NW_WORK/other-ca" device DG-A >/dev/null ||
        sec_fail "certs.sh for the other CA failed"
    cp "$NW_WORK/other-ca/devices/DG-A.pem" "$bad/devices/OTHERCA.pem"
    cp "$NW_WORK/other-ca/devices/DG-A.key" "$bad/devices/OTHERCA.key"
    dated EXPIRED 20200101000000Z 20200201000000Z
    dated FUTURE "$(date -u -d '+30 days' +%Y%m%d%H%M%SZ)" "$(date -u -d '+60 days' +%Y%m%d%H%M%SZ)"
    bash "$SEC_REPO/deploy/certs.sh" "$SEC_PKI" device DG-R >/dev/null || sec_fail "certs.sh DG-R"
    cp "$SEC_PKI/devices/DG-R.pem" "$bad/devices/REVOKED.pem"
    cp "$SEC_PKI/devices/DG-R.key" "$bad/devices/REVOKED.key"
    bash "$SEC_REPO/deploy/certs.sh" "$SEC_PKI" revoke DG-R >/dev/null || sec_fail "certs.sh revoke"
    # The controls' controls: openssl itself agrees each one is bad.
    openssl verify -CAfile "$SEC_PKI/ca.pem" "$SEC_PKI/devices/DG-A.pem" >/dev/null ||
        sec_fail "openssl does not verify the good certificate"
    for b in OTHERCA EXPIRED FUTURE; do
        if openssl verify -CAfile "$SEC_PKI/ca.pem" "$bad/devices/$b.pem" >/dev/null 2>&1; then
            sec_fail "openssl verifies the $b certificate"
        fi
    done
    if openssl verify -crl_check -CAfile "$SEC_PKI/ca.pem" -CRLfile "$SEC_PKI/crl.pem" \
        "$bad/devices/REVOKED.pem" >/dev/null 2>&1; then
        sec_fail "openssl verifies the revoked certificate against the CRL"
    fi
}

# dated NAME START END: a CN=DG-A client certificate from our CA with the
# given validity (openssl ca takes explicit dates; no faketime needed).
dated()
{
    local name=$1 out=$NW_WORK/bad/devices/$1
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out.key" 2>/dev/null
    openssl req -new -key "$out.key" -subj /CN=DG-A -out "$out.csr" 2>/dev/null
    NW_SAN=IP:127.0.0.1 openssl ca -config "$SEC_PKI/openssl.cnf" -batch -notext \
        -startdate "$2" -enddate "$3" -extensions client -in "$out.csr" -out "$out.pem" \
        2>"$out.err" || {
        cat "$out.err"
        sec_fail "openssl ca could not make the $name certificate"
    }
}

sec_setup sec-tls "${1:?usage: tls_matrix.sh PLUGIN_SO}"
W=$NW_WORK
P=needlewatch/v1
col_sub_bg "$W/col.txt" "$P/+/+"
for _ in $(seq 50); do
    dev_pub DG-A "$P/DG-A/event" sub-ready 2>/dev/null || true
    wait_for_line "$W/col.txt" " sub-ready$" 0.2 && break
done
wait_for_line "$W/col.txt" " sub-ready$" 1 || sec_fail "collector subscription never became live"

n=0
# control LABEL: DG-A with its own certificate publishes; the collector
# must receive it.
control()
{
    n=$((n + 1))
    dev_pub DG-A "$P/DG-A/telemetry" "good-$n" 2>"$W/good.err" ||
        sec_fail "control before/after '$1': the valid certificate was refused: $(cat "$W/good.err")"
    wait_for_line "$W/col.txt" " good-$n\$" 5 || sec_fail "control for '$1' never arrived"
}

# refused LABEL CMD...: CMD (a mosquitto_pub of "bad-N" to DG-A's telemetry)
# must fail, and bad-N must not reach the collector.
refused()
{
    local label=$1
    shift
    n=$((n + 1))
    local msg="bad-$n"
    if "$@" -t "$P/DG-A/telemetry" -m "$msg" >"$W/bad.out" 2>&1; then
        cat "$W/bad.out"
        sec_fail "$label: mosquitto_pub succeeded"
    fi
    control "$label"
    if grep -q " $msg\$" "$W/col.txt"; then
        sec_fail "$label: the message reached the collector"
    fi
    sec_pass "refused: $label ($(tr '\n' ' ' <"$W/bad.out" | cut -c1-70))"
}

pub() { timeout 10 mosquitto_pub -V mqttv5 -q 1 -h 127.0.0.1 -p "$SEC_TLS_PORT" -i DG-A "$@"; }
tls=(--cafile "$SEC_PKI/ca.pem")
bad=$W/bad/devices

control "TLS 1.2+ with DG-A's certificate"
sec_pass "control: a device certificate from our CA connects and publishes"
control "TLS 1.2"
pub "${tls[@]}" --cert "$SEC_PKI/devices/DG-A.pem" --key "$SEC_PKI/devices/DG-A.key" \
    --tls-version tlsv1.2 -t "$P/DG-A/telemetry" -m tls12 || sec_fail "TLS 1.2 publish failed"
pub "${tls[@]}" --cert "$SEC_PKI/devices/DG-A.pem" --key "$SEC_PKI/devices/DG-A.key" \
    --tls-version tlsv1.3 -t "$P/DG-A/telemetry" -m tls13 || sec_fail "TLS 1.3 publish failed"
if ! wait_for_line "$W/col.txt" " tls13\$" 5 || ! grep -q " tls12\$" "$W/col.txt"; then
    sec_fail "TLS 1.2/1.3 publishes did not arrive"
fi
sec_pass "control: TLS 1.2 and TLS 1.3 both work"

refused "plaintext MQTT on the TLS port" pub
refused "TLS without a client certificate" pub "${tls[@]}"
refused "a CN=DG-A certificate from another CA" pub "${tls[@]}" \
    --cert "$bad/OTHERCA.pem" --key "$bad/OTHERCA.key"
refused "an expired certificate (2020-01-01..2020-02-01)" pub "${tls[@]}" \
    --cert "$bad/EXPIRED.pem" --key "$bad/EXPIRED.key"
refused "a certificate not valid for 30 more days" pub "${tls[@]}" \
    --cert "$bad/FUTURE.pem" --key "$bad/FUTURE.key"
refused "a revoked certificate (crlfile)" pub "${tls[@]}" -i DG-R \
    --cert "$bad/REVOKED.pem" --key "$bad/REVOKED.key"
# TLS 1.1. Not with mosquitto_pub: its --tls-version tlsv1.1 only sets the
# *minimum* version (libmosquitto 2.0.11 disables SSLv3 and TLS 1.0 and
# nothing else), so it negotiates TLS 1.3 and connects - that would test
# nothing. Instead, a client that can: openssl s_client at security level 0
# completes a TLS 1.1 handshake with a TLS-1.1-capable openssl s_server, and
# a TLS 1.2 one with the broker; the broker refuses its TLS 1.1 handshake.
s11=(-cipher 'DEFAULT:@SECLEVEL=0' -CAfile "$SEC_PKI/ca.pem"
    -cert "$SEC_PKI/devices/DG-A.pem" -key "$SEC_PKI/devices/DG-A.key" -verify_return_error)
handshake() { # PORT VERSION-FLAG: prints the negotiated protocol, 0 on success
    timeout 10 openssl s_client -connect "127.0.0.1:$1" "$2" "${s11[@]}" -brief </dev/null 2>&1
}
sport=$(nw_free_port 1)
openssl s_server -accept "127.0.0.1:$sport" -naccept 2 -cert "$SEC_PKI/broker.pem" \
    -key "$SEC_PKI/broker.key" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' -quiet \
    >"$W/s_server.log" 2>&1 </dev/null &
SEC_BG+=($!)
# (the readiness probe is its first accept, the handshake its second)
_nw_wait_until "$!" "$W/s_server.log" s_server _nw_tcp_open "$sport" || sec_fail "s_server"
handshake "$sport" -tls1_1 >"$W/s11.out" || {
    cat "$W/s11.out"
    sec_fail "this openssl cannot do TLS 1.1 even at SECLEVEL=0: the TLS 1.1 check would prove nothing"
}
grep -q 'Protocol version: TLSv1.1' "$W/s11.out" || sec_fail "s_server did not negotiate TLS 1.1"
handshake "$SEC_TLS_PORT" -tls1_2 >"$W/b12.out" || {
    cat "$W/b12.out"
    sec_fail "s_client TLS 1.2 handshake with the broker failed"
}
grep -q 'Protocol version: TLSv1.2' "$W/b12.out" || sec_fail "broker did not negotiate TLS 1.2"
if handshake "$SEC_TLS_PORT" -tls1_1 >"$W/b11.out"; then
    cat "$W/b11.out"
    sec_fail "the broker accepted a TLS 1.1 handshake"
fi
sec_pass "refused: TLS 1.1 (a client that completes TLS 1.1 with s_server and TLS 1.2 with the broker)"

# Revocation at run time: DG-B works, is revoked with certs.sh, the broker
# is told to reload (SIGHUP, what `systemctl reload` sends), DG-B is refused
# and DG-A is not.
dev_pub DG-B "$P/DG-B/telemetry" b-before >/dev/null 2>&1 || sec_fail "DG-B refused before revocation"
cp "$SEC_PKI/devices/DG-B.pem" "$W/DG-B.pem"
cp "$SEC_PKI/devices/DG-B.key" "$W/DG-B.key"
bash "$SEC_REPO/deploy/certs.sh" "$SEC_PKI" revoke DG-B >/dev/null || sec_fail "certs.sh revoke DG-B"
kill -HUP "$SEC_MQTT_PID"
wait_for_line "$SEC_LOG" 'Reloading config' 5 || sec_fail "the broker did not log a reload"
sleep 0.5
if timeout 10 mosquitto_pub -V mqttv5 -q 1 -h 127.0.0.1 -p "$SEC_TLS_PORT" -i DG-B \
    --cafile "$SEC_PKI/ca.pem" --cert "$W/DG-B.pem" --key "$W/DG-B.key" \
    -t "$P/DG-B/telemetry" -m b-after >/dev/null 2>&1; then
    sec_fail "DG-B still connects after revocation and reload"
fi
control "revocation at run time"
grep -q " b-after\$" "$W/col.txt" && sec_fail "DG-B's message after revocation was delivered"
sec_pass "a certificate revoked while the broker runs is refused after a reload (SIGHUP); others still connect"

echo "$SEC_PASSED passed, 0 failed"

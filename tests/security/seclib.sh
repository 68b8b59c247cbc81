# shellcheck shell=bash
#
# seclib.sh - the security tests' broker: mosquitto running the shipped
# deploy/mosquitto/needlewatch.conf, acl and nw_clientid plugin, with only
# the ports and paths rewritten, and a PKI made by the shipped
# deploy/certs.sh. Source it after tests/integration/servers.sh:
#
#   source "$here/../integration/servers.sh"
#   source "$here/seclib.sh"
#   sec_setup NAME PLUGIN_SO      # NW_WORK, PKI, passwd, config, broker up
#
# A test may define sec_before_start (called once the PKI and password file
# exist) and sec_edit_config FILE (called on the rewritten config) first.
#
# Afterwards:
#   SEC_TLS_PORT SEC_PLAIN_PORT  the TLS and loopback listeners (never 8883/1883)
#   SEC_PKI                      certs.sh's directory (devices DG-A, DG-B)
#   SEC_CONF SEC_LOG             the rewritten config, the broker's log
#   SEC_COLLECTOR_PW             the collector account's password (test only)
#
# Helpers (each returns 0/1, never exits):
#   dev_pub ID TOPIC MSG [mosquitto_pub args]   publish as device ID over TLS
#   dev_sub_bg ID OUTFILE TOPIC [args]          subscribe as device ID, in the
#                                               background, until sec_stop_bg
#   col_sub_bg OUTFILE TOPIC [args]             subscribe as the collector (1883)
#   col_pub TOPIC MSG                           publish as the collector (1883)
#   wait_for_line FILE REGEX [SECONDS]          poll until a line matches
#   sec_pass / sec_fail MSG                     count a check / fail it
#
# Every check in a test comes with its positive control (the same command
# that succeeds when nothing is wrong), so a refusal cannot pass by accident
# (a typo, a broker that is down, a port that is wrong).

SEC_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SEC_BG=()
SEC_PASSED=0
SEC_COLLECTOR_USER=needlewatch-collector

sec_pass()
{
    SEC_PASSED=$((SEC_PASSED + 1))
    printf 'ok %d - %s\n' "$SEC_PASSED" "$*"
}

sec_fail()
{
    printf 'FAIL: %s\n' "$*"
    exit 1
}

# Called by servers.sh's EXIT trap.
nw_test_cleanup()
{
    sec_stop_bg
}

sec_stop_bg()
{
    local p
    for p in "${SEC_BG[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    SEC_BG=()
}

# sec_rewrite_config SRC DST: the shipped config with our ports and paths.
# Fails if anything that points at the real system is left over.
sec_rewrite_config()
{
    local src=$1 dst=$2
    sed -e "s|^listener 8883\$|listener $SEC_TLS_PORT 127.0.0.1|" \
        -e "s|^listener 1883 127.0.0.1\$|listener $SEC_PLAIN_PORT 127.0.0.1|" \
        -e "s|^user mosquitto\$|user $(id -un)|" \
        -e "s|/etc/needlewatch/tls/|$SEC_PKI/|g" \
        -e "s|/etc/needlewatch/mosquitto/|$SEC_DIR/|g" \
        -e "s|/var/lib/needlewatch-mosquitto/|$SEC_DIR/data/|g" \
        -e "s|/usr/local/lib/needlewatch/nw_clientid.so|$SEC_PLUGIN|g" \
        "$src" >"$dst"
    if grep -nE '(^|[^0-9])(1883|8883)([^0-9]|$)|/etc/|/var/lib|/usr/local' "$dst" | grep -v '^[0-9]*:#'; then
        sec_fail "rewriting $src left real ports or paths (above)"
    fi
    # The config's own claims that the tests rely on.
    grep -q '^require_certificate true$' "$dst" || sec_fail "config: require_certificate true missing"
    grep -q '^tls_version tlsv1.2$' "$dst" || sec_fail "config: tls_version tlsv1.2 missing"
    grep -q '^allow_anonymous false$' "$dst" || sec_fail "config: allow_anonymous false missing"
    if grep -q '^use_identity_as_username true' "$dst"; then
        sec_fail "config: use_identity_as_username true bypasses the client-id plugin"
    fi
}

# sec_setup NAME PLUGIN_SO: workdir, PKI, password file, config, broker.
sec_setup()
{
    local name=$1 attempt ports
    SEC_PLUGIN=$2
    nw_require mosquitto mosquitto_pub mosquitto_sub mosquitto_passwd openssl
    [[ -f $SEC_PLUGIN ]] || {
        echo "SKIP: the nw_clientid plugin was not built (mosquitto-dev missing?)"
        exit 77
    }
    nw_make_workdir "$name"
    SEC_DIR=$NW_WORK/broker
    SEC_PKI=$NW_WORK/pki
    mkdir -p "$SEC_DIR/data"
    bash "$SEC_REPO/deploy/certs.sh" "$SEC_PKI" device DG-A DG-B >"$NW_WORK/certs.log" 2>&1 ||
        {
            cat "$NW_WORK/certs.log"
            sec_fail "deploy/certs.sh failed"
        }
    # The collector's password: random, written hashed by mosquitto_passwd
    # -U (never on a command line, where ps would show it).
    SEC_COLLECTOR_PW="pw-$(openssl rand -hex 12)"
    printf '%s:%s\n' "$SEC_COLLECTOR_USER" "$SEC_COLLECTOR_PW" >"$SEC_DIR/passwd"
    chmod 0600 "$SEC_DIR/passwd"
    mosquitto_passwd -U "$SEC_DIR/passwd" || sec_fail "mosquitto_passwd -U failed"
    grep -q "$SEC_COLLECTOR_PW" "$SEC_DIR/passwd" && sec_fail "password file holds the plain password"
    _col_write_options
    cp "$SEC_REPO/deploy/mosquitto/acl" "$SEC_DIR/acl"
    # A test may prepare more (revoke a certificate, edit the config) here.
    if declare -F sec_before_start >/dev/null; then
        sec_before_start
    fi
    SEC_LOG=$SEC_DIR/mosquitto.log
    SEC_CONF=$SEC_DIR/needlewatch.conf
    for attempt in 1 2 3; do
        mapfile -t ports < <(nw_free_port 2)
        SEC_TLS_PORT=${ports[0]}
        SEC_PLAIN_PORT=${ports[1]}
        sec_rewrite_config "$SEC_REPO/deploy/mosquitto/needlewatch.conf" "$SEC_CONF"
        if declare -F sec_edit_config >/dev/null; then
            sec_edit_config "$SEC_CONF"
        fi
        # _nw_start (servers.sh): background start, bounded wait for the
        # plain port, registered for the EXIT trap, stopped by PID.
        if _nw_start mosquitto "$SEC_LOG" _nw_tcp_open "$SEC_PLAIN_PORT" -- \
            mosquitto -c "$SEC_CONF"; then
            SEC_MQTT_PID=${NW_PIDS[-1]}
            _nw_wait_until "$SEC_MQTT_PID" "$SEC_LOG" mosquitto _nw_tcp_open "$SEC_TLS_PORT" ||
                sec_fail "TLS listener not up"
            grep -q 'nw_clientid: client id must equal' "$SEC_LOG" ||
                sec_fail "the plugin did not announce itself in the broker log"
            export SEC_TLS_PORT SEC_PLAIN_PORT SEC_PKI SEC_CONF SEC_LOG
            return 0
        fi
        _nw_log "mosquitto start attempt $attempt failed"
    done
    sec_fail "mosquitto with the deploy config did not start"
}

# The collector's credentials reach mosquitto_pub/sub through their
# per-user options file ($XDG_CONFIG_HOME/mosquitto_pub, .../mosquitto_sub,
# mode 0600), never through -P, which anyone could read in ps.
_col_write_options()
{
    local d=$NW_WORK/collector-cfg f
    mkdir -p "$d"
    for f in mosquitto_pub mosquitto_sub; do
        printf -- '-u %s\n-P %s\n' "$SEC_COLLECTOR_USER" "$SEC_COLLECTOR_PW" >"$d/$f"
        chmod 0600 "$d/$f"
    done
}

# _dev_args ID [PKI]: TLS client args for device ID.
_dev_args()
{
    local id=$1 pki=${2:-$SEC_PKI}
    printf '%s\n' -h 127.0.0.1 -p "$SEC_TLS_PORT" --cafile "$SEC_PKI/ca.pem" \
        --cert "$pki/devices/$id.pem" --key "$pki/devices/$id.key" -i "$id"
}

# dev_pub ID TOPIC MSG [extra mosquitto_pub args]: MQTT 5, QoS 1 (MSG "":
# give -f FILE instead); the exit status of mosquitto_pub, non-zero when the
# connection is refused. A 0x87 PUBACK only prints "Publish 1 failed: Not
# authorized" on stderr (mosquitto_pub 2.0.11 still exits 0).
dev_pub()
{
    local id=$1 topic=$2 msg=$3 args
    shift 3
    mapfile -t args < <(_dev_args "$id")
    if [[ -n $msg ]]; then
        set -- -m "$msg" "$@"
    fi
    timeout 10 mosquitto_pub -V mqttv5 -q 1 "${args[@]}" "$@" -t "$topic"
}

dev_sub_bg()
{
    local id=$1 out=$2 topic=$3 args
    shift 3
    mapfile -t args < <(_dev_args "$id")
    mosquitto_sub -V mqttv5 -q 1 -v "${args[@]}" "$@" -t "$topic" >"$out" 2>"$out.err" &
    SEC_BG+=($!)
}

col_sub_bg()
{
    local out=$1 topic=$2
    shift 2
    XDG_CONFIG_HOME=$NW_WORK/collector-cfg mosquitto_sub -V mqttv5 -q 1 -v -h 127.0.0.1 \
        -p "$SEC_PLAIN_PORT" -i needlewatch-collector-sub "$@" -t "$topic" >"$out" 2>"$out.err" &
    SEC_BG+=($!)
}

col_pub()
{
    local topic=$1 msg=$2
    shift 2
    XDG_CONFIG_HOME=$NW_WORK/collector-cfg timeout 10 mosquitto_pub -V mqttv5 -q 1 -h 127.0.0.1 \
        -p "$SEC_PLAIN_PORT" -i needlewatch-collector-pub "$@" -t "$topic" -m "$msg"
}

# wait_for_line FILE REGEX [SECONDS]: 0 as soon as a line matches.
wait_for_line()
{
    local file=$1 re=$2 i tenths
    tenths=$(awk -v s="${3:-10}" 'BEGIN { print int(s * 10) }')
    for ((i = 0; i <= tenths; i++)); do
        grep -Eq -- "$re" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

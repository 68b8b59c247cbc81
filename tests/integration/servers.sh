# shellcheck shell=bash
#
# servers.sh - real servers on free loopback ports for integration tests.
#
# Source it from a bash test, start what the test needs, and let the EXIT
# trap stop it:
#
#   source "$(dirname "$0")/servers.sh"
#   nw_make_workdir mytest        # NW_WORK, removed if the test passes
#   nw_start_influxd "$NW_WORK"   # exports NW_INFLUX_PORT, NW_INFLUX_URL
#   nw_start_victoria "$NW_WORK"  # exports NW_VICTORIA_PORT, NW_VICTORIA_URL
#   nw_start_mosquitto "$NW_WORK" # exports NW_MQTT_PORT, NW_MQTT_URL
#
# Each nw_start_* returns non-zero (after printing the server's log) when
# the server does not come up; call it as `nw_start_influxd "$NW_WORK" ||
# exit 1`. For outage and crash tests: nw_stop NAME (SIGTERM), nw_kill NAME
# (SIGKILL), nw_restart NAME (same ports and data). NAME is influxd,
# victoria or mosquitto.
#
# Why it is built this way:
#  - Every listener is bound to 127.0.0.1 on a port the kernel hands out, so
#    tests run in parallel with each other and with a developer's own
#    servers; the default ports (8086, 8088, 1883, 8428) are never used.
#  - Only the PIDs started here are ever signalled: other engineers run the
#    same servers on the same machine. No systemd, no pkill.
#  - Every wait is bounded (NW_SERVER_TIMEOUT seconds, default 30), so a
#    server that never comes up fails the test instead of hanging ctest.
#  - Each server logs into its own file in the test's directory; the logs
#    are printed when a start fails or the test exits non-zero.
#  - Asking for a free port and binding it later is a race with any other
#    process doing the same; each start retries with fresh ports when the
#    server dies during start-up.
#
# A test that needs its own cleanup defines a function nw_test_cleanup; the
# EXIT trap calls it after stopping the servers. If the test itself is
# killed (a ctest timeout sends SIGKILL, which no trap sees), the servers
# still go: they are started with a parent-death signal where setpriv
# exists.

NW_SERVER_TIMEOUT=${NW_SERVER_TIMEOUT:-30}
NW_PIDS=()
NW_PID_NAMES=()
NW_LOGS=()
declare -gA _NW_RESTART=() # name -> quoted arguments of _nw_start
_nw_trap_armed=0

_nw_log()
{
    printf 'servers.sh: %s\n' "$*" >&2
}

# nw_free_port [N]: prints N (default 1) distinct free TCP ports on
# 127.0.0.1. All N sockets are bound at the same time so the kernel cannot
# hand out the same port twice.
nw_free_port()
{
    local n=${1:-1}
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$n" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
EOF
        return
    fi
    # Fallback without python3: random ports below the ephemeral range, so
    # they do not collide with outgoing connections, checked with ss.
    local found=() p tries=0
    while ((${#found[@]} < n && tries < 1000)); do
        tries=$((tries + 1))
        p=$((20000 + RANDOM % 12000))
        if [[ " ${found[*]} " == *" $p "* ]]; then
            continue
        fi
        if [[ -z "$(ss -Htan "sport = :$p" 2>/dev/null)" ]]; then
            found+=("$p")
        fi
    done
    ((${#found[@]} == n)) || return 1
    printf '%s\n' "${found[@]}"
}

_nw_arm_trap()
{
    if ((_nw_trap_armed == 0)); then
        trap '_nw_on_exit' EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
        _nw_trap_armed=1
    fi
}

_nw_on_exit()
{
    local rc=$?
    if ((rc != 0)); then
        nw_print_logs
    fi
    nw_stop_all
    if declare -F nw_test_cleanup >/dev/null; then
        nw_test_cleanup || true
    fi
    if [[ -n "${NW_WORK:-}" && -d "$NW_WORK" ]]; then
        if ((rc == 0)); then
            rm -rf "$NW_WORK"
        else
            _nw_log "test failed (exit $rc): keeping $NW_WORK"
        fi
    fi
    exit "$rc"
}

# nw_require CMD...: exits 77 (ctest's SKIP_RETURN_CODE in this folder)
# when a server or tool the test needs is not installed.
nw_require()
{
    local c
    for c in "$@"; do
        if ! command -v "$c" >/dev/null 2>&1; then
            printf 'SKIP: %s is not installed (deploy/install-deps.sh installs it)\n' "$c"
            exit 77
        fi
    done
}

# nw_make_workdir NAME: creates a scratch directory for the test's servers
# and files in NW_WORK. It is removed when the test passes and kept (its
# path printed) when it fails.
nw_make_workdir()
{
    NW_WORK=$(mktemp -d "${TMPDIR:-/tmp}/nw-$1.XXXXXX")
    export NW_WORK
    _nw_arm_trap
}

# nw_print_logs: the last lines of every server log, for a failing test.
nw_print_logs()
{
    local log
    for log in "${NW_LOGS[@]}"; do
        [[ -f "$log" ]] || continue
        printf '===== %s (last 40 lines) =====\n' "$log" >&2
        tail -n 40 "$log" >&2
    done
}

# _nw_register NAME PID LOG: remember a started server so nw_stop_all and
# the EXIT trap can find it.
_nw_register()
{
    NW_PIDS+=("$2")
    NW_PID_NAMES+=("$1")
    NW_LOGS+=("$3")
}

_nw_forget()
{
    local pid=$1 i
    for i in "${!NW_PIDS[@]}"; do
        if [[ "${NW_PIDS[$i]}" == "$pid" ]]; then
            unset 'NW_PIDS[i]' 'NW_PID_NAMES[i]'
        fi
    done
}

# _nw_stop_pid PID NAME: TERM, wait up to NW_SERVER_TIMEOUT, then KILL.
_nw_stop_pid()
{
    local pid=$1 name=$2 deadline
    kill -0 "$pid" 2>/dev/null || {
        wait "$pid" 2>/dev/null || true
        return 0
    }
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + NW_SERVER_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        _nw_log "$name (pid $pid) ignored SIGTERM for ${NW_SERVER_TIMEOUT}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    return 0
}

# nw_stop NAME: stops the servers started under NAME (influxd, victoria,
# mosquitto), e.g. to test what a client does while the store is down.
nw_stop()
{
    local want=$1 i
    for i in "${!NW_PIDS[@]}"; do
        if [[ "${NW_PID_NAMES[$i]}" == "$want" ]]; then
            _nw_stop_pid "${NW_PIDS[$i]}" "$want"
            unset 'NW_PIDS[i]' 'NW_PID_NAMES[i]'
        fi
    done
}

# nw_stop_all: stops, newest first, exactly the processes started here.
nw_stop_all()
{
    local idx i
    idx=("${!NW_PIDS[@]}")
    for ((i = ${#idx[@]} - 1; i >= 0; i--)); do
        _nw_stop_pid "${NW_PIDS[${idx[$i]}]}" "${NW_PID_NAMES[${idx[$i]}]}"
    done
    NW_PIDS=()
    NW_PID_NAMES=()
}

# nw_kill NAME: SIGKILL, no chance to flush or clean up: the crash in
# DESIGN section 4's "kill -9 ... at any moment".
nw_kill()
{
    local want=$1 i
    for i in "${!NW_PIDS[@]}"; do
        if [[ "${NW_PID_NAMES[$i]}" == "$want" ]]; then
            kill -KILL "${NW_PIDS[$i]}" 2>/dev/null || true
            wait "${NW_PIDS[$i]}" 2>/dev/null || true
            unset 'NW_PIDS[i]' 'NW_PID_NAMES[i]'
        fi
    done
}

# nw_restart NAME: stops NAME if it still runs and starts it again exactly
# as before: same command, same ports, same data directory, so clients
# reconnect to what they knew. Updates NW_<SERVER>_PID.
nw_restart()
{
    local name=$1
    if [[ -z "${_NW_RESTART[$name]:-}" ]]; then
        _nw_log "nw_restart: $name was never started"
        return 1
    fi
    nw_stop "$name"
    eval "_nw_start $(printf '%q' "$name") ${_NW_RESTART[$name]}" || return 1
    case $name in
    influxd) NW_INFLUX_PID=${NW_PIDS[-1]} ;;
    victoria) NW_VICTORIA_PID=${NW_PIDS[-1]} ;;
    mosquitto) NW_MQTT_PID=${NW_PIDS[-1]} ;;
    esac
}

# _nw_wait_until PID LOG WHAT CMD...: polls CMD until it succeeds, the
# process dies, or the timeout passes. Returns 0 only on success.
_nw_wait_until()
{
    local pid=$1 log=$2 what=$3 deadline
    shift 3
    deadline=$((SECONDS + NW_SERVER_TIMEOUT))
    while ((SECONDS < deadline)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            _nw_log "$what exited during start-up"
            return 1
        fi
        sleep 0.1
    done
    _nw_log "$what not ready after ${NW_SERVER_TIMEOUT}s"
    return 1
}

_nw_http_ok()
{
    curl -sf -o /dev/null --max-time 2 "$1"
}

_nw_tcp_open()
{
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# _nw_start NAME LOG READY_CMD... -- SERVER_CMD...: starts the server in the
# background with its output in LOG and waits for READY_CMD. On failure the
# process is stopped, the log printed, and 1 returned.
_nw_start()
{
    local name=$1 log=$2 ready=() pid
    shift 2
    while (($# > 0)) && [[ "$1" != "--" ]]; do
        ready+=("$1")
        shift
    done
    shift
    _nw_arm_trap
    if command -v setpriv >/dev/null 2>&1; then
        setpriv --pdeathsig TERM -- "$@" >>"$log" 2>&1 </dev/null &
    else
        "$@" >>"$log" 2>&1 </dev/null &
    fi
    pid=$!
    _nw_register "$name" "$pid" "$log"
    if _nw_wait_until "$pid" "$log" "$name" "${ready[@]}"; then
        _NW_RESTART[$name]=$(printf '%q ' "$log" "${ready[@]}" -- "$@")
        return 0
    fi
    _nw_stop_pid "$pid" "$name"
    _nw_forget "$pid"
    printf '===== %s =====\n' "$log" >&2
    tail -n 40 "$log" >&2
    return 1
}

# nw_start_influxd DIR: InfluxDB 1.x with its HTTP API and its RPC (backup)
# listener on free loopback ports, every other listener off, no usage
# reporting, all state under DIR/influxd. Exports NW_INFLUX_PORT,
# NW_INFLUX_URL, NW_INFLUX_RPC_PORT, NW_INFLUX_PID.
nw_start_influxd()
{
    local dir=$1/influxd attempt ports
    mkdir -p "$dir"
    for attempt in 1 2 3; do
        mapfile -t ports < <(nw_free_port 2)
        ((${#ports[@]} == 2)) || return 1
        cat >"$dir/influxd.conf" <<EOF
# generated by tests/integration/servers.sh
reporting-enabled = false
bind-address = "127.0.0.1:${ports[1]}"

[meta]
  dir = "$dir/meta"
  retention-autocreate = true
  logging-enabled = true

[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = true

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:${ports[0]}"
  auth-enabled = false
  log-enabled = true
  pprof-enabled = false
  unix-socket-enabled = false

[ifql]
  enabled = false

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false
EOF
        if _nw_start influxd "$dir/influxd.log" \
            _nw_http_ok "http://127.0.0.1:${ports[0]}/ping" -- \
            influxd run -config "$dir/influxd.conf"; then
            export NW_INFLUX_PORT=${ports[0]}
            export NW_INFLUX_RPC_PORT=${ports[1]}
            export NW_INFLUX_URL="http://127.0.0.1:${ports[0]}"
            export NW_INFLUX_PID=${NW_PIDS[-1]}
            return 0
        fi
        _nw_log "influxd start attempt $attempt failed"
    done
    return 1
}

# nw_start_victoria DIR: single-node VictoriaMetrics on a free loopback
# port, data under DIR/victoria, retention long enough for fixed
# timestamps in the past. -dedup.minScrapeInterval=1ms makes a re-sent
# point replace itself as in InfluxDB (without it VictoriaMetrics keeps
# every copy, and counts them); production installs need the same flag.
# Exports NW_VICTORIA_PORT, NW_VICTORIA_URL, NW_VICTORIA_PID.
nw_start_victoria()
{
    local dir=$1/victoria attempt port
    mkdir -p "$dir"
    for attempt in 1 2 3; do
        port=$(nw_free_port 1) || return 1
        if _nw_start victoria "$dir/victoria.log" \
            _nw_http_ok "http://127.0.0.1:$port/health" -- \
            victoria-metrics -httpListenAddr "127.0.0.1:$port" \
            -storageDataPath "$dir/data" -retentionPeriod 100y \
            -dedup.minScrapeInterval=1ms; then
            export NW_VICTORIA_PORT=$port
            export NW_VICTORIA_URL="http://127.0.0.1:$port"
            export NW_VICTORIA_PID=${NW_PIDS[-1]}
            return 0
        fi
        _nw_log "victoria-metrics start attempt $attempt failed"
    done
    return 1
}

# nw_start_mosquitto DIR: a mosquitto broker on a free loopback port,
# anonymous access, persistence under DIR/mosquitto. Exports NW_MQTT_PORT,
# NW_MQTT_URL, NW_MQTT_PID, and NW_MQTT_CONF (tests may append to a copy).
nw_start_mosquitto()
{
    local dir=$1/mosquitto attempt port
    mkdir -p "$dir"
    for attempt in 1 2 3; do
        port=$(nw_free_port 1) || return 1
        # As root, mosquitto drops to user "mosquitto", which could not
        # write the persistence directory a test created: stay who we are.
        cat >"$dir/mosquitto.conf" <<EOF
# generated by tests/integration/servers.sh
listener $port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $dir/
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
user $(id -un)
EOF
        if _nw_start mosquitto "$dir/mosquitto.log" _nw_tcp_open "$port" -- \
            mosquitto -c "$dir/mosquitto.conf"; then
            export NW_MQTT_PORT=$port
            export NW_MQTT_URL="mqtt://127.0.0.1:$port"
            export NW_MQTT_CONF="$dir/mosquitto.conf"
            export NW_MQTT_PID=${NW_PIDS[-1]}
            return 0
        fi
        _nw_log "mosquitto start attempt $attempt failed"
    done
    return 1
}

# shellcheck shell=bash
#
# lib.sh - shared by the bench/*.sh figures. Source it, then:
#
#   bench_init NAME "$@"   parses --quick / --build DIR / --keep (copy the
#                          work dir to WORKDIR.kept at exit), sources
#                          tests/integration/servers.sh (servers on free
#                          loopback ports, stopped by PID on exit), makes
#                          the work dir, builds the targets the figure needs
#   bench_build TARGET...  cmake --build of those targets only (Release)
#   bench_machine          what else is running: load, CPUs, top consumers
#   bench_broker           mosquitto for benchmarks (see below)
#   kv KEY FILE            a value from the last "RESULT ... KEY=VALUE" line
#   ratio A B              A/B with 2 decimals ("n/a" if B is 0 or missing)
#   fmt0 X, calc EXPR      X rounded; EXPR evaluated by awk
#   pid_cpu_s PID          utime+stime of PID in seconds (all threads)
#   summary KEY VALUE...   a line "SUMMARY figure key=value..." for run-all.sh
#   bench_cleanup          define it for the figure's own cleanup at exit
#
# Rules every figure follows (DESIGN §9): loopback only, servers on free
# ports via servers.sh, every loop bounded in count and time, the baseline
# measured in the same invocation, and the machine's other load printed at
# the start and the end, because the machine has 2 cores and is shared.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NW_ROOT=$(cd "$BENCH_DIR/.." && pwd)
QUICK=0
KEEP=0
BUILD=${NW_BENCH_BUILD:-$NW_ROOT/build-bench}
BENCH_NAME=bench

# shellcheck source=tests/integration/servers.sh
source "$NW_ROOT/tests/integration/servers.sh"

bench_log()
{
    printf '[%s %s] %s\n' "$BENCH_NAME" "$(date +%H:%M:%S)" "$*" >&2
}

bench_build()
{
    if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
        cmake -S "$NW_ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    fi
    local t
    for t in "$@"; do
        if ! cmake --build "$BUILD" --target "$t" -j2 >"$NW_WORK/build-$t.log" 2>&1; then
            tail -20 "$NW_WORK/build-$t.log" >&2
            bench_log "build of $t failed (a file someone else edits? retry in a minute)"
            exit 1
        fi
    done
    local bt
    bt=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
    [[ "$bt" == Release ]] || bench_log "WARNING: $BUILD is a $bt build, not Release"
}

bench_init()
{
    BENCH_NAME=$1
    shift
    while (($# > 0)); do
        case $1 in
        --quick) QUICK=1 ;;
        --keep) KEEP=1 ;;
        --build) BUILD=$(realpath -m -- "$2"); shift ;;
        -h | --help)
            sed -n '2,/^set -/p' "$0" | sed -n 's/^# \{0,1\}//p'
            exit 0
            ;;
        *) echo "$BENCH_NAME: unknown argument $1 (try --help)" >&2; exit 2 ;;
        esac
        shift
    done
    nw_require mosquitto curl sqlite3 python3 cmake
    nw_make_workdir "bench-$BENCH_NAME"
    echo "# $BENCH_NAME: $NW_ROOT at $(git -C "$NW_ROOT" log -1 --format='%h %cd' --date=format:%FT%T 2>/dev/null)," \
        "uncommitted: $(git -C "$NW_ROOT" status --porcelain -- agent collector lib include 2>/dev/null | wc -l) files under agent/ collector/ lib/ include/;" \
        "build $BUILD"
}

# The EXIT trap of servers.sh calls this after stopping the servers: the
# figure's own cleanup (bench_cleanup, if defined), then --keep.
nw_test_cleanup()
{
    if declare -F bench_cleanup >/dev/null; then
        bench_cleanup || true
    fi
    if ((KEEP)) && [[ -n "${NW_WORK:-}" && -d "$NW_WORK" ]]; then
        rm -rf "$NW_WORK.kept"
        cp -a "$NW_WORK" "$NW_WORK.kept"
        echo "# work dir kept: $NW_WORK.kept" >&2
    fi
    return 0
}

# What else runs: the figures mean nothing without it on a shared 2-core box.
bench_machine()
{
    local when=$1
    local load cpus
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    cpus=$(nproc)
    echo "# machine ($when): $(uname -n), $cpus CPUs, load $load, $(date -u +%FT%TZ)"
    if ((QUICK)) && [[ $when == end ]]; then
        return 0 # --quick: the load is enough at the end
    fi
    local d=1
    ((QUICK)) && d=0.5
    echo "# top CPU consumers over ${d} s (%CPU of one core; $BENCH_NAME's own start after this line):"
    top -b -n 2 -d "$d" -w 200 2>/dev/null | awk '
        /^top -/ { snap++ }
        snap == 2 && /^ *PID/ { hdr = 1; next }
        snap == 2 && hdr && n < 6 && $9 + 0 >= 1.0 { printf "#   %6s %5.1f%%  %s\n", $1, $9, $12; n++ }
        END { if (n == 0) print "#   (nothing above 1%)" }'
}

# mosquitto on a free port (servers.sh) with the benchmark's settings:
#   max_queued_messages 0     no silent drop of acknowledged QoS 1 messages
#                             behind a slow subscriber (the default 1000
#                             drops them after PUBACK; DESIGN §4), so every
#                             message sent can be accounted for
#   everything else default (max_inflight_messages 20, Nagle on), printed.
bench_broker()
{
    nw_start_mosquitto "$NW_WORK" || exit 1
    printf '%s\n' "max_queued_messages 0" >>"$NW_MQTT_CONF"
    # Connect/disconnect lines of 1000 clients would bury a failure's log.
    sed -i '/^log_type information/d; /^log_type notice/d' "$NW_MQTT_CONF"
    # A backlog of 10^5..10^6 queued messages would be saved at shutdown.
    sed -i 's/^persistence true/persistence false/' "$NW_MQTT_CONF"
    nw_restart mosquitto || exit 1
    BROKER_PID=$NW_MQTT_PID
    echo "# broker: mosquitto $(mosquitto -h 2>/dev/null | sed -n 's/.*version //p' | head -1)" \
        "pid $BROKER_PID on 127.0.0.1:$NW_MQTT_PORT; non-default: max_queued_messages 0, persistence false"
}

kv()
{
    local key=$1 file=$2
    { grep '^RESULT ' "$file" 2>/dev/null || true; } | tail -1 | tr ' ' '\n' |
        sed -n "s/^$key=//p" | head -1
}

ratio()
{
    awk -v a="${1:-}" -v b="${2:-}" 'BEGIN {
        if (a !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/ || b !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/ || b + 0 == 0) print "n/a"
        else printf "%.2f\n", a / b }'
}

fmt0()
{
    awk -v a="${1:-}" 'BEGIN { if (a ~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/) printf "%.0f\n", a; else print "n/a" }'
}

# calc EXPR: floating-point arithmetic on numbers already in the shell.
calc()
{
    awk "BEGIN { print $* }"
}

pid_cpu_s()
{
    python3 - "$1" <<'EOF'
import os, sys
try:
    s = open(f"/proc/{sys.argv[1]}/stat").read()
    f = s[s.rindex(")") + 2:].split()
    print((int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK"))
except Exception:
    print(-1)
EOF
}

summary()
{
    local out="SUMMARY $BENCH_NAME"
    while (($# > 0)); do
        out+=" $1"
        shift
    done
    echo "$out"
}

# loadgen_pair LABEL "SUB ARGS" "PUB ARGS": runs a subscriber and the
# publishers against the bench broker; leaves $NW_WORK/LABEL.sub and
# LABEL.pub with their RESULT lines. Bounded: the subscriber must be
# subscribed within 10 s; each side has its own --max-s and a timeout.
loadgen_pair()
{
    local label=$1 subargs=$2 pubargs=$3 lg=$BUILD/bench/loadgen spid i
    # shellcheck disable=SC2086
    timeout 150 "$lg" sub --port "$NW_MQTT_PORT" --watch-pid "$BROKER_PID" $subargs \
        >"$NW_WORK/$label.sub" 2>"$NW_WORK/$label.sub.err" &
    spid=$!
    for i in $(seq 100); do
        grep -q READY "$NW_WORK/$label.sub" && break
        sleep 0.1
    done
    grep -q READY "$NW_WORK/$label.sub" || { cat "$NW_WORK/$label.sub.err" >&2; bench_log "$label: subscriber not ready"; kill "$spid"; return 1; }
    # shellcheck disable=SC2086
    timeout 150 "$lg" pub --port "$NW_MQTT_PORT" $pubargs >"$NW_WORK/$label.pub" \
        2>"$NW_WORK/$label.pub.err" || { cat "$NW_WORK/$label.pub.err" >&2; bench_log "$label: publisher failed"; }
    wait "$spid" || { cat "$NW_WORK/$label.sub.err" >&2; bench_log "$label: subscriber failed"; }
    grep -h '^RESULT' "$NW_WORK/$label.sub" "$NW_WORK/$label.pub" | sed "s/^/# $label: /"
}

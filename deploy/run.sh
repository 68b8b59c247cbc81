#!/usr/bin/env bash
# The quickstart: the whole of needlewatch on one machine, from a fresh
# Debian 12, in one command. It
#   1. installs what is missing (deploy/install-deps.sh; sudo the first time),
#   2. builds (build/, RelWithDebInfo),
#   3. starts a private mosquitto on a free loopback port, the collector on
#      the embedded SQLite store, and needlewatch-sim with a fleet (200
#      machines in 8 clinics, time compressed 20x: 3 wall minutes are an hour
#      of clinic time) with five injected faults,
#   4. prints the fleet's progress, the collector's state changes and every
#      alert as it fires and resolves,
#   5. then writes the HTML QA report, prints its path, the `needlewatch
#      report` table and the `needlewatch alerts --all` table.
# Ctrl-C stops everything it started. Idempotent: every run gets its own
# directory run/<time>/ (kept afterwards: store, logs, report).
#
#   deploy/run.sh [--minutes MIN] [--devices N] [--clinics M] [--build-dir DIR]
#
#   --minutes MIN    wall minutes the fleet runs, 1-600 (default 3)
#   --devices N      simulated machines, 1-100000 (default 200)
#   --clinics M      clinics they are spread over, 1-10000 (default 8)
#   --build-dir DIR  build tree to use (default build)
#   -h, --help       this text
#
# Exit status: 0 the demo ran and the report was written; 1 a step failed
# (the reason is printed); 2 bad usage; 3 the run finished but some records
# were still unacknowledged after the sim's drain; 130 Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

devices=200 clinics=8 minutes=3 build=build
usage_error() { echo "run.sh: $*" >&2; echo "try: deploy/run.sh --help" >&2; exit 2; }
need_arg() { [ $# -ge 2 ] && [ -n "$2" ] || usage_error "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --devices) need_arg "$@"; devices=$2; shift 2 ;;
    --clinics) need_arg "$@"; clinics=$2; shift 2 ;;
    --minutes) need_arg "$@"; minutes=$2; shift 2 ;;
    --build-dir) need_arg "$@"; build=$2; shift 2 ;;
    --devices=*) devices=${1#*=}; shift ;;
    --clinics=*) clinics=${1#*=}; shift ;;
    --minutes=*) minutes=${1#*=}; shift ;;
    --build-dir=*) build=${1#*=}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage_error "unknown option $1" ;;
  esac
done
int_in() { # NAME VALUE MIN MAX
  [[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] ||
    usage_error "--$1 $2: expected a whole number from $3 to $4"
}
int_in minutes "$minutes" 1 600
int_in devices "$devices" 1 100000
int_in clinics "$clinics" 1 10000

# Colours only on a terminal (and never with NO_COLOR set).
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  B=$'\e[1m' R=$'\e[1;31m' Y=$'\e[1;33m' G=$'\e[32m' D=$'\e[2m' N=$'\e[0m'
else
  B='' R='' Y='' G='' D='' N=''
fi
say() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
fail() { printf '%srun.sh: %s%s\n' "$R" "$*" "$N" >&2; exit 1; }

# Each run in its own directory (a second run in the same second gets -2...).
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p run
run=run/$stamp
for i in 2 3 4 5 6 7 8 9; do mkdir "$run" 2>/dev/null && break; run=run/$stamp-$i; done
[ -d "$run" ] || fail "cannot create a directory under $root/run"
run=$(cd "$run" && pwd)

# Everything started below is recorded here and stopped on any exit, newest
# first: SIGTERM, up to 15 s for a clean stop (the collector flushes and
# acks), then SIGKILL.
pids=() names=()
started() { pids+=("$1"); names+=("$2"); }
stopped=0
stop_all() {
  [ "$stopped" = 1 ] && return 0
  stopped=1
  local i p n t pass grace
  # The servers first (newest first), then the log followers, which end by
  # themselves once the collector is gone and have its last lines to show.
  for pass in servers followers; do
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
      p=${pids[$i]} n=${names[$i]}
      case "$pass:$n" in servers:log\ follower*|followers:[!l]*) continue ;; esac
      grace=0
      [ "$pass" = followers ] && grace=20
      for ((t = 0; t < grace; t++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; continue; }
      kill -TERM "$p" 2>/dev/null || true
      for ((t = 0; t < 150; t++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$p" 2>/dev/null; then
        echo "run.sh: $n (pid $p) did not stop within 15 s: killed" >&2
        kill -KILL "$p" 2>/dev/null || true
      fi
      wait "$p" 2>/dev/null || true
    done
  done
  pids=() names=()
}
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all
  rm -f "$run/.follow" "$run/.run-end"
  case $rc in
    130|143) echo "run.sh: everything it started is stopped; the logs and the store so far are in $run" >&2 ;;
  esac
  exit "$rc"
}
trap on_exit EXIT
trap 'printf "\n%s\n" "run.sh: stopping everything it started (Ctrl-C)" >&2; exit 130' INT
trap 'echo "run.sh: stopping everything it started (SIGTERM)" >&2; exit 143' TERM

say "dependencies (deploy/install-deps.sh)"
bash deploy/install-deps.sh || fail "installing the dependencies failed (see above; it needs root or sudo the first time)"

say "building in $build/ (log: ${run#"$root"/}/build.log)"
jobs=$(nproc 2>/dev/null || echo 2)
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
       cmake --build "$build" -j"$jobs"; } >"$run/build.log" 2>&1; then
  tail -n 30 "$run/build.log" | sed 's/^/    /' >&2
  fail "the build failed: the last lines of $run/build.log are above"
fi
sim_bin=$build/agent/needlewatch-sim
collector_bin=$build/collector/needlewatch-collector
cli_bin=$build/cli/needlewatch
for b in "$sim_bin" "$collector_bin"; do [ -x "$b" ] || fail "the build did not produce $b"; done
echo "    ok: needlewatch-collector, needlewatch-sim$([ -x "$cli_bin" ] && echo ", needlewatch")"

# The sim needs 3 file descriptors per machine.
need_fds=$((devices * 3 + 64))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fds" ]; then
  ulimit -n "$need_fds" 2>/dev/null ||
    fail "$devices machines need $need_fds file descriptors, the limit is $(ulimit -n) (raise ulimit -n or use fewer --devices)"
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
mqtt_port=$(free_port)
http_port=$(free_port)

say "broker: mosquitto on 127.0.0.1:$mqtt_port"
cat >"$run/mosquitto.conf" <<EOF
listener $mqtt_port 127.0.0.1
allow_anonymous true
# No broker persistence: agents keep everything until the collector's
# end-to-end ack, so a broker restart loses nothing; and with
# autosave_on_changes the broker would rewrite its whole database after
# every queued message under this load.
persistence false
# The collector is one subscriber for the whole fleet: let the broker queue
# enough for it that a short stall is not a drop (mosquitto drops the newest
# after acknowledging them, DESIGN §4).
max_queued_messages 200000
max_inflight_messages 100
EOF
# mosquitto refuses to run as root without a user to drop to.
[ "$(id -u)" = 0 ] && echo "user $(id -un)" >>"$run/mosquitto.conf"
mosquitto -c "$run/mosquitto.conf" >"$run/mosquitto.log" 2>&1 &
started $! mosquitto
up=0
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$mqtt_port") 2>/dev/null && { up=1; break; }
  kill -0 "${pids[-1]}" 2>/dev/null || break
  sleep 0.1
done
[ "$up" = 1 ] || { sed 's/^/    /' "$run/mosquitto.log" >&2; fail "mosquitto did not start (its log is above)"; }
echo "    ok"

# The fleet's faults. Start and length are virtual (clinic) time, scaled to
# the run: V = 20 x MIN minutes of clinic time. Each holds over [start,
# start+len) and then clears, so each gives one alert firing, then resolved.
rate=20
V=$((minutes * 20 * 60)) # seconds of clinic time
dev() { printf 'SIM-%04d' $(( $1 <= devices ? $1 : ($1 - 1) % devices + 1 )); }
f_rate=$(dev 7) f_depth=$(dev 42) f_reuse=$(dev 13) f_off=$(dev 99) f_pig=$(dev 150)
faults=(
  --fault "needle_rate_out_of_spec@$f_rate:$((V / 3))s:$((V / 6))s"
  --fault "needle_depth_out_of_spec@$f_depth:$((V * 2 / 3))s:$((V / 10))s"
  --fault "cartridge_reuse@$f_reuse:$((V / 4))s:$((V / 6))s"
  --fault "device_offline@$f_off:$((V / 2))s:$((V / 12))s"
  --fault "pigment_overuse@$f_pig:$((V * 2 / 5))s:$((V / 6))s"
)
sim_args=(-n "$devices" -m "$clinics" --rate "$rate" --seed 7)

# The inventory first, from a one-second dry run of the same fleet (its
# broker port is closed: nothing is sent), so the collector knows every
# machine's clinic before the first window arrives.
"$sim_bin" -b "mqtt://127.0.0.1:$(free_port)" "${sim_args[@]}" --duration 1 --drain-timeout 0s \
  --quiet --inventory-out "$run/inventory.csv" >"$run/inventory-dry-run.log" 2>&1 || true
[ -s "$run/inventory.csv" ] && [ "$(wc -l <"$run/inventory.csv")" -gt "$devices" ] ||
  { tail -n 5 "$run/inventory-dry-run.log" | sed 's/^/    /' >&2
    fail "could not write the inventory (see $run/inventory-dry-run.log)"; }

say "collector: needlewatch-collector, store sqlite:${run#"$root"/}/needlewatch.db"
# The log is followed from the start: sim progress, collector state changes
# and alerts go to the terminal as they happen (alerts on a line of their
# own, prefixed). Devices that go offline after the end of the fleet's run
# (every machine does when the sim stops) are counted, not listed.
: >"$run/collector.log"
: >"$run/sim.log"
mkfifo "$run/.follow"
awk -v B="$B" -v R="$R" -v Y="$Y" -v G="$G" -v D="$D" -v N="$N" \
    -v simlog="$run/sim.log" -v endfile="$run/.run-end" '
  function hms(ts) { return substr(ts, 12, 8) }
  function after_run(ts) {
    if (run_over == "" && (getline e < endfile) > 0) run_over = e
    return run_over != "" && ts > run_over
  }
  /^==> .* <==$/ { src = ($2 == simlog) ? "sim" : "collector"; next }
  /^$/ { next }
  src == "sim" { printf "    %ssim%s        %s\n", D, N, $0; fflush(); next }
  {
    # 2026-11-22T02:33:00.123Z needlewatch-collector[1234] notice alert: alert firing: ...
    ts = $1; level = $3; line = $0
    sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", line)   # "alert: alert firing: RULE on DEV (CLINIC): MSG [sev, id N]"
    if (line ~ /^alert: alert (firing|resolved): /) {
      sub(/^alert: alert /, "", line)
      state = line; sub(/:.*/, "", state)
      sub(/^[a-z]+: /, "", line)
      sev = ""
      if (match(line, /\[[a-z]+, id [0-9]+\]$/)) {
        sev = substr(line, RSTART + 1); sub(/,.*/, "", sev)
        line = substr(line, 1, RSTART - 2)
      }
      if (state == "firing" && after_run(ts) && line ~ /^device_offline .*last will/) {
        offline_at_end++; next
      }
      if (state == "firing")
        printf "    %s%s ALERT FIRING   %-8s %s%s\n", (sev == "critical" ? R : Y), hms(ts), sev, line, N
      else
        printf "    %s%s alert resolved %-8s %s%s\n", G, hms(ts), sev, line, N
      alerts[state]++
      fflush(); next
    }
    if (level == "debug") next
    if (after_run(ts) && match(line, /^alert: [0-9]+ more alert changes not logged/)) {
      n = line; sub(/^alert: /, "", n); sub(/ .*/, "", n); unlogged_at_end += n; next
    }
    printf "    %scollector%s  %s %s\n", D, N, hms(ts), line; fflush()
  }
  END {
    if (offline_at_end + unlogged_at_end)
      printf "    %s(then the fleet stopped and its machines went offline: their device_offline\n     alerts are not listed here, and lie after the end of the report'"'"'s range)%s\n", D, N
  }' <"$run/.follow" &
started $! "log follower (awk)"
awk_pid=$!
"$collector_bin" -b "mqtt://127.0.0.1:$mqtt_port" -s "sqlite:$run/needlewatch.db" \
  -i "$run/inventory.csv" --http "127.0.0.1:$http_port" \
  --set "collector.state=$run/collector-state.db" --set "collector.spool=$run/spool" \
  --set "collector.dead_letter=$run/dead-letter.jsonl" --set "alerts.state=$run/alerts-state.db" \
  --set "alerts.late_after=$((V + 600))s" \
  >>"$run/collector.log" 2>&1 &
started $! needlewatch-collector
collector_pid=$!
tail -n +1 -F --pid="$collector_pid" -s 0.2 "$run/collector.log" "$run/sim.log" >"$run/.follow" 2>/dev/null &
started $! "log follower (tail)"
up=0
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null && { up=1; break; }
  kill -0 "$collector_pid" 2>/dev/null || break
  sleep 0.1
done
if [ "$up" = 0 ]; then
  sleep 0.5
  kill -0 "$collector_pid" 2>/dev/null && fail "the collector did not become healthy within 10 s: curl http://127.0.0.1:$http_port/healthz (log: $run/collector.log)"
  rc=0; wait "$collector_pid" || rc=$?
  fail "the collector exited with status $rc at start (log: $run/collector.log)"
fi
echo "    /healthz, /metrics and the operator API on http://127.0.0.1:$http_port"
echo "    while it runs, in another terminal:"
echo "      $build/cli/needlewatch alerts --store sqlite:$run/needlewatch.db"
echo "      curl -s http://127.0.0.1:$http_port/metrics | grep ^nw_"

say "fleet: needlewatch-sim, $devices machines in $clinics clinics, $minutes min at ${rate}x ($((minutes * rate)) min of clinic time)"
sim_start=$(date +%s)
at() { date -u -d "@$((sim_start + $1 / rate))" +%H:%M:%S; } # wall clock (UTC) of clinic second $1
echo "    injected faults (UTC wall clock; clinic minutes in brackets):"
echo "      $(at $((V / 4)))  cartridge_reuse           on $f_reuse: a new session re-inserts the last session's cartridge"
echo "      $(at $((V / 3)))  needle_rate_out_of_spec   on $f_rate: needle at 152 Hz for $((V / 6 / rate))s ($((V / 6 / 60)) min)"
echo "      $(at $((V * 2 / 5)))  pigment_overuse           on $f_pig: 5x pigment per cycle for $((V / 6 / rate))s ($((V / 6 / 60)) min)"
echo "      $(at $((V / 2)))  device_offline            on $f_off: connection lost for $((V / 12 / rate))s ($((V / 12 / 60)) min)"
echo "      $(at $((V * 2 / 3)))  needle_depth_out_of_spec  on $f_depth: depth 0.62 mm for $((V / 10 / rate))s ($((V / 10 / 60)) min)"
echo "      $(at "$V")  end of the run; the report follows"
echo "    (each alert fires once and resolves once, when the condition has held"
echo "    for the rule's hold time; sim progress every 10 s)"
# The fleet's clinic time reaches the wall clock at the end of its run; what
# happens after it (the drain, every machine going offline) is not the demo.
date -u -d "@$((sim_start + minutes * 60))" +%Y-%m-%dT%H:%M:%S.000Z >"$run/.run-end"
"$sim_bin" -b "mqtt://127.0.0.1:$mqtt_port" "${sim_args[@]}" --duration "${minutes}m" \
  --buffer 256K --ack-timeout 10s --progress 10s --status "$run/sim.status" "${faults[@]}" \
  >>"$run/sim.log" 2>&1 &
started $! needlewatch-sim
sim_pid=$!

sim_rc=0
wait "$sim_pid" || sim_rc=$?
case $sim_rc in
  0|3) ;;
  *) fail "needlewatch-sim failed with exit status $sim_rc (log: $run/sim.log)" ;;
esac
# Let the collector store the fleet's last statuses, then stop it (it
# flushes, acks and exits) and the log follower with it.
sleep 2
say "stopping the collector (SIGTERM: it writes what it holds, acks and exits)"
kill -TERM "$collector_pid" 2>/dev/null || true
collector_rc=0
wait "$collector_pid" || collector_rc=$?
wait "$awk_pid" 2>/dev/null || true
[ "$collector_rc" = 0 ] || fail "the collector exited with status $collector_rc (log: $run/collector.log)"
echo "    ok: collector stopped, status 0"
summary=$(grep -o 'summary: devices=.*' "$run/sim.log" | tail -n 1 || true)
kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" ${summary#summary: }"; }

db=$run/needlewatch.db
[ -s "$db" ] || fail "no store at $db"
# The report covers the fleet's run: [its first window's start, its last
# window's start + 1 ms). The statuses the machines send when the sim stops
# (every one goes offline) are stamped after that, so they fall outside.
read -r from_ms last_ms <<<"$(sqlite3 -separator ' ' "$db" \
  'SELECT min(time), max(time) FROM needle_window')"
[ -n "$from_ms" ] || fail "the store holds no windows (logs: $run/sim.log, $run/collector.log)"
iso() { printf '%s.%03dZ' "$(date -u -d "@$(($1 / 1000))" +%Y-%m-%dT%H:%M:%S)" $(($1 % 1000)); }
to_ms=$((last_ms + 1))
from=$(iso "$from_ms") to=$(iso "$to_ms")

report_ok=1
if [ -x "$cli_bin" ]; then
  store=(--store "sqlite:$db" --from "$from" --to "$to")
  say "QA report ($from .. $to)"
  if "$cli_bin" report "${store[@]}" --format html --output "$run/report.html" --quiet; then
    echo "    HTML report: $run/report.html"
    echo "    (open it in a browser: one page, no scripts, no external resources)"
    echo
    "$cli_bin" report "${store[@]}" --quiet | sed 's/^/    /' || report_ok=0
    say "alerts in the run (needlewatch alerts --all)"
    "$cli_bin" alerts --all "${store[@]}" --quiet | sed 's/^/    /' || report_ok=0
  else
    report_ok=0
  fi
  [ "$report_ok" = 1 ] || echo "run.sh: the needlewatch CLI failed (above); the summary below comes from SQL" >&2
else
  report_ok=0
  say "QA report"
  echo "    $cli_bin is not built in this tree yet: the commands will be"
  echo "      $cli_bin report --store sqlite:$db --from $from --to $to --format html --output $run/report.html"
  echo "      $cli_bin report --store sqlite:$db --from $from --to $to"
  echo "      $cli_bin alerts --all --store sqlite:$db --from $from --to $to"
  echo "    until then, the summary from SQL:"
fi
if [ "$report_ok" = 0 ]; then
  echo
  echo "    per clinic, worst first:"
  sqlite3 -header -column "$db" "
    SELECT clinic,
           count(DISTINCT device)                                   AS machines,
           count(*)                                                  AS windows,
           printf('%.1f', sum(running_ms) / 3600000.0)               AS running_h,
           printf('%.2f', 100.0 * avg(in_spec))                      AS in_spec_pct,
           printf('%.1f', sum(CASE WHEN in_spec = 0 THEN duration_ms ELSE 0 END) / 60000.0)
                                                                     AS out_of_spec_min,
           printf('%.1f', sum(pigment_ul) / 1000.0)                  AS pigment_ml
      FROM needle_window GROUP BY clinic ORDER BY 100.0 * avg(in_spec), clinic;" | sed 's/^/    /'
  echo
  echo "    alerts:"
  sqlite3 -header -column "$db" "
    SELECT device, clinic, rule, severity, state, strftime('%H:%M:%S', time / 1000, 'unixepoch') AS at
      FROM alert WHERE time < $to_ms ORDER BY time;" | sed 's/^/    /'
fi

say "done"
[ -n "$summary" ] && echo "    sim: $(kv windows) windows and $(kv events) events made, $(kv windows_acked) and $(kv events_acked) acknowledged; $(kv unacked) unacknowledged, $(kv resends) re-sent, $(kv windows_dropped) dropped"
echo "    everything is in ${run#"$root"/}/: needlewatch.db (the store), report.html,"
echo "    collector.log, sim.log, mosquitto.log, inventory.csv"
if [ "$sim_rc" = 3 ]; then
  echo "run.sh: the sim ended with records unacknowledged after its drain (its summary line is above)" >&2
  exit 3
fi
[ "$report_ok" = 1 ] || exit 1
exit 0

#!/usr/bin/env bash
# agent_footprint.sh - figure 3: needlewatch-agent's memory and CPU at one
# window per second (DESIGN §9 targets: < 4 MiB RSS, < 1 % of one core).
#
#   bench/agent_footprint.sh [--quick] [--keep] [--build DIR]
#   NW_BENCH_SECONDS=600 bench/agent_footprint.sh     (the issue's 10 minutes; at most 900)
#
# The agent runs with --source sim (the machine model in a session, samples
# every 100 ms, 1 s windows) against mosquitto, with ack_echo
# (tests/integration/ack_echo.c) acknowledging like a collector, for 60 s
# (--quick: 15 s). Sampled every second from /proc: VmRSS, VmHWM, RssAnon,
# RssFile; CPU from utime+stime and /proc/PID/schedstat (ns) over the run
# after a 5 s (--quick: 3 s) start-up. The baseline, measured beside it in
# the same run for the same time: mosquitto_sub (libmosquitto, MQTT 5)
# subscribed to the agent's ack topic - a bare MQTT client process on the
# same libraries - so "agent / baseline" says what needlewatch adds.
# Also checked: the windows the ack responder saw (about one per second)
# and the agent's queue drained (status in its log at stop).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_init agent_footprint "$@"
bench_build needlewatch-agent ack_echo

if ((QUICK)); then RUN=15 SKIP=3; else RUN=60 SKIP=5; fi
if [[ -n "${NW_BENCH_SECONDS:-}" ]]; then
    RUN=$NW_BENCH_SECONDS
    ((RUN >= 10 && RUN <= 900)) || { echo "NW_BENCH_SECONDS: 10..900" >&2; exit 2; }
fi
W=$NW_WORK
AGENT=$BUILD/agent/needlewatch-agent
ACK_ECHO=$BUILD/tests/integration/ack_echo
DEV=FOOT-1

bench_machine start
bench_broker
echo "# agent: --source sim, window 1 s, defaults (queue sync interval 200 ms, max_inflight 16); ${RUN}s, first ${SKIP}s not counted for CPU"

bgp=()
bench_cleanup()
{
    local p
    for p in "${bgp[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}

"$ACK_ECHO" "$NW_MQTT_URL" "$W/acked.txt" >"$W/ack_echo.log" 2>&1 &
bgp+=($!)
mosquitto_sub -h 127.0.0.1 -p "$NW_MQTT_PORT" -V mqttv5 -i footprint-baseline \
    -t "needlewatch/v1/$DEV/ack" >/dev/null 2>"$W/baseline.log" &
bpid=$!
bgp+=("$bpid")
"$AGENT" -d "$DEV" -s sim -b "$NW_MQTT_URL" -q "$W/queue" >"$W/agent.log" 2>&1 &
apid=$!
bgp+=("$apid")

python3 - "$apid" "$bpid" "$RUN" "$SKIP" "$W/samples.tsv" >"$W/footprint.out" <<'EOF'
import os, sys, time
apid, bpid, run, skip, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
tick = os.sysconf("SC_CLK_TCK")

def status(pid):
    d = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "VmSize", "Threads"):
            d[k] = int(v.split()[0])
    return d

def cpu(pid):
    s = open(f"/proc/{pid}/stat").read()
    f = s[s.rindex(")") + 2:].split()
    ticks = (int(f[11]) + int(f[12])) / tick
    ns = int(open(f"/proc/{pid}/schedstat").read().split()[0]) / 1e9
    return ticks, ns

t0 = time.monotonic()
first = {}
rows = []
with open(out, "w") as f:
    f.write("t\tpid\tVmRSS\tVmHWM\tRssAnon\tRssFile\tcpu_ticks_s\tcpu_sched_s\n")
    while time.monotonic() - t0 < run:
        time.sleep(1.0 - ((time.monotonic() - t0) % 1.0))
        t = time.monotonic() - t0
        for name, pid in (("agent", apid), ("baseline", bpid)):
            try:
                st, (ct, cs) = status(pid), cpu(pid)
            except OSError:
                sys.exit(f"{name} (pid {pid}) died")
            f.write(f"{t:.2f}\t{name}\t{st['VmRSS']}\t{st['VmHWM']}\t{st['RssAnon']}\t{st['RssFile']}\t{ct:.2f}\t{cs:.4f}\n")
            if t >= skip and name not in first:
                first[name] = (t, ct, cs)
            rows.append((name, t, st, ct, cs))
def smaps(pid):
    per, cur = {}, None
    for line in open(f"/proc/{pid}/smaps"):
        parts = line.split()
        if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
            cur = parts[5] if len(parts) > 5 else "[anon]"
            cur = os.path.basename(cur) if cur.startswith("/") else cur
        elif parts[0] == "Rss:":
            per[cur] = per.get(cur, 0) + int(parts[1])
    return sorted(per.items(), key=lambda kv: -kv[1])

def rollup(pid):
    d = {}
    for line in open(f"/proc/{pid}/smaps_rollup"):
        k, _, v = line.partition(":")
        if v.strip().endswith("kB"):
            d[k] = int(v.split()[0])
    return d

roll = {}
for name, pid in (("agent", apid), ("baseline", bpid)):
    roll[name] = rollup(pid)
    top = smaps(pid)
    print(f"# {name} RSS by mapping (KiB): " + ", ".join(f"{k} {v}" for k, v in top[:9]))
for name in ("agent", "baseline"):
    mine = [r for r in rows if r[0] == name]
    last = mine[-1]
    t1, ct1, cs1 = first[name]
    dt = last[1] - t1
    st = last[2]
    print(f"RESULT role={name} seconds={dt:.1f} rss_kib={st['VmRSS']} hwm_kib={max(r[2]['VmHWM'] for r in mine)} "
          f"anon_kib={st['RssAnon']} file_kib={st['RssFile']} "
          f"rss_min_kib={min(r[2]['VmRSS'] for r in mine if r[1] >= t1)} "
          f"cpu_pct={100 * (last[4] - cs1) / dt:.3f} cpu_ticks_pct={100 * (last[3] - ct1) / dt:.3f} "
          f"pss_kib={roll[name].get('Pss', -1)} "
          f"uss_kib={roll[name].get('Private_Clean', 0) + roll[name].get('Private_Dirty', 0)}")
EOF
kill -TERM "$apid"
wait "$apid" || true
kill -TERM "$bpid" "${bgp[0]}" 2>/dev/null || true
wait "$bpid" "${bgp[0]}" 2>/dev/null || true
acked=$(grep -c "^W $DEV " "$W/acked.txt" || true)
stopline=$(grep -o 'stopping:.*' "$W/agent.log" | tail -1)

a=$W/footprint.out
printf '%-10s %9s %9s %9s %9s %9s %9s %8s\n' process rss_KiB hwm_KiB anon_KiB file_KiB pss_KiB uss_KiB cpu%
for r in agent baseline; do
    line=$(grep "role=$r " "$a")
    g() { tr ' ' '\n' <<<"$line" | sed -n "s/^$1=//p"; }
    printf '%-10s %9s %9s %9s %9s %9s %9s %8s\n' "$r" "$(g rss_kib)" "$(g hwm_kib)" "$(g anon_kib)" \
        "$(g file_kib)" "$(g pss_kib)" "$(g uss_kib)" "$(g cpu_pct)"
done
echo "# pss: proportional share of shared pages; uss: pages only this process has (what it costs)"
grep '^# ' "$a" || true
echo "# ack responder saw $acked windows from $DEV in ${RUN}s; agent: $stopline"
ga() { grep "role=agent " "$a" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
gb() { grep "role=baseline " "$a" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
HWM=$(ga hwm_kib) CPU=$(ga cpu_pct)
echo
echo "## agent footprint (targets DESIGN §9; baseline: mosquitto_sub, same run)"
printf '%-40s %10s %10s %7s %10s %7s\n' figure agent target ratio baseline ratio
printf '%-40s %10s %10s %7s %10s %7s\n' "peak RSS (VmHWM) KiB" "$HWM" 4096 "$(ratio "$HWM" 4096)" "$(gb hwm_kib)" "$(ratio "$HWM" "$(gb hwm_kib)")"
printf '%-40s %10s %10s %7s %10s %7s\n' "RSS at end KiB" "$(ga rss_kib)" 4096 "$(ratio "$(ga rss_kib)" 4096)" "$(gb rss_kib)" "$(ratio "$(ga rss_kib)" "$(gb rss_kib)")"
printf '%-40s %10s %10s %7s %10s %7s\n' "  of which anonymous (heap, stacks) KiB" "$(ga anon_kib)" "" "" "$(gb anon_kib)" "$(ratio "$(ga anon_kib)" "$(gb anon_kib)")"
printf '%-40s %10s %10s %7s %10s %7s\n' "  private (USS) KiB" "$(ga uss_kib)" "" "" "$(gb uss_kib)" "$(ratio "$(ga uss_kib)" "$(gb uss_kib)")"
printf '%-40s %10s %10s %7s %10s %7s\n' "CPU % of one core" "$CPU" 1.0 "$(ratio "$CPU" 1.0)" "$(gb cpu_pct)" "$(ratio "$CPU" "$(gb cpu_pct)")"
echo
bench_machine end
summary "rss_hwm_kib=$HWM" "rss_kib=$(ga rss_kib)" "uss_kib=$(ga uss_kib)" "cpu_pct=$CPU" "baseline_rss_kib=$(gb rss_kib)" \
    "baseline_cpu_pct=$(gb cpu_pct)" "windows_acked=$acked" "load=$(cut -d' ' -f1 /proc/loadavg)"

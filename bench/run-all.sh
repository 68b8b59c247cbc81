#!/usr/bin/env bash
# run-all.sh - every DESIGN §9 figure in sequence, then one summary table.
#
#   bench/run-all.sh [--quick] [--build DIR] [--out DIR]
#
# Runs broker_baseline.sh, collector_throughput.sh, collector_memory.sh,
# agent_footprint.sh and agent_catchup.sh (each with its own servers on free loopback ports, each
# measuring its baseline in the same invocation; --quick is passed on), keeps
# their full output in DIR (default: a new bench-results.XXXXXX under
# $TMPDIR or /tmp) and prints the table of figures, baselines, ratios and
# targets. Default: about 10 minutes; --quick: about 3 minutes. A figure
# that fails to run is reported as such; the others still run.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pass=()
out=""
while (($# > 0)); do
    case $1 in
    --quick) pass+=(--quick) ;;
    --build) pass+=(--build "$2"); shift ;;
    --out) out=$2; shift ;;
    -h | --help) sed -n '2,/^set -/p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
    *) echo "run-all.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[[ -n "$out" ]] || out=$(mktemp -d "${TMPDIR:-/tmp}/bench-results.XXXXXX")
mkdir -p "$out"

figures=(broker_baseline collector_throughput collector_memory agent_footprint agent_catchup)
rcs=()
start=$(date +%s)
echo "# run-all: $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); logs in $out"
for f in "${figures[@]}"; do
    echo "# ---- $f ($(date +%H:%M:%S))"
    timeout 240 "$here/$f.sh" "${pass[@]}" >"$out/$f.log" 2>"$out/$f.err"
    rc=$?
    rcs+=("$f=$rc")
    awk '/^## /{p=1} p && /^$/{p=0} p' "$out/$f.log" # the figure's own table
    ((rc == 0)) || echo "# $f FAILED (exit $rc): see $out/$f.err"
done
echo
echo "## summary ($(($(date +%s) - start)) s; machine load at end $(cut -d' ' -f1-3 /proc/loadavg))"
cat "$out"/*.log | grep '^SUMMARY ' >"$out/summary.txt" || true
python3 - "$out/summary.txt" "${rcs[@]}" <<'EOF'
import sys
s = {}
for line in open(sys.argv[1]):
    parts = line.split()
    s[parts[1]] = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
rcs = dict(a.split("=") for a in sys.argv[2:])

def f(fig, key):
    return s.get(fig, {}).get(key, "n/a")

def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None

def ratio(a, b):
    a, b = num(a), num(b)
    return "%.2f" % (a / b) if a is not None and b else "n/a"

def ok(value, target, higher=True):
    v = num(value)
    if v is None:
        return "n/a"
    return "yes" if (v >= target if higher else v <= target) else "NO"

rows = []
bb, ct, af, ac = "broker_baseline", "collector_throughput", "agent_footprint", "agent_catchup"
cm = "collector_memory"
rows.append(("broker: QoS 1 msg/s to bare sub, 1000 pubs", f(bb, "qos1_1000"), "42000 (DESIGN)", ratio(f(bb, "qos1_1000"), 42000), "(ref)", ""))
rows.append(("broker: same, libmosquitto sub, Receive Max 20", f(bb, "qos1_libmosq_rm20_1000"), f(bb, "qos1_1000"), ratio(f(bb, "qos1_libmosq_rm20_1000"), f(bb, "qos1_1000")), "(diag)", ""))
rows.append(("broker: QoS 0 msg/s to bare sub, 1000 pubs", f(bb, "qos0_1000"), "100000 (DESIGN)", ratio(f(bb, "qos0_1000"), 100000), "(ref)", ""))
rows.append(("broker: QoS 1 one hop p50 us @10k msg/s", f(bb, "p50_us"), "70 (DESIGN)", ratio(f(bb, "p50_us"), 70), "(ref)", ""))
rows.append(("broker: QoS 1 one hop p99 us @10k msg/s", f(bb, "p99_us"), "500 (DESIGN)", ratio(f(bb, "p99_us"), 500), "(ref)", ""))
r = ratio(f(ct, "live_stored"), f(ct, "base_raw"))
rows.append(("collector live: windows stored/s", f(ct, "live_stored"), f(ct, "base_raw") + " bare sub", r, ">=0.9", ok(r, 0.9)))
rows.append(("collector live: hwm-dropped windows (re-sent)", f(ct, "hwm_drops_live"), "0", "", "0", ok(f(ct, "hwm_drops_live"), 0, False)))
rows.append(("collector live: windows not accounted", f(ct, "pending_live"), "0", "", "0", ok(f(ct, "pending_live"), 0, False)))
rows.append(("collector live: each pair's ratio", f(ct, "live_pair_ratios"), "", "", "(diag)", ""))
r = ratio(f(ct, "catchup_stored"), f(ct, "store_limit"))
rows.append(("collector catch-up: windows stored/s", f(ct, "catchup_stored"), f(ct, "store_limit") + " store", r, ">=0.8", ok(r, 0.8)))
rows.append(("collector catch-up what-if no spool", f(ct, "what_if_nospool_catchup_stored"), f(ct, "store_limit") + " store", ratio(f(ct, "what_if_nospool_catchup_stored"), f(ct, "store_limit")), "(diag)", ""))
rows.append(("collector VmHWM KiB, %s connected devices" % f(cm, "devices"), f(cm, "hwm_kib"), f(cm, "idle_rss_kib") + " idle", ratio(f(cm, "hwm_kib"), f(cm, "idle_rss_kib")), "<=65536", ok(f(cm, "hwm_kib"), 65536, False)))
rows.append(("agent RSS KiB (VmHWM), sim, 1 s windows", f(af, "rss_hwm_kib"), f(af, "baseline_rss_kib") + " mosq_sub", ratio(f(af, "rss_hwm_kib"), f(af, "baseline_rss_kib")), "<4096", ok(f(af, "rss_hwm_kib"), 4095, False)))
rows.append(("agent private memory (USS) KiB", f(af, "uss_kib"), "", "", "(diag)", ""))
rows.append(("agent CPU % of one core", f(af, "cpu_pct"), f(af, "baseline_cpu_pct") + " mosq_sub", ratio(f(af, "cpu_pct"), f(af, "baseline_cpu_pct")), "<1", ok(f(af, "cpu_pct"), 1.0, False)))
rows.append(("agent catch-up windows/s", f(ac, "drain_wps"), f(ac, "broker_1pub_wps") + " broker", ratio(f(ac, "drain_wps"), f(ac, "broker_1pub_wps")), ">=20000", ok(f(ac, "drain_wps"), 20000)))
w = [max(len(str(r[i])) for r in rows) for i in range(6)]
hdr = ("figure", "measured", "baseline (same run)", "ratio", "target", "met")
w = [max(w[i], len(hdr[i])) for i in range(6)]
for r in (hdr,) + tuple(rows):
    print("  ".join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(r)))
print()
print("loads at the end of each figure: " + ", ".join(f"{k} {v.get('load', '?')}" for k, v in s.items()))
print("exit codes: " + ", ".join(f"{k} {v}" for k, v in rcs.items()))
EOF

#!/usr/bin/env python3
"""metrics_poll.py - sample a running collector for bench/collector_throughput.sh.

  metrics_poll.py poll URL COLLECTOR_PID BROKER_PID OUT STOPFILE [MAX_S] [INTERVAL_S]
      every INTERVAL_S (default 0.25) until STOPFILE exists or MAX_S (default
      170) passed: one TSV line per sample with the time (CLOCK_MONOTONIC),
      the collector's /metrics counters, its VmRSS/VmHWM (KiB) and the CPU
      seconds (utime+stime, all threads) of collector and broker.
  metrics_poll.py window OUT WARMUP_S DURATION_S [COUNTER]
      the measurement window: it opens WARMUP_S after the first sample where
      COUNTER (default nw_points_stored_total) is above zero and lasts
      DURATION_S; prints key=value pairs: the counter's rate over the
      window, windows_in rate, CPU % of collector and broker over the
      window, peak RSS.
  metrics_poll.py last OUT
      key=value pairs of the last sample (for the accounting).
"""
import os
import sys
import time
import urllib.request

FIELDS = [
    "nw_points_stored_total", "nw_windows_in_total", "nw_items_rejected_total",
    "nw_writer_pending_points", "nw_acks_sent_total", "nw_store_writes_total",
    "nw_store_failures_total", "nw_seqs_lost_total", "nw_writer_dropped_points_total",
]
HWM = ["worker", "writer", "settle"]
TICK = os.sysconf("SC_CLK_TCK")


def scrape(url):
    vals = {}
    with urllib.request.urlopen(url, timeout=2) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, _, v = line.rpartition(" ")
            vals[name] = float(v)
    out = {f: vals.get(f, 0.0) for f in FIELDS}
    for s in HWM:
        out["hwm_" + s] = vals.get('nw_hwm_drops_total{stage="%s"}' % s, 0.0)
    out["msgs_in"] = vals.get('nw_messages_in_total{kind="telemetry"}', 0.0)
    out["spool_records"] = vals.get("nw_spool_records", 0.0)
    out["rejected_msgs"] = sum(v for k, v in vals.items() if k.startswith("nw_rejected_total{"))
    return out


def cpu_s(pid):
    try:
        s = open("/proc/%s/stat" % pid).read()
        f = s[s.rindex(")") + 2:].split()
        return (int(f[11]) + int(f[12])) / TICK
    except Exception:
        return -1.0


def rss(pid):
    r = h = -1
    try:
        for line in open("/proc/%s/status" % pid):
            if line.startswith("VmRSS:"):
                r = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                h = int(line.split()[1])
    except Exception:
        pass
    return r, h


def poll(url, cpid, bpid, out, stopfile, max_s=170.0, interval=0.25):
    t_end = time.monotonic() + float(max_s)
    keys = None
    with open(out, "w") as f:
        while time.monotonic() < t_end and not os.path.exists(stopfile):
            t = time.monotonic()
            try:
                m = scrape(url)
            except Exception:
                time.sleep(float(interval))
                continue
            m["rss_kb"], m["hwm_kb"] = rss(cpid)
            m["cpu_collector"] = cpu_s(cpid)
            m["cpu_broker"] = cpu_s(bpid)
            if keys is None:
                keys = list(m)
                f.write("t\t" + "\t".join(keys) + "\n")
            f.write("%.3f\t" % t + "\t".join("%g" % m[k] for k in keys) + "\n")
            f.flush()
            time.sleep(max(0.0, float(interval) - (time.monotonic() - t)))


def load(out):
    rows = []
    with open(out) as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            v = line.rstrip("\n").split("\t")
            if len(v) == len(head):
                rows.append(dict(zip(head, map(float, v))))
    return rows


def nearest(rows, t):
    return min(rows, key=lambda r: abs(r["t"] - t))


def window(out, warm, dur, counter="nw_points_stored_total"):
    rows = load(out)
    first = next((r for r in rows if r[counter] > 0), None)
    if first is None:
        print("rate=0 window_s=0")
        return
    a = nearest(rows, first["t"] + float(warm))
    b = nearest(rows, first["t"] + float(warm) + float(dur))
    dt = b["t"] - a["t"]
    if dt <= 0:
        print("rate=0 window_s=0")
        return
    res = {
        "rate": (b[counter] - a[counter]) / dt,
        "in_rate": (b["nw_windows_in_total"] - a["nw_windows_in_total"]) / dt,
        "msgs_in_rate": (b["msgs_in"] - a["msgs_in"]) / dt,
        "window_s": dt,
        "cpu_collector": 100.0 * (b["cpu_collector"] - a["cpu_collector"]) / dt,
        "cpu_broker": 100.0 * (b["cpu_broker"] - a["cpu_broker"]) / dt,
        "pending_max": max(r["nw_writer_pending_points"] for r in rows),
        "spool_max": max(r["spool_records"] for r in rows),
        "rss_max_kb": max(r["rss_kb"] for r in rows),
        "hwm_kb": max(r["hwm_kb"] for r in rows),
    }
    print(" ".join("%s=%.1f" % kv for kv in res.items()))


def last(out):
    rows = load(out)
    if rows:
        print(" ".join("%s=%g" % kv for kv in rows[-1].items()))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "poll":
        poll(*sys.argv[2:])
    elif cmd == "window":
        window(*sys.argv[2:])
    elif cmd == "last":
        last(sys.argv[2])
    else:
        sys.exit(__doc__)

#!/usr/bin/env python3
"""check.py - the checks of the CLI tests that need more than grep.

  check.py expect OUT_DIR     report/devices/sessions/alerts/trace figures of the
                              fixture (tests/cli/fixture.c) against numbers
                              computed by hand below
  check.py csv FILE...        every file parses with the csv module (RFC 4180:
                              CRLF rows, quoted fields) into equal-length rows
  check.py schema SCHEMA FILE the JSON validates against the JSON Schema
  check.py png FILE           the screenshot is a PNG that is not blank
  check.py console LOG        no console message of level error/warning in a
                              chromium --enable-logging=stderr log

Every check prints what it found and exits 1 on the first failure.
"""
import csv
import json
import struct
import sys
import zlib


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def eq(what, got, want, tol=None):
    if tol is None:
        ok = got == want
    else:
        ok = got is not None and abs(got - want) <= tol
    if not ok:
        fail("%s: got %r, want %r" % (what, got, want))


# --- the fixture, computed by hand ------------------------------------------
#
# Every running window is 60 s long with 45 s of needle-on time.
#
# Clínica São Paulo, Unit 2 (model DG-3, spec 100..140 Hz, 0.25..0.50 mm):
#   S1 on SP-1: 60 windows; rate 120 Hz in 50, 150 Hz in 10; depth 0.40 mm
#   S2 on SP-2: 31 seqs, seq 16 lost -> 30 windows; rate 110 Hz; depth 0.30 mm
#               in 20, 0.60 mm in 10
#   running   = 90 x 45 s = 4050 s = 1.125 h
#   rate ok   = (50 + 30) x 45 s -> 80/90 = 88.89 %
#   depth ok  = (60 + 20) x 45 s -> 80/90 = 88.89 %
#   both ok   = (50 + 20) x 45 s -> 70/90 = 77.78 %
#   out of spec = 10 + 10 windows x 1 min = 20 min
#   pigment   = 60 x 10 uL + 30 x 20 uL = 1200 uL = 1.2 mL; / 1.125 h = 1.067 mL/h
#   completeness = 90 received / (60 + 31) expected = 98.90 %
#   sessions 2, machines 2, idle 0; per machine-day 2 / (2 x 7) = 0.143
#   alerts: 101 rate (critical), 201 depth (critical), 102 cartridge_worn
#           (warning) -> 2/1/0, cartridge violations 1
#   Cpk rate: n = 90, mean = (50x120 + 10x150 + 30x110)/90 = 120,
#             SS = 10 x 30^2 + 30 x 10^2 = 12000, s = sqrt(12000/89) = 11.6117,
#             Cpk = min(140-120, 120-100) / (3 s) = 20 / 34.835 = 0.574
#   Cpk depth: mean = (60x0.40 + 20x0.30 + 10x0.60)/90 = 0.40,
#             SS = 20 x 0.01 + 10 x 0.04 = 0.6, s = sqrt(0.6/89) = 0.082107,
#             Cpk = min(0.5-0.4, 0.4-0.25) / (3 s) = 0.1 / 0.24632 = 0.406
#
# North Clinic (DG-3X): S3 on NO-1, 40 windows at 98 Hz / 0.52 mm; NO-2 a
#   2-window test run at 120 Hz / 0.40 mm, no session.
#   default spec: rate ok 2/42 = 4.76 %, depth ok 4.76 %, both 4.76 %,
#     out of spec 40 min; Cpk rate: mean = (40x98 + 2x120)/42 = 99.0476,
#     SS = 40 x 1.0476^2 + 2 x 20.9524^2 = 921.905, s = sqrt(921.905/41) = 4.7419,
#     Cpk = min(140-99.0476, 99.0476-100) / (3 s) = -0.9524 / 14.226 = -0.067
#   with [model "DG-3X"] rate_hz = 95..145, depth_mm = 0.25..0.55: all in
#     spec, 0 min; Cpk rate = min(145-99.0476, 99.0476-95)/(3 s) = 4.0476/14.226 = 0.285
#   running 42 x 45 s = 0.525 h; pigment 40 x 5 uL = 0.2 mL -> 0.381 mL/h
#   machines 2, idle 1 (NO-2), sessions 1 -> 1/14 = 0.071
#   alerts: 301 cartridge_reuse (critical), 501 maintenance_due (warning)
#
# East Clinic: S4 on EA-1, 20 windows, 18 running at 125 Hz / 0.35 mm, 2 idle;
#   pigment 18 x 15 uL = 0.27 mL over 0.225 h = 1.2 mL/h; offline 14:05-14:08
#   inside the session = 3 min; alert 401 device_offline (critical);
#   Cpk: no spread -> null.
#
# Fleet: 5 machines, 1 idle, 4 sessions, 1.875 h, 60 min out of spec (default
#   spec), pigment 1.67 mL, completeness 152/153 = 99.35 %, alerts 4/2/0.
# Ranking (worst first), default spec: North (4.76), São Paulo (77.78), East.
# With the DG-3X override: São Paulo (77.78), then North and East at 100 %:
#   North first, for its cartridge violation.
# Firmware: 2.1.0 = SP-1 + NO-1 (rate ok 50/100, depth ok 60/100);
#   2.2.0 = SP-2 + EA-1 + NO-2 (rate 50/50, depth 40/50 = 80 %).
# Operators: OP-A = S1 + S3 (2 sessions, 1.25 h, rate 50 %), OP-B = S2,
#   OP-C = S4 (only on its session_start event).

SP = "Clínica São Paulo, Unit 2"


def clinic(rep, name):
    for c in rep["clinics"]:
        if c["clinic"] == name:
            return c
    fail("no clinic %r in the report" % name)


def check_report_default(rep):
    eq("ranking", [c["clinic"] for c in rep["clinics"]], ["North Clinic", SP, "East Clinic"])
    sp = clinic(rep, SP)
    want = {
        "machines": 2, "idle_machines": 0, "sessions": 2, "running_hours": 1.125,
        "sessions_per_machine_day": 0.143, "rate_in_spec_pct": 88.89,
        "depth_in_spec_pct": 88.89, "in_spec_pct": 77.78, "out_of_spec_minutes": 20.0,
        "cartridge_violations": 1, "pigment_ml": 1.2, "pigment_ml_per_running_hour": 1.067,
        "alerts_critical": 2, "alerts_warning": 1, "alerts_info": 0,
        "offline_minutes_in_sessions": 0.0, "windows_received": 90, "windows_expected": 91,
        "completeness_pct": 98.90, "rate_cpk": 0.574, "depth_cpk": 0.406,
    }
    for k, v in want.items():
        eq("São Paulo " + k, sp[k], v, 0.0005 if isinstance(v, float) else None)
    no = clinic(rep, "North Clinic")
    want = {
        "machines": 2, "idle_machines": 1, "sessions": 1, "running_hours": 0.525,
        "rate_in_spec_pct": 4.76, "depth_in_spec_pct": 4.76, "out_of_spec_minutes": 40.0,
        "cartridge_violations": 1, "pigment_ml": 0.2, "pigment_ml_per_running_hour": 0.381,
        "alerts_critical": 1, "alerts_warning": 1, "sessions_per_machine_day": 0.071,
        "completeness_pct": 100.0, "rate_cpk": -0.067,
    }
    for k, v in want.items():
        eq("North " + k, no[k], v, 0.0005 if isinstance(v, float) else None)
    ea = clinic(rep, "East Clinic")
    want = {
        "machines": 1, "sessions": 1, "running_hours": 0.225, "in_spec_pct": 100.0,
        "pigment_ml": 0.27, "pigment_ml_per_running_hour": 1.2,
        "offline_minutes_in_sessions": 3.0, "alerts_critical": 1, "cartridge_violations": 0,
        "rate_cpk": None, "depth_cpk": None,
    }
    for k, v in want.items():
        eq("East " + k, ea[k], v, 0.0005 if isinstance(v, float) else None)
    fl = rep["fleet"]
    want = {
        "machines": 5, "idle_machines": 1, "sessions": 4, "running_hours": 1.875,
        "out_of_spec_minutes": 60.0, "pigment_ml": 1.67, "windows_received": 152,
        "windows_expected": 153, "completeness_pct": 99.35, "alerts_critical": 4,
        "alerts_warning": 2, "cartridge_violations": 2, "offline_minutes_in_sessions": 3.0,
    }
    for k, v in want.items():
        eq("fleet " + k, fl[k], v, 0.0005 if isinstance(v, float) else None)
    fw = {f["firmware"]: f for f in rep["firmware"]}
    eq("firmware versions", sorted(fw), ["2.1.0", "2.2.0"])
    eq("2.1.0 rate", fw["2.1.0"]["rate_in_spec_pct"], 50.0, 0.0005)
    eq("2.1.0 depth", fw["2.1.0"]["depth_in_spec_pct"], 60.0, 0.0005)
    eq("2.1.0 machines", fw["2.1.0"]["machines"], 2)
    eq("2.2.0 rate", fw["2.2.0"]["rate_in_spec_pct"], 100.0, 0.0005)
    eq("2.2.0 depth", fw["2.2.0"]["depth_in_spec_pct"], 80.0, 0.0005)
    eq("2.2.0 machines", fw["2.2.0"]["machines"], 3)
    ops = {o["operator"]: o for o in rep["operators"]}
    eq("operators", sorted(ops), ["OP-A", "OP-B", "OP-C"])
    eq("OP-A sessions", ops["OP-A"]["sessions"], 2)
    eq("OP-A hours", ops["OP-A"]["running_hours"], 1.25, 0.0005)
    eq("OP-A rate", ops["OP-A"]["rate_in_spec_pct"], 50.0, 0.0005)
    eq("OP-C sessions (from session_start)", ops["OP-C"]["sessions"], 1)
    days = {d["day"]: d for d in rep["alerts_by_day"]}
    eq("alert days", len(days), 7)
    eq("11-02 alerts", (days["2026-11-02"]["critical"], days["2026-11-02"]["warning"]), (1, 1))
    eq("11-06 alerts", days["2026-11-06"]["warning"], 1)
    dg3 = [m for m in rep["rate_distribution"] if m["model"] == "DG-3"][0]
    eq("DG-3 running windows in the histogram", sum(dg3["counts"]), 60 + 30 + 18)
    bin150 = int((150 - dg3["lo_hz"]) / dg3["bin_hz"])
    eq("DG-3 windows at 150 Hz", dg3["counts"][bin150], 10)


def check_report_config(rep):
    eq("ranking with the DG-3X override", [c["clinic"] for c in rep["clinics"]],
       [SP, "North Clinic", "East Clinic"])
    no = clinic(rep, "North Clinic")
    eq("North in spec with override", no["in_spec_pct"], 100.0, 0.0005)
    eq("North oos with override", no["out_of_spec_minutes"], 0.0, 0.0005)
    eq("North Cpk rate with override", no["rate_cpk"], 0.285, 0.0005)
    eq("specs", [s["model"] for s in rep["specs"]], [None, "DG-3X"])


def check_by_device(rep):
    dev = {d["device"]: d for d in rep["devices"]}
    eq("devices", sorted(dev), ["EA-1", "NO-1", "NO-2", "SP-1", "SP-2"])
    eq("SP-2 completeness", dev["SP-2"]["completeness_pct"], 96.77, 0.0005)
    eq("SP-1 oos", dev["SP-1"]["out_of_spec_minutes"], 10.0, 0.0005)
    eq("NO-2 idle", dev["NO-2"]["idle_machines"], 1)
    eq("NO-1 firmware", dev["NO-1"]["firmware"], "2.1.0")
    eq("worst device", rep["devices"][0]["device"], "NO-1")


def expect(out):
    def load(name):
        with open("%s/%s" % (out, name), encoding="utf-8") as f:
            return json.load(f)

    check_report_default(load("report.json"))
    check_report_config(load("report-config.json"))
    check_by_device(load("report-by-device.json"))
    rep = load("report-clinic.json")
    eq("--clinic filter", [c["clinic"] for c in rep["clinics"]], ["East Clinic"])
    eq("--clinic fleet machines", rep["fleet"]["machines"], 1)
    rep = load("report-model.json")
    eq("--model DG-3X machines", rep["fleet"]["machines"], 2)
    eq("--model DG-3X clinics", [c["clinic"] for c in rep["clinics"]], ["North Clinic"])

    s = load("sessions.json")["sessions"]
    eq("sessions", [x["session"] for x in s], ["S1", "S2", "S3", "S4"])
    eq("S2 windows", (s[1]["windows"], s[1]["windows_expected"]), (30, 31))
    eq("S1 rate in spec", s[0]["rate_in_spec_pct"], 83.3, 0.05)

    d = {x["device"]: x for x in load("devices.json")["devices"]}
    eq("SP-1 state", d["SP-1"]["state"], "online")
    eq("EA-1 state", d["EA-1"]["state"], "offline")
    eq("NO-1 state", d["NO-1"]["state"], "stale")
    eq("SP-1 hours since service", d["SP-1"]["hours_since_service"], 20.8, 0.051)
    eq("NO-2 hours to service", d["NO-2"]["hours_to_service"], 0.5, 0.001)
    eq("open alerts", {k: v["open_alerts"] for k, v in d.items()},
       {"SP-1": 0, "SP-2": 1, "NO-1": 1, "NO-2": 1, "EA-1": 0})
    eq("model from windows", d["NO-2"]["model"], "DG-3X")

    a = load("alerts.json")["alerts"]
    eq("open alerts", [x["id"] for x in a], [201, 301, 501])
    a = load("alerts-all.json")["alerts"]
    eq("all alerts", sorted(x["id"] for x in a), [101, 102, 201, 301, 401, 501])
    eq("resolved", sorted(x["id"] for x in a if x["state"] == "resolved"), [101, 102, 401])

    t = load("trace-cartridge.json")["sessions"]
    eq("trace C-1", [(x["session"], x["device"]) for x in t], [("S1", "SP-1"), ("S3", "NO-1")])
    t = load("trace-cartridge-lot.json")["sessions"]
    eq("trace CL-1", [x["session"] for x in t], ["S1", "S2", "S3"])
    t = load("trace-pigment-lot.json")["sessions"]
    eq("trace PL-2", [(x["session"], x["operator"]) for x in t], [("S3", "OP-A"), ("S4", "OP-C")])
    print("expect: every figure matches the hand-computed values")


def check_csv(files):
    for name in files:
        with open(name, newline="", encoding="utf-8") as f:
            data = f.read()
        if data and "\r\n" not in data:
            fail("%s: rows do not end in CRLF" % name)
        rows = list(csv.reader(data.splitlines(keepends=True), strict=True))
        if not rows:
            fail("%s: empty" % name)
        width = len(rows[0])
        for i, r in enumerate(rows):
            if len(r) != width:
                fail("%s: row %d has %d fields, header %d" % (name, i + 1, len(r), width))
        print("csv: %s: %d rows x %d fields" % (name, len(rows) - 1, width))
    # the quoted clinic name survives
    for name in files:
        with open(name, newline="", encoding="utf-8") as f:
            if SP in f.read() and not any(SP in r for r in csv.reader(open(name, newline="", encoding="utf-8"))):
                fail("%s: the clinic with a comma did not round-trip" % name)


def check_schema(schema_path, doc_path):
    import jsonschema

    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    with open(doc_path, encoding="utf-8") as f:
        doc = json.load(f)
    jsonschema.Draft7Validator.check_schema(schema)
    v = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
    if errors:
        fail("%s: %s at %s" % (doc_path, errors[0].message, list(errors[0].path)))
    print("schema: %s is valid" % doc_path)


def png_pixels(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail("%s: not a PNG" % path)
    pos, idat, w, h, ctype = 8, b"", 0, 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            if depth != 8 or ctype not in (2, 6):
                fail("%s: unexpected PNG format (depth %d, colour type %d)" % (path, depth, ctype))
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    colours = {}
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ft == 1:
                line[x] = (line[x] + a) & 255
            elif ft == 2:
                line[x] = (line[x] + b) & 255
            elif ft == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pr) & 255
        for x in range(0, stride, bpp * 4):  # every 4th pixel is plenty
            px = bytes(line[x:x + 3])
            colours[px] = colours.get(px, 0) + 1
        prev = line
    return w, h, colours


def check_png(path):
    w, h, colours = png_pixels(path)
    total = sum(colours.values())
    top = max(colours.values())
    # a blank page is one colour; charts bring the report's bar colours
    bars = {bytes((0x3a, 0x7d, 0x44)): "in-spec green", bytes((0x7d, 0x3c, 0x98)): "pigment purple",
            bytes((0xc0, 0x39, 0x2b)): "out-of-spec red"}
    found = [name for px, name in bars.items() if colours.get(px, 0) > 20]
    print("png: %dx%d, %d colours, background %.1f %%, chart colours: %s"
          % (w, h, len(colours), 100.0 * top / total, ", ".join(found) or "none"))
    if len(colours) < 16 or top > 0.995 * total:
        fail("%s looks blank" % path)
    if len(found) < 3:
        fail("%s: the charts' bar colours are missing (found %s)" % (path, found))


def check_console(path):
    bad = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            low = line.lower()
            if "console(" in low or "uncaught" in low or ":console" in low:
                bad.append(line.strip())
    if bad:
        fail("console messages:\n  " + "\n  ".join(bad[:10]))
    print("console: no messages in %s" % path)


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "expect":
        expect(args[0])
    elif cmd == "csv":
        check_csv(args)
    elif cmd == "schema":
        check_schema(args[0], args[1])
    elif cmd == "png":
        check_png(args[0])
    elif cmd == "console":
        check_console(args[0])
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()

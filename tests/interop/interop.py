#!/usr/bin/python3
"""Interop test: Google's protobuf runtime against needlewatch's C codec.

    interop.py TOOL PROTO_DIR WORKDIR

protoc compiles proto/needlewatch.proto to Python in WORKDIR. Then, for each
message kind:
  1. Python builds a message, serialises it (plus an unknown field 999, to
     prove forward compatibility), and `TOOL decode KIND FILE` must print the
     same values;
  2. `TOOL encode KIND FILE` writes the C fixture and prints it as JSON, and
     Python must parse the bytes to the same values.
Runs under Debian's /usr/bin/python3 with python3-protobuf.
"""
import json
import math
import os
import subprocess
import sys

T0 = 1795000000000


def fail(msg):
    print("interop: FAIL: " + msg)
    sys.exit(1)


def same(kind, path, a, b):
    if isinstance(a, float) or isinstance(b, float):
        # Floats travel as float32 and are quantised by the C decoder.
        if not math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-6):
            fail("%s %s: %r != %r" % (kind, path, a, b))
    elif a != b:
        fail("%s %s: %r != %r" % (kind, path, a, b))


def unknown_field():
    # Field 999, varint 1: a field from a future schema version.
    tag = (999 << 3) | 0
    out = bytearray()
    while True:
        byte = tag & 0x7F
        tag >>= 7
        out.append(byte | (0x80 if tag else 0))
        if not tag:
            break
    return bytes(out) + b"\x01"


def py_windows(pb):
    m = pb.WindowBatch(device_id="py-dev_01", epoch=2**64 - 2, queue_floor=2**40 - 5)
    for i in range(4):
        w = m.windows.add(seq=2**40 + i, start_ms=T0 + 250 * i, duration_ms=250,
                          running_ms=250, cycles=30 + i,
                          rate_mean_hz=121.5 + i, rate_min_hz=110.25,
                          rate_max_hz=130.75 + i, depth_mean_mm=0.4125,
                          depth_min_mm=0.25, depth_max_mm=0.5, pigment_ul=0.003)
        if i in (0, 2):  # windows 1 and 3 inherit the strings
            w.session_id = "sess-%d" % i
            w.cartridge_id = "CRT.%d" % i
            w.pigment_lot = "" if i == 2 else "LOT:1"
    return m


def expect_windows(m):
    out = {"device_id": m.device_id, "epoch": m.epoch, "queue_floor": m.queue_floor,
           "windows": []}
    prev = {}
    for w in m.windows:
        d = {f: getattr(w, f) for f in (
            "seq", "start_ms", "duration_ms", "running_ms", "cycles", "rate_mean_hz",
            "rate_min_hz", "rate_max_hz", "depth_mean_mm", "depth_min_mm", "depth_max_mm",
            "pigment_ul")}
        for s in ("session_id", "cartridge_id", "pigment_lot"):
            d[s] = getattr(w, s) if w.HasField(s) else prev[s]
        prev = d
        out["windows"].append(d)
    return out


def py_events(pb):
    m = pb.EventBatch(device_id="py-dev_01", epoch=5, queue_floor=1)
    e = m.events.add(seq=1, time_ms=T0, kind=pb.EVENT_KIND_POWER_ON)
    e.power_on.firmware = "3.0.0"
    e.power_on.reason = "watchdog"
    e = m.events.add(seq=2, time_ms=T0 + 1, kind=pb.EVENT_KIND_CARTRIDGE_INSERTED)
    e.cartridge_inserted.cartridge_id = "CRT-9"
    e.cartridge_inserted.needle_config = "3RL"
    e.cartridge_inserted.lot = "L-1"
    e = m.events.add(seq=3, time_ms=T0 + 2, kind=pb.EVENT_KIND_MAINTENANCE)
    e.maintenance.action = "motor replaced – Zürich"
    e.maintenance.resets_service = True
    e = m.events.add(seq=4, time_ms=T0 + 3, kind=pb.EVENT_KIND_CALIBRATION)
    e.calibration.depth_offset_mm = -0.0125
    e.calibration.rate_scale = 1.015625
    return m


EVENT_DEFAULTS = {
    "firmware": "", "boot_reason": "", "session_id": "", "operator_code": "",
    "end_reason": 0, "cartridge_id": "", "needle_config": "", "lot": "", "shade": "",
    "volume_ul": 0.0, "fault_code": 0, "text": "", "action": "", "resets_service": False,
    "depth_offset_mm": 0.0, "rate_scale": 0.0,
}


def expect_events(m):
    out = {"device_id": m.device_id, "epoch": m.epoch, "queue_floor": m.queue_floor,
           "events": []}
    for e in m.events:
        d = dict(EVENT_DEFAULTS, seq=e.seq, time_ms=e.time_ms, kind=e.kind)
        which = e.WhichOneof("detail")
        det = getattr(e, which) if which else None
        if which == "power_on":
            d.update(firmware=det.firmware, boot_reason=det.reason)
        elif which == "session_start":
            d.update(session_id=det.session_id, operator_code=det.operator_code)
        elif which == "session_end":
            d.update(session_id=det.session_id, end_reason=det.reason)
        elif which == "cartridge_inserted":
            d.update(cartridge_id=det.cartridge_id, needle_config=det.needle_config, lot=det.lot)
        elif which == "cartridge_removed":
            d.update(cartridge_id=det.cartridge_id)
        elif which == "pigment_loaded":
            d.update(lot=det.lot, shade=det.shade, volume_ul=det.volume_ul)
        elif which == "fault":
            d.update(fault_code=det.code, text=det.text)
        elif which == "maintenance":
            d.update(action=det.action, resets_service=det.resets_service)
        elif which == "calibration":
            d.update(depth_offset_mm=det.depth_offset_mm, rate_scale=det.rate_scale)
        out["events"].append(d)
    return out


STATUS_FIELDS = ("device_id", "epoch", "state", "time_ms", "firmware", "model", "session_id",
                 "uptime_s", "odometer_cycles", "running_s", "queue_depth", "queue_bytes",
                 "windows_dropped", "events_dropped", "corrupt_records", "last_window_seq",
                 "last_event_seq", "heartbeat_s")
ACK_FIELDS = ("device_id", "epoch", "window_seq", "event_seq", "time_ms")
ALERT_FIELDS = ("device_id", "alert_id", "rule", "severity", "state", "time_ms", "since_ms",
                "value", "threshold", "late", "message", "clinic", "model")


def py_status(pb):
    return pb.Status(device_id="py-dev_01", epoch=5, state=pb.DEVICE_STATE_OFFLINE,
                     time_ms=T0, firmware="3.0.0", model="DG-3X", session_id="",
                     uptime_s=12, odometer_cycles=2**53 + 1, running_s=99, queue_depth=0,
                     queue_bytes=0, windows_dropped=2**32, events_dropped=7,
                     corrupt_records=0, last_window_seq=2**40 + 3, last_event_seq=4,
                     heartbeat_s=30)


def py_ack(pb):
    return pb.Ack(device_id="py-dev_01", epoch=5, window_seq=2**40 + 3, event_seq=4,
                  time_ms=T0 + 99)


def py_alert(pb):
    return pb.Alert(device_id="py-dev_01", alert_id=2**63, rule="cartridge_reuse",
                    severity=pb.SEVERITY_CRITICAL, state=pb.ALERT_STATE_RESOLVED,
                    time_ms=T0, since_ms=T0 - 60000, value=2.0, threshold=1.0, late=False,
                    message='cartridge "CRT-9" seen on 2 devices',
                    clinic="Clínica São Paulo, Unit 2", model="DG-3X")


def flat(m, fields):
    return {f: getattr(m, f) for f in fields}


def compare(kind, want, got, path=""):
    if isinstance(want, dict):
        for k, v in want.items():
            if k not in got:
                fail("%s %s.%s missing" % (kind, path, k))
            compare(kind, v, got[k], path + "." + k)
    elif isinstance(want, list):
        if len(want) != len(got):
            fail("%s %s: %d entries != %d" % (kind, path, len(want), len(got)))
        for i, (a, b) in enumerate(zip(want, got)):
            compare(kind, a, b, "%s[%d]" % (path, i))
    else:
        same(kind, path, want, got)


def main():
    tool, proto_dir, work = sys.argv[1:4]
    subprocess.run(["protoc", "--proto_path=" + proto_dir, "--python_out=" + work,
                    "needlewatch.proto"], check=True)
    sys.path.insert(0, work)
    import needlewatch_pb2 as pb

    kinds = {
        "windows": (py_windows, expect_windows, pb.WindowBatch),
        "events": (py_events, expect_events, pb.EventBatch),
        "status": (py_status, lambda m: flat(m, STATUS_FIELDS), pb.Status),
        "ack": (py_ack, lambda m: flat(m, ACK_FIELDS), pb.Ack),
        "alert": (py_alert, lambda m: flat(m, ALERT_FIELDS), pb.Alert),
    }
    checks = 0
    for kind, (make, expect, cls) in kinds.items():
        # Python -> C
        path = os.path.join(work, "py_%s.bin" % kind)
        with open(path, "wb") as f:
            f.write(make(pb).SerializeToString() + unknown_field())
        out = subprocess.run([tool, "decode", kind, path], capture_output=True, text=True)
        if out.returncode != 0:
            fail("C could not decode Python's %s: %s" % (kind, out.stderr.strip()))
        compare(kind + " (py->c)", expect(make(pb)), json.loads(out.stdout))
        checks += 1
        # C -> Python
        path = os.path.join(work, "c_%s.bin" % kind)
        out = subprocess.run([tool, "encode", kind, path], capture_output=True, text=True)
        if out.returncode != 0:
            fail("C could not encode %s: %s" % (kind, out.stderr.strip()))
        with open(path, "rb") as f:
            m = cls.FromString(f.read())
        compare(kind + " (c->py)", json.loads(out.stdout), expect(m))
        checks += 1
    print("interop: %d passed, 0 failed" % checks)


if __name__ == "__main__":
    main()

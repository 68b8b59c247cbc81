#!/usr/bin/env bash
# cli_sqlite.sh NEEDLEWATCH FIXTURE SOURCE_DIR
#
# The fixture (tests/cli/fixture.c) written into SQLite through the
# collector's store writer, then every command and format of needlewatch:
# report figures against hand-computed values (check.py expect), CSV through
# python3's csv module, JSON against cli/report.schema.json, the 80-column
# promise of the table format, and bad input: unknown flags, bad times and
# values, a missing store, a file that is not a needlewatch store - each
# with its exit code and a one-line message naming what is wrong.
set -euo pipefail
nw=$1 fixture=$2 src=$3
here=$src/tests/cli
work=$(mktemp -d "${TMPDIR:-/tmp}/nw-cli-sqlite.XXXXXX")
trap 'rc=$?; if ((rc == 0)); then rm -rf "$work"; else echo "kept $work"; fi' EXIT
command -v python3 >/dev/null || {
    echo "SKIP: python3 missing"
    exit 77
}
source "$here/run_all.sh"

"$fixture" "sqlite:$work/fx.db"
cli_run_all "$nw" "sqlite:$work/fx.db" "$work/out" "$here/collector.ini"

python3 "$here/check.py" expect "$work/out"
python3 "$here/check.py" csv "$work/out"/*.csv
if python3 -c 'import jsonschema' 2>/dev/null; then
    for f in report.json report-config.json report-by-device.json report-model.json; do
        python3 "$here/check.py" schema "$src/cli/report.schema.json" "$work/out/$f"
    done
else
    echo "WARN: python3-jsonschema missing (deploy/install-deps.sh installs it): schema not checked"
fi
for f in "$work/out"/*.json; do # every JSON output parses
    python3 -c 'import json,sys; json.load(open(sys.argv[1], encoding="utf-8"))' "$f"
done

# table format: at most 80 characters per line (UTF-8 characters, not bytes)
for f in "$work/out"/*.table "$work/out"/*.txt; do
    python3 - "$f" <<'PY'
import sys
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    if len(line.rstrip("\n")) > 80:
        print("FAIL: %s:%d is %d characters wide" % (sys.argv[1], n, len(line.rstrip("\n"))))
        sys.exit(1)
PY
done
echo "table outputs fit 80 columns"
cat "$work/out/report.table"

# --- bad input: exit 2 naming the flag, or 1 with one line -----------------
expect_fail()
{
    local want=$1 pattern=$2 out
    shift 2
    set +e
    out=$("$nw" "$@" 2>&1 >/dev/null)
    local rc=$?
    set -e
    if [[ $rc -ne $want ]]; then
        echo "FAIL: needlewatch $* exited $rc, want $want ($out)"
        exit 1
    fi
    if [[ $(printf '%s\n' "$out" | wc -l) -ne 1 || "$out" != *"$pattern"* ]]; then
        echo "FAIL: needlewatch $*: message \"$out\" is not one line with \"$pattern\""
        exit 1
    fi
    echo "ok: exit $rc: $out"
}
db=sqlite:$work/fx.db
expect_fail 2 "--bogus" report --bogus --store "$db"
expect_fail 2 "unknown command" frobnicate
expect_fail 2 "--from" report --from yesterday --store "$db"
expect_fail 2 "--to" sessions --to 2026-13-01 --store "$db"
expect_fail 2 "--from must be before --to" report --from 2026-11-09 --to 2026-11-02 --store "$db"
expect_fail 2 "--format" devices --format xml --store "$db"
expect_fail 2 "--by" report --by operator --store "$db"
expect_fail 2 "--sort" devices --sort nothing --store "$db"
expect_fail 2 "--severity" alerts --severity fatal --store "$db"
expect_fail 2 "exactly one of" trace --cartridge C-1 --pigment-lot PL-1 --store "$db"
expect_fail 2 "--store" report --store "ftp://nowhere/x"
expect_fail 2 "--store" report --store "influx2://127.0.0.1:1/?org=o&bucket=b"
expect_fail 2 "needs a value" report --store
expect_fail 2 "unexpected argument" sessions extra --store "$db"
expect_fail 2 "--config" report --config /nonexistent.ini --store "$db"
printf '[model "X"]\nrate_hz = 150..100\n' >"$work/bad.ini"
expect_fail 2 "bad.ini:2" report --config "$work/bad.ini" --store "$db"
expect_fail 2 "--for" alerts silence --device SP-1 --for soon
expect_fail 2 "not an alert ID" alerts ack abc
expect_fail 1 "no such database file" report --store "sqlite:$work/missing.db"
echo "not a database" >"$work/junk.db"
expect_fail 1 "junk.db" report --store "sqlite:$work/junk.db"
sqlite3 "$work/other.db" 'CREATE TABLE t (x); INSERT INTO t VALUES (1);' 2>/dev/null ||
    python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("CREATE TABLE t (x)"); c.commit()' "$work/other.db"
expect_fail 1 "not a needlewatch store" sessions --store "sqlite:$work/other.db"
expect_fail 1 "cannot query the store" report --store "influx://127.0.0.1:1/nw" --from -1h
expect_fail 1 "collector" alerts ack 7 --collector http://127.0.0.1:1
# --help and --version everywhere, exit 0
for c in "" report devices sessions alerts trace "alerts ack" "alerts silence"; do
    # shellcheck disable=SC2086
    "$nw" $c --help | grep -q "Usage: needlewatch" || {
        echo "FAIL: needlewatch $c --help"
        exit 1
    }
done
"$nw" --version | grep -q "^needlewatch [0-9]"
"$nw" report --version | grep -q "^needlewatch [0-9]"
# credentials never printed
set +e
out=$("$nw" report --store "influx://alice:s3cr3t@127.0.0.1:1/nw" 2>&1)
set -e
if [[ "$out" == *s3cr3t* || "$out" == *alice* ]]; then
    echo "FAIL: credentials in the message: $out"
    exit 1
fi
echo "ok: credentials not printed: $out"
echo "PASS cli.sqlite"

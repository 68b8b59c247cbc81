# shellcheck shell=bash
# run_all.sh - sourced by the CLI tests: cli_run_all NW STORE OUT_DIR CONFIG
# runs every command and format of needlewatch on the fixture's store and
# writes each output to OUT_DIR/<name>. Fails (returns 1) on the first
# command that does not exit 0.

cli_run_all()
{
    local nw=$1 store=$2 out=$3 config=$4 week=(--from 2026-11-02 --to 2026-11-09) f
    mkdir -p "$out"
    _run()
    {
        local name=$1
        shift
        if ! "$nw" "$@" --store "$store" >"$out/$name" 2>"$out/$name.err"; then
            echo "FAIL: needlewatch $* --store $store exited $?:" >&2
            cat "$out/$name.err" >&2
            return 1
        fi
    }
    for f in table csv json html; do
        _run "report.$f" report "${week[@]}" --format "$f" || return 1
    done
    _run report-config.json report "${week[@]}" --format json --config "$config" || return 1
    _run report-config.txt report "${week[@]}" --config "$config" || return 1
    _run report-by-device.json report "${week[@]}" --by device --format json || return 1
    _run report-by-device.txt report "${week[@]}" --by device || return 1
    _run report-by-device.csv report "${week[@]}" --by device --format csv || return 1
    _run report-clinic.json report "${week[@]}" --clinic "East Clinic" --format json || return 1
    _run report-model.json report "${week[@]}" --model DG-3X --format json || return 1
    _run report-device.txt report "${week[@]}" --device SP-2 || return 1
    for f in table csv json; do
        _run "sessions.$f" sessions --from 2026-11-01 --to 2026-11-09 --format "$f" || return 1
        _run "devices.$f" devices --to 2026-11-09T00:00:00Z --format "$f" --config "$config" ||
            return 1
        _run "alerts.$f" alerts --to 2026-11-09 --format "$f" || return 1
        _run "alerts-all.$f" alerts --all --from 2026-11-01 --to 2026-11-09 --format "$f" ||
            return 1
        _run "trace-cartridge.$f" trace --cartridge C-1 --format "$f" || return 1
    done
    _run devices-sorted.txt devices --to 2026-11-09T00:00:00Z --sort service || return 1
    _run devices-due.json devices --to 2026-11-09T00:00:00Z --service-due 1 --format json ||
        return 1
    _run sessions-op.json sessions --from 2026-11-01 --to 2026-11-09 --operator OP-A \
        --format json || return 1
    _run alerts-crit.json alerts --all --from 2026-11-01 --to 2026-11-09 --severity critical \
        --format json || return 1
    _run trace-cartridge-lot.json trace --cartridge-lot CL-1 --format json || return 1
    _run trace-pigment-lot.json trace --pigment-lot PL-2 --format json || return 1
    _run trace-pigment-lot.csv trace --pigment-lot PL-2 --format csv || return 1
    rm -f "$out"/*.err
}

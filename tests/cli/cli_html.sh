#!/usr/bin/env bash
# cli_html.sh NEEDLEWATCH FIXTURE SOURCE_DIR
#
# The HTML report of the fixture, opened in Debian's headless chromium with
# the network disabled: the screenshot is not blank and shows the charts'
# colours, and the browser logs no console message. A control page that
# does log a console error proves the console check would see one. The
# page must also reference nothing outside itself (no http:, no src=).
set -euo pipefail
nw=$1 fixture=$2 src=$3
here=$src/tests/cli
source "$src/tests/integration/servers.sh"
browser=$(command -v chromium || command -v chromium-browser || true)
[[ -n "$browser" ]] || {
    echo "SKIP: chromium is not installed (deploy/install-deps.sh installs it)"
    exit 77
}
nw_require python3
nw_make_workdir cli-html
"$fixture" "sqlite:$NW_WORK/fx.db"
"$nw" report --store "sqlite:$NW_WORK/fx.db" --from 2026-11-02 --to 2026-11-09 --by device \
    --format html -o "$NW_WORK/report.html"
if grep -Eq '(src|href)=|https?://[a-z]|@import|url\(' \
    <(sed 's|xmlns="http://www.w3.org/2000/svg"||g' "$NW_WORK/report.html"); then
    echo "FAIL: the page references something outside itself"
    exit 1
fi
grep -c "<svg" "$NW_WORK/report.html" | grep -q '^[5-9]' # 2 bar charts, 2 histograms, alerts

shot()
{
    # $1 page, $2 png, $3 log; a private profile, no network, bounded time
    timeout 90 "$browser" --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$NW_WORK/profile" --proxy-server=127.0.0.1:9 \
        --window-size=1200,2200 --screenshot="$2" --enable-logging=stderr --v=0 \
        "file://$1" 2>"$3" >/dev/null || true
    [[ -s "$2" ]] || {
        echo "FAIL: no screenshot of $1"
        tail -20 "$3"
        exit 1
    }
}
shot "$NW_WORK/report.html" "$NW_WORK/report.png" "$NW_WORK/chromium.log"
python3 "$here/check.py" png "$NW_WORK/report.png"
python3 "$here/check.py" console "$NW_WORK/chromium.log"

# the console check sees a console error when there is one
printf '<!DOCTYPE html><html><body><p>x</p><script>console.error("nw-control")</script></body></html>\n' \
    >"$NW_WORK/control.html"
shot "$NW_WORK/control.html" "$NW_WORK/control.png" "$NW_WORK/control.log"
if python3 "$here/check.py" console "$NW_WORK/control.log" >/dev/null; then
    echo "FAIL: the console check missed the control page's console.error"
    exit 1
fi
echo "ok: the control page's console error is detected"
echo "PASS cli.html"

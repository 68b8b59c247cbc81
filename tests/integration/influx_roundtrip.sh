#!/usr/bin/env bash
# integration.influx_roundtrip: starts InfluxDB and VictoriaMetrics on free
# loopback ports and runs the round-trip program (influx_roundtrip.c)
# against both. Usage: influx_roundtrip.sh PATH_TO_influx_roundtrip
set -euo pipefail
prog=${1:?usage: influx_roundtrip.sh PATH_TO_influx_roundtrip}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=servers.sh
source "$here/servers.sh"

nw_require influxd victoria-metrics curl python3
nw_make_workdir influx-roundtrip
nw_start_influxd "$NW_WORK" || exit 1
nw_start_victoria "$NW_WORK" || exit 1
echo "influxd $NW_INFLUX_URL, victoria-metrics $NW_VICTORIA_URL, work $NW_WORK"
"$prog" "$NW_INFLUX_URL" "$NW_VICTORIA_URL"

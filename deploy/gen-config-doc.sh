#!/usr/bin/env bash
# Regenerates README.md's configuration reference tables from the binaries'
# own --help, and its metrics table from the collector's own /metrics, so
# the documented keys and metrics never drift from the code:
#
#   deploy/gen-config-doc.sh [--build-dir DIR]         rewrite README.md
#   deploy/gen-config-doc.sh --check [--build-dir DIR] compare only: exit 1
#                                                      and print a diff if
#                                                      README.md is stale
#   options: --collector BIN --agent BIN (instead of DIR/collector/...,
#            DIR/agent/...), --readme FILE (default README.md)
#
# Each table sits between two marker lines in README.md:
#   <!-- config:needlewatch-collector:begin (deploy/gen-config-doc.sh) -->
#   <!-- config:needlewatch-collector:end -->
# (likewise config:needlewatch-agent and metrics:needlewatch-collector).
# A config table lists every `section.key = DEFAULT  (type, range)` line of
# the program's --help with the description line under it; the metrics
# table every metric a collector serves on /metrics (started for a second
# on loopback with a scratch SQLite store and no broker), with its HELP
# text and labels. Build first (cmake --build build);
# tests/integration/readme_config.sh runs --check.
set -euo pipefail
cd "$(dirname "$0")/.."

check=0 build=build collector='' agent='' readme=README.md
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=1; shift ;;
    --build-dir) build=${2:?--build-dir needs a value}; shift 2 ;;
    --collector) collector=${2:?--collector needs a value}; shift 2 ;;
    --agent) agent=${2:?--agent needs a value}; shift 2 ;;
    --readme) readme=${2:?--readme needs a value}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gen-config-doc: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done
collector=${collector:-$build/collector/needlewatch-collector}
agent=${agent:-$build/agent/needlewatch-agent}
for b in "$collector" "$agent"; do
  [ -x "$b" ] || { echo "gen-config-doc: $b is not built (cmake --build $build)" >&2; exit 1; }
done
[ -f "$readme" ] || { echo "gen-config-doc: no $readme" >&2; exit 1; }

# --help text -> Markdown table (the same columns as the config library's
# NW_CFG_HELP_MARKDOWN style).
table() {
  "$1" --help | awk '
    function cell(s) { gsub(/\|/, "\\|", s); return s }
    function flush() {
      if (key == "") return
      printf "| `%s` | %s | %s | %s | %s |\n", key, type, def, cell(range), cell(help)
      key = ""
    }
    BEGIN { print "| key | type | default | range | description |"; print "|---|---|---|---|---|" }
    /^  [a-z_0-9]+\.[a-z_0-9]+ = / {
      flush()
      line = substr($0, 3)
      key = line; sub(/ = .*/, "", key)
      rest = substr(line, length(key) + 4)
      if (!match(rest, /  \([a-z]+(, [^)]*)?\)$/)) { print "unparsed: " $0 > "/dev/stderr"; exit 3 }
      def = substr(rest, 1, RSTART - 1)
      meta = substr(rest, RSTART + 3, RLENGTH - 4)
      type = meta; range = ""
      if (index(meta, ", ")) { type = substr(meta, 1, index(meta, ", ") - 1); range = substr(meta, index(meta, ", ") + 2) }
      if (def == "\"\"") def = ""
      else if (def != "(secret)") def = "`" cell(def) "`"
      help = ""
      next
    }
    key != "" && /^      [^ ]/ { h = $0; sub(/^ +/, "", h); help = help (help == "" ? "" : " ") h; next }
    { flush() }
    END { flush() }'
}

# The collector's /metrics -> Markdown table: metric, type, labels (each
# label set it serves), meaning (its HELP line).
metrics() {
  local port cpid i
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$tmp/m"
  "$collector" -b "mqtt://127.0.0.1:1" -s "sqlite:$tmp/m/store.db" --http "127.0.0.1:$port" \
    --set "collector.state=$tmp/m/state.db" --set "collector.spool=$tmp/m/spool" \
    --set "collector.dead_letter=$tmp/m/dead.jsonl" --set "alerts.state=$tmp/m/alerts.db" \
    >"$tmp/m/log" 2>&1 &
  cpid=$!
  for ((i = 0; i < 100; i++)); do
    curl -sf "http://127.0.0.1:$port/metrics" >"$tmp/m/metrics" 2>/dev/null && break
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.1
  done
  kill -TERM "$cpid" 2>/dev/null || true
  wait "$cpid" 2>/dev/null || true
  [ -s "$tmp/m/metrics" ] || { echo "gen-config-doc: no /metrics from $collector:" >&2; cat "$tmp/m/log" >&2; exit 1; }
  awk '
    function cell(s) { gsub(/\|/, "\\|", s); return s }
    /^# HELP / { name = $3; h = $0; sub(/^# HELP [^ ]+ /, "", h); help[name] = h; if (!(name in seen)) { order[++n] = name; seen[name] = 1 }; next }
    /^# TYPE / { type[$3] = $4; next }
    /^#/ || /^$/ { next }
    {
      sample = $1; name = sample; lab = ""
      if (index(sample, "{")) { name = substr(sample, 1, index(sample, "{") - 1); lab = substr(sample, index(sample, "{") + 1); sub(/}$/, "", lab) }
      if (!(name in seen)) { order[++n] = name; seen[name] = 1 }
      if (lab == "") next
      keys = ""; vals = ""
      m = split(lab, parts, ",")
      for (i = 1; i <= m; i++) {
        k = parts[i]; sub(/=.*/, "", k); v = parts[i]; sub(/^[^=]*="/, "", v); sub(/"$/, "", v)
        keys = keys (i > 1 ? "," : "") k; vals = vals (i > 1 ? "/" : "") v
      }
      labkeys[name] = keys
      labvals[name] = labvals[name] (labvals[name] == "" ? "" : ", ") vals
    }
    END {
      print "| metric | type | labels | meaning |"
      print "|---|---|---|---|"
      for (i = 1; i <= n; i++) {
        name = order[i]
        l = (name in labkeys) ? "`" labkeys[name] "`: " labvals[name] : ""
        printf "| `%s` | %s | %s | %s |\n", name, type[name], cell(l), cell(help[name])
      }
    }' "$tmp/m/metrics"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$readme" "$tmp/new"
for prog in needlewatch-collector needlewatch-agent metrics; do
  bin=$collector
  [ "$prog" = needlewatch-agent ] && bin=$agent
  if [ "$prog" = metrics ]; then
    metrics >"$tmp/$prog.md"
    begin="<!-- metrics:needlewatch-collector:begin"
    end="<!-- metrics:needlewatch-collector:end -->"
  else
    table "$bin" >"$tmp/$prog.md"
    begin="<!-- config:$prog:begin"
    end="<!-- config:$prog:end -->"
  fi
  [ "$(wc -l <"$tmp/$prog.md")" -gt 3 ] || { echo "gen-config-doc: nothing for $prog" >&2; exit 1; }
  [ "$(grep -c "^$begin" "$tmp/new")" = 1 ] && [ "$(grep -cxF "$end" "$tmp/new")" = 1 ] || {
    echo "gen-config-doc: $readme needs one '$begin (deploy/gen-config-doc.sh) -->' line and one '$end' line" >&2
    exit 1
  }
  awk -v begin="$begin" -v end="$end" -v table="$tmp/$prog.md" '
    index($0, begin) == 1 { print; while ((getline l < table) > 0) print l; skip = 1; next }
    $0 == end { skip = 0 }
    !skip' "$tmp/new" >"$tmp/next"
  mv "$tmp/next" "$tmp/new"
done

if [ "$check" = 1 ]; then
  if ! cmp -s "$readme" "$tmp/new"; then
    echo "gen-config-doc: the configuration or metrics tables in $readme differ from what the binaries print:" >&2
    diff -u "$readme" "$tmp/new" | sed 's/^/  /' >&2 || true
    echo "gen-config-doc: run deploy/gen-config-doc.sh and commit README.md" >&2
    exit 1
  fi
  echo "gen-config-doc: $readme matches the --help of $(basename "$collector") and $(basename "$agent") and the collector's /metrics"
  exit 0
fi
if cmp -s "$readme" "$tmp/new"; then
  echo "gen-config-doc: $readme already up to date"
else
  cat "$tmp/new" >"$readme"
  echo "gen-config-doc: $readme updated"
fi

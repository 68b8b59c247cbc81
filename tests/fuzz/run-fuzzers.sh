#!/usr/bin/env bash
# Runs every libFuzzer target of a -DNW_FUZZ=ON build for a bounded time on a
# scratch copy of its committed corpus (the committed corpus never grows by
# accident). Prints executions per second and corpus size per target; fails
# if any target crashes, leaks or times out.
#   tests/fuzz/run-fuzzers.sh BUILD_DIR SECONDS
set -euo pipefail
build=${1:?usage: run-fuzzers.sh BUILD_DIR SECONDS}
seconds=${2:-20}
src=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for bin in "$build"/tests/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin"); target=${name#fuzz_}
  mkdir -p "$work/$target"
  cp -r "$src/corpus/$target/." "$work/$target/" 2>/dev/null || true
  log="$work/$target.log"
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$work/$target-" "$work/$target" >"$log" 2>&1; then
    line=$(grep -E '^#[0-9]+.*(DONE|pulse)' "$log" | tail -n 1)
    printf 'fuzz %-10s ok: %s; corpus %s files\n' "$target" "$line" \
      "$(find "$work/$target" -type f | wc -l)"
  else
    echo "fuzz $target FAILED:"; tail -n 40 "$log"
    for a in "$work/$target"-*; do [ -f "$a" ] && echo "artifact: $a ($(od -An -tx1 "$a" | head -c 300 | tr -d "\n"))"; done
    status=1
  fi
done
exit $status

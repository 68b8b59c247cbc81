#!/usr/bin/env bash
# The whole needlewatch test suite, from a fresh Debian 12 machine:
#   1. installs every package it needs (deploy/install-deps.sh),
#   2. builds with -Werror and runs every ctest test (unit, fuzz-corpus
#      replay, interop, integration against real mosquitto/InfluxDB/
#      VictoriaMetrics started on free loopback ports),
#   3. rebuilds with AddressSanitizer + UndefinedBehaviorSanitizer and runs
#      them all again,
#   4. builds the libFuzzer targets with clang and runs each for a bounded
#      time (NW_FUZZ_SECONDS, default 20) on a scratch copy of its corpus.
# Idempotent; build trees live in build/, build-asan/, build-fuzz/.
#
#   deploy/test.sh            everything (what CI runs)
#   deploy/test.sh --fast     step 2 without integration tests, no 3 and 4
#
# Exit status is non-zero if any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

fast=0
for arg in "$@"; do
  case "$arg" in
    --fast) fast=1 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

jobs=$(nproc 2>/dev/null || echo 2)
step() { printf '\n==> %s\n' "$*"; }

step "installing dependencies"
bash deploy/install-deps.sh

step "build (RelWithDebInfo, -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

if [ "$fast" = 1 ]; then
  step "fast tests (no servers)"
  ctest --test-dir build -j"$jobs" --output-on-failure -LE 'integration|slow'
  exit 0
fi

step "all tests"
ctest --test-dir build -j"$jobs" --output-on-failure

step "build with AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNW_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j"$jobs"

step "all tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -j"$jobs" --output-on-failure

step "libFuzzer targets (clang), ${NW_FUZZ_SECONDS:-20} s each"
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DNW_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$jobs"
bash tests/fuzz/run-fuzzers.sh build-fuzz "${NW_FUZZ_SECONDS:-20}"

step "all test steps passed"

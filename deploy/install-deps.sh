#!/usr/bin/env bash
# Installs every Debian 12 package that needlewatch's build, tests, benchmarks
# and quickstart need. Idempotent: packages already present are skipped, and
# apt-get runs only when something is missing.
#
# Debian's packages for mosquitto and influxdb start their daemons on the
# default ports from the postinst script; needlewatch never uses those
# instances (tests start their own on free loopback ports), so service starts
# are suppressed during the install with a temporary policy-rc.d.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config git ca-certificates
  clang libclang-rt-14-dev llvm
  # libraries
  libmosquitto-dev libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
  libcurl4-openssl-dev libsqlite3-dev libinih-dev libmicrohttpd-dev
  libcmocka-dev
  libssl-dev  # deploy/plugin: the broker plugin reads client certificates (OpenSSL)
  # servers and clients used by tests, benchmarks and the quickstart
  mosquitto mosquitto-clients mosquitto-dev influxdb victoria-metrics
  sqlite3 curl openssl procps iproute2 python3
  # independent protobuf implementation for the interop test
  python3-protobuf protobuf-compiler
  python3-jsonschema chromium time  # needlewatch CLI: JSON Schema and headless HTML tests, report bench
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
else
  sudo=
fi

echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"

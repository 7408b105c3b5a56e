#!/usr/bin/env bash
# Installs everything wlbtune needs to build and test on Debian 12 (bookworm).
# Idempotent: packages already present are left alone; safe to run again.
# chromium (headless) opens the HTML reports in tests/integration/test_html_report.cpp;
# fonts-liberation gives its pages and screenshots readable text.
# clang and libclang-rt-14-dev (libFuzzer, the sanitizers' runtimes) build the fuzz targets and
# the sanitizer build (scripts/fuzz.sh).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  nlohmann-json3-dev libcli11-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenmpi-dev openmpi-bin
  zlib1g-dev libsimdjson-dev libopenblas-dev libsqlite3-dev
  libxxhash-dev clang-format
  clang libclang-rt-14-dev
  chromium fonts-liberation
  python3-dev python3-numpy pybind11-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"

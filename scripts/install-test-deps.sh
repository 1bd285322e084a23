#!/usr/bin/env bash
# Install what pybpf's test suite needs on a fresh Debian 12 machine (run as root).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pkg in clang-19 llvm-19 libbpf-dev bpftool libxdp1 iproute2 gcc make systemtap-sdt-dev libseccomp2 linux-libc-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# The exporter tests scrape through a real Prometheus server (without its recommended node exporter).
if ! dpkg -s prometheus >/dev/null 2>&1; then
    ((${#need_apt[@]})) || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# Into the checkout's .venv (never the system's Python); the test extra lists what tests import.
source scripts/venv.sh
python3 -m pip install -q --disable-pip-version-check -e '.[test]'

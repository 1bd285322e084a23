#!/usr/bin/env bash
# Run every benchmark in one go on a fresh Debian 12 machine (as root); each prints ratios
# against the real tool measured in the same run (libbpf's C API, BCC's Python API).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
source scripts/venv.sh     # run from the .venv the install went into
# BCC (the Python anchor of the streams bench) and the headers it compiles against.
need=()
for pkg in python3-bpfcc linux-headers-amd64; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
if ((${#need[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || echo "bench: could not install ${need[*]}; BCC rows will be skipped"
fi
for bench in maps_bench load_bench attach_bench streams_bench exporter_bench; do
    if [[ -f "bench/$bench.py" ]]; then
        echo "=== bench/$bench.py"
        python3 "bench/$bench.py"
        echo
    fi
done

#!/usr/bin/env bash
# The whole benchmark report on a fresh Debian 12 machine (as root): installs the anchors, runs every
# comparison of bench/ in one run, writes BENCHMARKS.md and bench/plots/*.png.
#   bash scripts/bench.sh            # the full report (several minutes)
#   bash scripts/bench.sh --smoke    # every comparison once, tiny sizes (under a minute once built)
set -euo pipefail
cd "$(dirname "$0")/.."
# pybpf runs on the distribution's python3 (on Debian 12 the interpreter the README's set-up gets,
# built with profile-guided optimisation), in a venv of its own.  The python3 found first on PATH,
# when it is another interpreter (a pyenv build, say), is timed too on the object-load case.
other_python=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))' 2>/dev/null || true)
if [ -x /usr/bin/python3 ]; then
    export PYBPF_PYTHON=/usr/bin/python3
fi
export PYBPF_VENV="$PWD/.venv-bench"
bash scripts/install-test-deps.sh
source scripts/venv.sh     # run from the venv the install went into
# The anchors: BCC (with the kernel headers its run-time compiler needs), bpftrace, GNU time (peak RSS
# of a whole process).  pybpf's side needs matplotlib and NumPy (the test extra has both).
need=()
for pkg in python3-bpfcc bpfcc-tools linux-headers-amd64 bpftrace time; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
        || echo "bench: could not install ${need[*]}; their rows will say so"
fi
# pythonbpf (PyPI) is an anchor of the tools comparison when it installs here.
python3 -m pip install -q --disable-pip-version-check pythonbpf 2>/dev/null \
    || echo "bench: pythonbpf did not install from PyPI; its rows will say so"
if [ -n "$other_python" ] && [ "$other_python" != "$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')" ]; then
    set -- --also-python "$other_python" "$@"
fi
python3 bench/report.py "$@"

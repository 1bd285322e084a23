#!/usr/bin/env bash
# Install pybpf on a fresh Debian 12 machine and run its demo (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh     # .venv in the checkout, first on PATH
python3 -m pip install -q --disable-pip-version-check -e .
exec pybpf funccount "$@"

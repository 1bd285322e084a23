#!/usr/bin/env bash
# Install pybpf on a fresh Debian 12 machine and run its demo (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check -e .
exec pybpf demo "$@"

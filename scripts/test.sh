#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for the tests and run the whole suite (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
source scripts/venv.sh     # run from the .venv the install went into
# The C test programs are built once up front so a compiler problem shows plainly.
python3 tests/buildprogs.py >/dev/null
exec python3 -m pytest -q -p no:cacheprovider "$@"

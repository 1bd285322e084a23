# Sourced by the other scripts: use a virtual environment in the checkout (.venv) and put it
# first on PATH. Debian 12's own python3 refuses `pip install` outside one (PEP 668,
# "externally-managed-environment"), so nothing is ever installed into the system's Python.
# Creating it needs Debian's python3-venv (ensurepip); it is installed with apt when missing.
# PYBPF_VENV and PYBPF_PYTHON choose another directory and interpreter (scripts/bench.sh does).
venv_dir="${PYBPF_VENV:-$PWD/.venv}"
venv_python="${PYBPF_PYTHON:-python3}"
if ! "$venv_dir/bin/python" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' 2>/dev/null; then
    rm -rf "$venv_dir"
    if ! "$venv_python" -m venv "$venv_dir" >/dev/null 2>&1; then
        rm -rf "$venv_dir"
        echo "creating $venv_dir needs python3-venv: installing it with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq python3-venv >/dev/null
        "$venv_python" -m venv "$venv_dir"
    fi
fi
export VIRTUAL_ENV="$venv_dir"
export PATH="$venv_dir/bin:$PATH"
unset venv_dir venv_python

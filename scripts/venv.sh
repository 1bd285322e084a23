# Sourced by the other scripts: use a virtual environment in the checkout (.venv) and put it
# first on PATH. Debian 12's own python3 refuses `pip install` outside one (PEP 668,
# "externally-managed-environment"), so nothing is ever installed into the system's Python.
# Creating it needs Debian's python3-venv (ensurepip); it is installed with apt when missing.
venv_dir="$PWD/.venv"
if ! "$venv_dir/bin/python" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' 2>/dev/null; then
    rm -rf "$venv_dir"
    if ! python3 -m venv "$venv_dir" >/dev/null 2>&1; then
        rm -rf "$venv_dir"
        echo "creating $venv_dir needs python3-venv: installing it with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$venv_dir"
    fi
fi
export VIRTUAL_ENV="$venv_dir"
export PATH="$venv_dir/bin:$PATH"
unset venv_dir

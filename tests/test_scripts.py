"""The README's two commands work on a stock Debian 12, whose python3 refuses pip installs (PEP 668).

These tests need no root: they read the scripts and build a virtual environment in a temporary
directory with the same helper the scripts source.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"


def test_every_pip_install_runs_inside_the_checkouts_venv():
    for script in sorted(set(SCRIPTS.glob("*.sh")) - {SCRIPTS / "venv.sh"}):
        text = script.read_text()
        for match in re.finditer(r"pip install", text):
            before = text[: match.start()]
            assert "source scripts/venv.sh" in before, f"{script.name}: pip install outside .venv"


def test_scripts_that_run_python_after_installing_use_the_venv():
    for name in ("demo.sh", "test.sh", "bench.sh"):
        text = (SCRIPTS / name).read_text()
        assert "source scripts/venv.sh" in text, name


def test_venv_helper_creates_a_venv_and_puts_it_first_on_path(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPTS / "venv.sh", tmp_path / "scripts" / "venv.sh")
    probe = "source scripts/venv.sh; command -v python3; python3 -c 'import sys; print(sys.prefix != sys.base_prefix)'"
    out = subprocess.run(["bash", "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    python, in_venv = out.split()
    assert python == str(tmp_path / ".venv" / "bin" / "python3")
    assert in_venv == "True"
    # A second run reuses it instead of building it again.
    marker = tmp_path / ".venv" / "marker"
    marker.write_text("")
    subprocess.run(["bash", "-c", "source scripts/venv.sh"], cwd=tmp_path, check=True)
    assert marker.exists()


def test_venv_helper_takes_the_directory_and_interpreter_it_is_given(tmp_path):
    """scripts/bench.sh's venv: PYBPF_VENV names the directory, PYBPF_PYTHON the interpreter it is made from."""
    import os
    import sys

    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPTS / "venv.sh", tmp_path / "scripts" / "venv.sh")
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    env = dict(os.environ, PYBPF_VENV=str(tmp_path / "other"), PYBPF_PYTHON=base)
    out = subprocess.run(["bash", "-c", "source scripts/venv.sh; command -v python3"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(tmp_path / "other" / "bin" / "python3")
    cfg = (tmp_path / "other" / "pyvenv.cfg").read_text()
    if sys.version_info >= (3, 11):   # (venv writes the command it was made with since 3.11)
        assert f"command = {base} -m venv {tmp_path / 'other'}" in cfg
    assert not (tmp_path / ".venv").exists()

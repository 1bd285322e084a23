"""The README's C example: the files in examples/ are the README's text, and they work.

``pybpf build`` compiles examples/readsize.bpf.c, examples/readsize.py loads it, and the log2
histogram (pybpf.hist) holds exactly the reads this test makes.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from buildprogs import vmlinux_h

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
README = ROOT / "README.md"


def _readme_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), re.S)


def test_readme_shows_the_example_files_verbatim():
    assert (EXAMPLES / "readsize.bpf.c").read_text() in _readme_blocks("c")
    assert (EXAMPLES / "readsize.py").read_text() in _readme_blocks("python")
    compile_lines = [b for b in _readme_blocks("sh") if "pybpf build readsize.bpf.c" in b]
    assert compile_lines, "the README gives the compile line"


@pytest.fixture()
def built(tmp_path: Path) -> Path:
    for name in ("readsize.bpf.c", "readsize.py"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    shutil.copy(vmlinux_h(), tmp_path / "vmlinux.h")   # "beside the source", as the README says
    res = subprocess.run([sys.executable, "-m", "pybpf.cli", "build", "readsize.bpf.c"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "readsize.bpf.o"
    return tmp_path


@pytest.mark.root
def test_example_histogram_counts_exactly_the_reads_made(built: Path, capsys):
    spec = importlib.util.spec_from_file_location("readsize_example", built / "readsize.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    sizes = [3, 3, 5000, 100_000, 100_000, 100_000]
    fd = os.open("/dev/zero", os.O_RDONLY)
    try:
        def workload() -> None:
            for n in sizes:
                assert len(os.read(fd, n)) == n
        buckets = example.read_sizes(os.getpid(), workload, path=str(built / "readsize.bpf.o"))
    finally:
        os.close(fd)
    counts = {(low, high): count for low, high, count in buckets}
    # Other reads of this process (none are expected) would land in other buckets.
    assert counts[(2, 3)] == 2
    assert counts[(4096, 8191)] == 1
    assert counts[(65536, 131071)] == 3
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == ["bytes", ":"]
    assert re.search(r"65536 -> 131071\s+: 3\s+\|\*{40}\|", out)

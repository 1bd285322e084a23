"""``pybpf build``: clang with libbpf's flags, and a plain explanation when something is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pybpf
from pybpf.cli import build_cmd

from buildprogs import vmlinux_h

PROGRAM = """\
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

const volatile __u32 target_tgid = 0;
__u64 calls = 0;

SEC("tracepoint/syscalls/sys_enter_getppid")
int count_getppid(void *ctx)
{
	if (bpf_get_current_pid_tgid() >> 32 == target_tgid)
		__sync_fetch_and_add(&calls, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


def pybpf_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpf.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    src = tmp_path / "getppid.bpf.c"
    src.write_text(PROGRAM)
    shutil.copy(vmlinux_h(), tmp_path / "vmlinux.h")
    return src


def test_command_line_has_the_flags_libbpf_programs_need(tmp_path):
    cmd = build_cmd.clang_command(tmp_path / "a.bpf.c", tmp_path / "a.bpf.o", clang="clang-19",
                                  include_dirs=[tmp_path], defines=["X=1"])
    assert cmd[:5] == ["clang-19", "-g", "-O2", "-target", "bpf"]
    assert f"-D__TARGET_ARCH_{build_cmd.target_arch()}" in cmd and "-DX=1" in cmd
    assert cmd[cmd.index("-I") + 1] == str(tmp_path)
    assert cmd[-4:] == ["-c", str(tmp_path / "a.bpf.c"), "-o", str(tmp_path / "a.bpf.o")]
    assert build_cmd.target_arch("x86_64") == "x86" and build_cmd.target_arch("aarch64") == "arm64"


@pytest.mark.root
def test_build_then_load_counts_exactly(source: Path):
    res = pybpf_cli("build", source.name, "-o", "out/prog.o", cwd=source.parent)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "out/prog.o"
    spec = pybpf.ObjectSpec.from_file(source.parent / "out" / "prog.o")
    spec.variables["target_tgid"].value = os.getpid()
    with spec.load() as obj:
        with obj.programs["count_getppid"].attach():
            for _ in range(25):
                os.getppid()
        assert obj.variables["calls"].value == 25


def test_missing_clang_is_explained_with_exit_2(source: Path):
    res = pybpf_cli("build", source.name, "--clang", "clang-pybpf-none", cwd=source.parent)
    assert res.returncode == 2
    assert res.stderr == ("pybpf: error: clang-pybpf-none not found on PATH: install clang "
                          "(apt-get install clang-19)\n")


def test_missing_headers_are_explained_and_vmlinux_h_generated(tmp_path: Path):
    src = tmp_path / "p.bpf.c"
    src.write_text('#include "vmlinux.h"\n#include <bpf/pybpf_no_such_header.h>\n')
    shutil.copy(vmlinux_h(), tmp_path / "vmlinux.h")
    res = pybpf_cli("build", "p.bpf.c", cwd=tmp_path)
    assert res.returncode == 2
    assert "'bpf/pybpf_no_such_header.h' not found: libbpf's headers are missing: install libbpf-dev" in res.stderr
    src.write_text('#include "vmlinux.h"\n')
    (tmp_path / "vmlinux.h").unlink()
    env = dict(os.environ, PATH="/usr/bin:/bin", XDG_CACHE_HOME=str(tmp_path / "cache"))
    res = pybpf_cli("build", "p.bpf.c", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr   # generated from the kernel's BTF, as `pybpf vmlinux-h` does
    assert (tmp_path / "cache" / "pybpf" / os.uname().release / "vmlinux.h").is_file()


def test_compile_errors_show_clang_and_exit_1(tmp_path: Path):
    (tmp_path / "bad.bpf.c").write_text("int f(void) { return undeclared; }\n")
    res = pybpf_cli("build", "bad.bpf.c", cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr.startswith("pybpf: error: bad.bpf.c: clang failed:\n")
    assert "undeclared" in res.stderr

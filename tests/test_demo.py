"""The demo's syscall counter counts exactly what this process does."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pybpf._sys import commands
from pybpf._sys.uapi import ProgType
from pybpf.cli.demo_cmd import syscall_counter
from pybpf.maps import HashMap
from pybpf.tools import syscalls
from pybpf.program import Program

pytestmark = pytest.mark.root  # against the kernel: needs root

GETPPID = syscalls.number("getppid")   # from libseccomp or the kernel headers, for this architecture


def test_counter_sees_every_getppid():
    with HashMap(key="u32", value="u64", max_entries=1024) as counts, \
            Program.load(syscall_counter(counts, tgid=os.getpid()), prog_type=ProgType.RAW_TRACEPOINT) as prog:
        with commands.raw_tracepoint_open(prog.fd, "sys_enter"):
            before = counts.get(GETPPID, 0)
            for _ in range(1000):
                os.getppid()
            after = counts.get(GETPPID, 0)
        # Only this process is counted: other processes calling getppid do not change the count.
        assert after - before == 1000


def test_demo_command_runs():
    out = subprocess.run([sys.executable, "-m", "pybpf.cli", "demo", "--seconds", "1", "--top", "3"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("counting system calls")
    total = int(lines[-1].split()[0])
    assert total > 0

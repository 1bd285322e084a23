"""Shared fixtures: the suite runs as root against the real kernel.

* Every test fails if it leaks a file descriptor (compared by listing
  /proc/self/fd before and after, after a garbage collection).
* bpffs and tracefs are mounted once per session when missing.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))


def _mount(fstype: str, target: str) -> None:
    if os.path.ismount(target):
        return
    os.makedirs(target, exist_ok=True)
    subprocess.run(["mount", "-t", fstype, fstype if fstype != "securityfs" else "none", target], check=False)


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.geteuid() != 0:
        raise pytest.UsageError("pybpf's tests run as root against the real kernel")
    _mount("bpf", "/sys/fs/bpf")
    _mount("tracefs", "/sys/kernel/tracing")
    _mount("securityfs", "/sys/kernel/security")


def open_fds() -> dict[int, str]:
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass  # the fd listing the directory itself
    return fds


@pytest.fixture(autouse=True)
def no_fd_leaks(request: pytest.FixtureRequest):
    """Fail the test if it leaves file descriptors open that it did not have before."""
    gc.collect()
    before = open_fds()
    yield
    gc.collect()
    after = open_fds()
    leaked = {fd: target for fd, target in after.items() if fd not in before or before[fd] != target}
    # pytest's own capture files and sockets come and go; only kernel objects count.
    leaked = {fd: t for fd, t in leaked.items() if t.startswith("anon_inode:") or "bpf" in t or "perf" in t}
    if leaked and "allow_fd_leak" not in request.keywords:
        pytest.fail(f"test leaked file descriptors: {leaked}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_fd_leak: the test keeps kernel objects open on purpose")
    config.addinivalue_line("markers", "root: the test runs against the kernel and needs root")

"""Shared fixtures: the kernel tests run as root against the real kernel.

* Tests that need the kernel are marked ``root`` (a module's ``pytestmark`` or
  one test's decorator). The pure ones (parsing ELF and BTF, asm, CO-RE
  matching against a BTF file, the compiler's front end) run as any user; as
  a user who is not root the ``root`` tests are skipped, saying so.
* :func:`require_feature` skips a test whose kernel lacks a feature, naming it
  (the one way a kernel test skips).
* Every test fails if it leaks a file descriptor (compared by listing
  /proc/self/fd before and after, after a garbage collection).
* bpffs and tracefs are mounted once per session when missing (as root).
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
        return  # only the pure tests run; nothing to mount
    _mount("bpf", "/sys/fs/bpf")
    _mount("tracefs", "/sys/kernel/tracing")
    _mount("securityfs", "/sys/kernel/security")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: runs against the kernel (run the suite as root)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def require_feature(name: str) -> None:
    """Skip the calling test unless the kernel has feature ``name`` (see pybpf.features).

    The skip reason is the NotSupportedError's text: the feature and why it is missing.
    """
    from pybpf import features
    from pybpf.errors import NotSupportedError

    try:
        features.require(name)
    except NotSupportedError as err:
        pytest.skip(str(err))


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

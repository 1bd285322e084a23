"""Small facts about the running kernel that several layers need: version, PMUs, syscall names.

Example::

    >>> kernel_version_code("6.18.44-fc") == (6 << 16) + (18 << 8) + 44
    True
    >>> pmu_type("no-such-pmu") is None
    True
"""

from __future__ import annotations

import functools
import os

__all__ = ["kernel_version_code", "pmu_type", "pmu_field", "syscall_prefix", "EVENT_SOURCES"]

EVENT_SOURCES = "/sys/bus/event_source/devices"


def kernel_version_code(release: str | None = None) -> int:
    """KERNEL_VERSION(a, b, c) of ``release`` (default: the running kernel's ``uname -r``).

    ``c`` is clamped to 255 as the kernel does since Linux 4.14.
    """
    if release is None:
        return _running_kernel_version()
    return _version_code(release)


@functools.lru_cache(maxsize=1)
def _running_kernel_version() -> int:
    return _version_code(os.uname().release)


def _version_code(release: str) -> int:
    release = release or os.uname().release
    parts = []
    for piece in release.split("-", 1)[0].split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    while len(parts) < 3:
        parts.append(0)
    a, b, c = parts
    return (a << 16) + (b << 8) + min(c, 255)


@functools.lru_cache(maxsize=None)
def pmu_type(pmu: str) -> int | None:
    """The dynamic PMU type of ``pmu`` ("uprobe" since Linux 4.17, "kprobe"), or None when there is none."""
    try:
        with open(f"{EVENT_SOURCES}/{pmu}/type") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=None)
def pmu_field(pmu: str, name: str) -> tuple[str, int, int] | None:
    """Where PMU format field ``name`` lives: ("config", low bit, high bit), or None."""
    try:
        with open(f"{EVENT_SOURCES}/{pmu}/format/{name}") as f:
            text = f.read().strip()
    except OSError:
        return None
    attr, _, bits = text.partition(":")
    lo, _, hi = bits.partition("-")
    try:
        low = int(lo)
        return attr, low, int(hi) if hi else low
    except ValueError:
        return None


# The prefix of syscall entry points on architectures with syscall wrappers (Linux 4.17+,
# ARCH_HAS_SYSCALL_WRAPPER): ksyscall probes and LINUX_HAS_SYSCALL_WRAPPER use it.
_SYSCALL_PREFIXES = {"x86_64": "__x64_", "aarch64": "__arm64_", "s390x": "__s390x_", "riscv64": "__riscv_"}


def syscall_prefix() -> str:
    """``__x64_`` (x86_64), ``__arm64_``...: what the kernel puts before ``sys_<name>``; "" elsewhere."""
    return _SYSCALL_PREFIXES.get(os.uname().machine, "")

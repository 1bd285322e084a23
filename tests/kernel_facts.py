"""What the running kernel has, read from the kernel itself rather than from pybpf's probes.

Tests that check pybpf.features compare the probes' answers with these facts, so the expected
answers hold on any kernel: one with kprobes and no lockdown as well as the development VM.
"""

from __future__ import annotations

import functools
import gzip
import os


@functools.lru_cache(maxsize=1)
def kernel_config() -> dict[str, str] | None:
    """``{"CONFIG_X": "y" | "m" | "n" | value}`` from /proc/config.gz or /boot/config-*, or None."""
    release = os.uname().release
    for path in ("/proc/config.gz", f"/boot/config-{release}"):
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        config = {}
        for line in lines:
            if line.startswith("# CONFIG_") and line.endswith(" is not set"):
                config[line[2:-len(" is not set")]] = "n"
            elif line.startswith("CONFIG_") and "=" in line:
                key, _, value = line.partition("=")
                config[key] = value
        return config
    return None


def config_enabled(option: str) -> bool | None:
    """True/False when the kernel config says, None when there is no config to read."""
    config = kernel_config()
    if config is None:
        return None
    return config.get(option, "n") in ("y", "m")


def lockdown() -> str:
    """The active lockdown mode ("none", "integrity", "confidentiality"); "none" without securityfs."""
    try:
        with open("/sys/kernel/security/lockdown") as f:
            text = f.read()
    except OSError:
        return "none"
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if start >= 0 < end else "none"


def version_at_least(version: str) -> bool:
    """True when the running kernel is at least ``version`` ("5.15")."""
    want = tuple(int(p) for p in version.split("."))
    have = []
    for piece in os.uname().release.split("-", 1)[0].split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit()) or "0"
        have.append(int(digits))
    return tuple(have) >= want


def expected_missing() -> set[str]:
    """The pybpf features this kernel lacks, from its config and lockdown mode.

    kprobes: CONFIG_KPROBES (or, without a config to read, no kprobe PMU); kprobe_multi_link:
    also CONFIG_FPROBE; fentry: refused under lockdown (integrity or confidentiality), and
    needs CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS.
    """
    missing = set()
    kprobes = config_enabled("CONFIG_KPROBES")
    if kprobes is None:
        kprobes = os.path.isdir("/sys/bus/event_source/devices/kprobe")
    if not kprobes:
        missing.add("kprobes")
    if not kprobes or config_enabled("CONFIG_FPROBE") is False or not version_at_least("5.18"):
        missing.add("kprobe_multi_link")
    if "kprobe_multi_link" in missing or not version_at_least("6.10"):
        missing.add("kprobe_session")
    if lockdown() != "none" or config_enabled("CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS") is False:
        missing.add("fentry")
    return missing

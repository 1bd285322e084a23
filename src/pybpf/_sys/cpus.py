"""The CPU lists the kernel publishes (``/sys/devices/system/cpu/{online,possible}``).

Per-CPU map values have one slot per *possible* CPU; perf buffers and
per-CPU perf events use the *online* ones.

Example::

    >>> parse_cpu_list("0-3,5")
    [0, 1, 2, 3, 5]
"""

from __future__ import annotations

import functools
import os


def parse_cpu_list(text: str) -> list[int]:
    """CPU numbers from the kernel's list format ("0-3,5")."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if part:
            low, _, high = part.partition("-")
            cpus.extend(range(int(low), int(high or low) + 1))
    return cpus


def _read(name: str) -> list[int]:
    try:
        with open(f"/sys/devices/system/cpu/{name}") as f:
            return parse_cpu_list(f.read())
    except OSError:
        return list(range(os.cpu_count() or 1))


def online_cpus() -> list[int]:
    """The CPUs online now (read each time: CPUs can come and go)."""
    return _read("online")


@functools.lru_cache(maxsize=None)
def possible_cpus() -> int:
    """How many possible CPUs there are: the slots of a per-CPU map value (fixed at boot)."""
    return len(_read("possible"))

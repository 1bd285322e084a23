"""Numbers the kernel hands out → names a person reads: kernel symbols, user symbols, cgroup paths.

- :class:`KernelSymbols`: an address → the kernel function containing it, from
  ``/proc/kallsyms`` (addresses are zero unless read as root, or with
  ``kptr_restrict`` allowing it).
- :class:`UserSymbols`: (pid, address) → the function of the executable or
  library mapped there, through ``/proc/PID/maps`` (address → file offset)
  and the file's ELF symbols (:mod:`pybpf.links.symbols`).
- :class:`CgroupPaths`: a cgroup id (what ``bpf_get_current_cgroup_id()``
  returns: the inode number of the cgroup v2 directory) → its path, found by
  walking the cgroup2 mount; rescanned, at most once a second, on a miss.

Example::

    >>> KernelSymbols().name(addr)              # doctest: +SKIP
    'do_sys_openat2'
    >>> CgroupPaths().path(os.stat("/sys/fs/cgroup/system.slice").st_ino)   # doctest: +SKIP
    '/sys/fs/cgroup/system.slice'
"""

from __future__ import annotations

import bisect
import os
import time

__all__ = ["KernelSymbols", "UserSymbols", "CgroupPaths", "cgroup2_mount"]


class KernelSymbols:
    """``/proc/kallsyms`` sorted by address; :meth:`name` finds the symbol containing an address."""

    def __init__(self, path: str = "/proc/kallsyms") -> None:
        addrs: list[int] = []
        names: list[str] = []
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3 or parts[1] not in "tTwW":
                    continue
                addrs.append(int(parts[0], 16))
                names.append(parts[2])
        order = sorted(range(len(addrs)), key=addrs.__getitem__)
        self._addrs = [addrs[i] for i in order]
        self._names = [names[i] for i in order]

    def name(self, address: int) -> str | None:
        """The text symbol at or below ``address`` (None below the first one or without addresses)."""
        if not self._addrs or self._addrs[-1] == 0:
            return None
        i = bisect.bisect_right(self._addrs, address) - 1
        return self._names[i] if i >= 0 else None


class UserSymbols:
    """Function names for addresses in running processes (cached per file and per address)."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[list[int], list[tuple[int, str]]]] = {}

    def name(self, pid: int, address: int) -> str | None:
        """The function of process ``pid`` containing ``address``, or None."""
        found = _mapping_of(pid, address)
        if found is None:
            return None
        path, offset = found
        starts, syms = self._symbols(pid, path)
        i = bisect.bisect_right(starts, offset) - 1
        if i < 0:
            return None
        size, name = syms[i]
        return name if offset < starts[i] + max(size, 1) else None

    def _symbols(self, pid: int, path: str) -> tuple[list[int], list[tuple[int, str]]]:
        cached = self._files.get(path)
        if cached is not None:
            return cached
        from pybpf.errors import BPFError
        from pybpf.links.symbols import ElfFile

        entries: list[tuple[int, int, str]] = []
        try:
            # Through the process's root so that containers' files are found.
            elf = ElfFile.open(f"/proc/{pid}/root{path}")
            entries = [(s.offset, s.size, s.name) for s in elf.symbols if s.offset]
        except (OSError, BPFError):
            pass
        entries.sort()
        cached = ([e[0] for e in entries], [(e[1], e[2]) for e in entries])
        self._files[path] = cached
        return cached


def _mapping_of(pid: int, address: int) -> tuple[str, int] | None:
    """(file path, file offset) of ``address`` in process ``pid``."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                if lo <= address < hi and len(parts) == 6 and parts[5].startswith("/"):
                    return parts[5].rstrip("\n").removesuffix(" (deleted)"), address - lo + int(parts[2], 16)
    except (OSError, ValueError):
        return None
    return None


def cgroup2_mount() -> str | None:
    """Where the cgroup v2 hierarchy is mounted (None without one)."""
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and parts[2] == "cgroup2":
                    return parts[1]
    except OSError:
        pass
    return None


class CgroupPaths:
    """cgroup id → path under the cgroup2 mount."""

    RESCAN_SECONDS = 1.0

    def __init__(self, root: str | None = None) -> None:
        self.root = root or cgroup2_mount() or "/sys/fs/cgroup"
        self._paths: dict[int, str] = {}
        self._scanned = float("-inf")

    def path(self, cgroup_id: int) -> str | None:
        found = self._paths.get(cgroup_id)
        if found is None and time.monotonic() - self._scanned >= self.RESCAN_SECONDS:
            self._scan()
            found = self._paths.get(cgroup_id)
        return found

    def _scan(self) -> None:
        self._scanned = time.monotonic()
        paths: dict[int, str] = {}
        stack = [self.root]
        try:
            paths[os.stat(self.root).st_ino] = self.root
        except OSError:
            return
        while stack:
            top = stack.pop()
            try:
                with os.scandir(top) as it:
                    for entry in it:
                        if entry.is_dir(follow_symlinks=False):
                            paths[entry.inode()] = entry.path
                            stack.append(entry.path)
            except OSError:
                continue       # removed while we walked
        self._paths = paths

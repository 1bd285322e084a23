"""Function patterns of the tracing tools: ``lib:glob`` or ``/path/to/file:glob``.

``c:malloc``, ``c:str*``, ``libssl:SSL_*``, ``/usr/bin/python3:PyObject_*``.
The part before the first ``:`` is a library found like the dynamic loader
finds it (``c``, ``libc``, ``libc.so.6``), a command in ``$PATH`` (``bash``)
or a path; the part after it is a shell glob over the file's function
symbols.  With ``pid`` a library is the one that process has mapped.  An
IFUNC symbol (glibc's ``strlen``) is probed at the implementation the dynamic
loader selects on this machine, so its calls are counted.

Every failure is a :class:`~pybpf.tools.BadInputError` naming what was not
found and the closest names that exist.

Example::

    >>> probes = resolve(["c:malloc", "c:free"])                # doctest: +SKIP
    >>> [(p.function, p.target) for p in probes]                # doctest: +SKIP
    [('malloc', '/usr/lib/x86_64-linux-gnu/libc.so.6'), ('free', '/usr/lib/x86_64-linux-gnu/libc.so.6')]
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from pybpf.errors import BPFError
from pybpf.links.ifunc import select_implementations
from pybpf.links.ldcache import read_ld_cache
from pybpf.links.symbols import ElfFile
from pybpf.links.uprobe import resolve_target_for
from pybpf.tools import BadInputError

__all__ = ["Probe", "split", "resolve", "resolve_one", "by_target"]

_SONAME = re.compile(r"^lib(.+?)\.so")


@dataclass(frozen=True)
class Probe:
    """One function to probe: its name, the file it is in, its file offset, and the pattern that chose it."""

    function: str
    target: str
    offset: int
    pattern: str


def split(pattern: str) -> tuple[str, str]:
    """``(target, glob)`` of a pattern; a pattern without a target is a BadInputError.

    >>> split("c:str*")
    ('c', 'str*')
    >>> split("/usr/bin/python3:Py_*")
    ('/usr/bin/python3', 'Py_*')
    """
    target, sep, glob = pattern.partition(":")
    if not sep or not target or not glob:
        hint = f"c:{pattern}" if pattern and ":" not in pattern else "c:malloc"
        raise BadInputError(f"pattern {pattern!r} needs a library or file and a function glob, like {hint!r}")
    return target, glob


def _close(word: str, names: Iterable[str], n: int = 4) -> list[str]:
    import difflib   # only for this message

    return difflib.get_close_matches(word, sorted(set(names)), n=n, cutoff=0.5)


def _target_names() -> list[str]:
    """Names a target may be given by: sonames and their short forms, and commands in $PATH."""
    names = []
    for soname, _path in read_ld_cache():
        names.append(soname)
        m = _SONAME.match(soname)
        if m:
            names.append(m.group(1))
    for d in os.environ.get("PATH", "").split(":"):
        try:
            names.extend(os.listdir(d))
        except OSError:
            continue
    return names


def _missing_target(target: str) -> BadInputError:
    if "/" in target:
        parent = os.path.dirname(target) or "."
        try:
            close = _close(os.path.basename(target), os.listdir(parent))
            where = [os.path.join(parent, c) for c in close]
        except OSError:
            where = []
            close = []
        msg = f"no file {target}"
        if not os.path.isdir(parent):
            msg += f" (no directory {parent})"
    else:
        where = _close(target, _target_names())
        msg = f"no library or command {target!r}"
    if where:
        msg += f"; closest: {', '.join(where)}"
    return BadInputError(msg)


def resolve_target(target: str, pid: int | None = None) -> str:
    """The path of a target (library, command or path); BadInputError with the closest names if none."""
    try:
        return resolve_target_for(target, pid)
    except (FileNotFoundError, ValueError):
        raise _missing_target(target) from None


def resolve_one(pattern: str, pid: int | None = None) -> list[Probe]:
    """The functions one pattern names, sorted by name (one per address)."""
    target, glob = split(pattern)
    path = resolve_target(target, pid)
    try:
        elf = ElfFile.open(path)
        names = elf.by_name
    except BPFError as exc:
        raise BadInputError(f"{pattern}: {path} is not an ELF file with symbols ({exc})") from None
    try:
        symbols = elf.match(glob)
    except BPFError:
        symbols = []
    if not symbols:
        stem = glob.strip("*?[]") or glob
        close = _close(stem, names)
        if not close:
            close = sorted(n for n in names if stem and stem.lower() in n.lower())[:4]
        msg = f"no function in {path} matches {glob!r}"
        if close:
            msg += f"; closest: {', '.join(close)}"
        elif not names:
            msg += " (the file has no function symbols: stripped?)"
        raise BadInputError(msg)
    # IFUNCs (glibc's strlen, memcpy...): probe the implementation the loader picks, not the resolver.
    impls, _ = select_implementations(elf, symbols, warn=False)
    return [Probe(s.name, path, impl.offset, pattern) for s, impl in zip(symbols, impls)]


def resolve(patterns: Iterable[str], pid: int | None = None) -> list[Probe]:
    """Every function the patterns name, in pattern order; a function named twice is kept once.

    Functions that share an address (aliases like ``open``/``open64``) are one probe.
    """
    seen: set[tuple[str, int]] = set()
    out: list[Probe] = []
    for pattern in patterns:
        for probe in resolve_one(pattern, pid):
            key = (probe.target, probe.offset)
            if key not in seen:
                seen.add(key)
                out.append(probe)
    if not out:
        raise BadInputError("no function to trace")
    return out


def by_target(probes: Sequence[Probe]) -> dict[str, tuple[list[int], list[int]]]:
    """Per file: the probes' indexes (their cookies) and file offsets, for one uprobe_multi attach each.

    >>> by_target([Probe("a", "/x", 16, "x:*"), Probe("b", "/y", 32, "y:*"), Probe("c", "/x", 48, "x:*")])
    {'/x': ([0, 2], [16, 48]), '/y': ([1], [32])}
    """
    out: dict[str, tuple[list[int], list[int]]] = {}
    for cookie, probe in enumerate(probes):
        cookies, offsets = out.setdefault(probe.target, ([], []))
        cookies.append(cookie)
        offsets.append(probe.offset)
    return out

"""What the hook modules share: labels for messages, the type check, u64 lists.

:func:`check_program` raises a TypeError naming the right ``attach_*``
method (:func:`pybpf.links.registry.method_for`) when a program of the wrong
type reaches a hook.  :class:`~pybpf.links.link.Link`,
:class:`~pybpf.links.link.LinkGroup` and :class:`~pybpf.links.info.LinkInfo`
live in their own modules and are re-exported here for older imports.

Example::

    check_program(prog, (ProgType.TRACEPOINT,), "attach_tracepoint")
"""

from __future__ import annotations

from collections.abc import Mapping

from pybpf._sys.uapi import AttachType, ProgType
from pybpf.errors import ArgumentError
from pybpf.links.info import LinkInfo
from pybpf.links.link import Link, LinkGroup, close_all
from pybpf.links.registry import method_for
from pybpf.program import program_fd as prog_fd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Sequence

__all__ = ["Link", "LinkGroup", "LinkInfo", "close_all", "check_program", "prog_fd", "u64_list", "cookie_list"]

_U64 = 1 << 64


def _label(program: Any) -> str:
    label = getattr(program, "_label", None)
    if isinstance(label, str):
        return label
    name = getattr(program, "name", "")
    return f"program '{name}'" if name else "program"


def _ptype(program: Any) -> ProgType | int | None:
    t = getattr(program, "type", None)
    try:
        return ProgType(t) if t is not None else None
    except ValueError:
        return t


def check_program(program: Any, allowed: Iterable[ProgType], method: str,
                  attach_types: Iterable[Any] | None = None) -> None:
    """TypeError naming the right method when ``program`` is of the wrong type for ``method``."""
    allowed = tuple(allowed)
    pt = _ptype(program)
    eat = getattr(program, "expected_attach_type", None)
    if pt is None:
        raise TypeError(f"{method}() takes a pybpf.Program, not {type(program).__name__}")
    ok = pt in allowed
    if ok and attach_types is not None:
        ok = eat in tuple(attach_types)
    if not ok:
        kind = pt.name if isinstance(pt, ProgType) else str(pt)
        extra = ""
        if eat and isinstance(pt, ProgType) and pt in allowed:
            try:
                extra = f" loaded for {AttachType(eat).name}"
            except ValueError:
                extra = f" loaded for attach type {eat}"
        raise TypeError(f"{_label(program)} is a {kind} program{extra}; attach it with {method_for(pt, eat)}"
                        f" (not {method}())")


def u64_list(values: Sequence[Any], what: str) -> list[int]:
    """``values`` as u64s (an s64 is taken as its u64); TypeError/ArgumentError naming ``what``."""
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{what} must be ints, not {type(v).__name__}")
        if not -(1 << 63) <= v < _U64:
            raise ArgumentError(f"{what} value {v:#x} is out of range (a u64, or an s64 taken as its u64: -2**63..2**64-1)")
        out.append(v % _U64)
    return out


def cookie_list(cookies: Sequence[int] | Mapping[str, int] | None, names: list[str]) -> list[int] | None:
    """One cookie per probe point of a multi link, from a sequence or a ``{name: cookie}`` mapping."""
    if cookies is None:
        return None
    if isinstance(cookies, Mapping):
        unknown = [k for k in cookies if k not in set(names)]
        if unknown:
            raise ValueError(f"cookies name functions that are not probed: {', '.join(map(str, unknown[:5]))}")
        return u64_list([cookies.get(n, 0) for n in names], "cookies")
    if isinstance(cookies, (str, bytes)):
        raise TypeError("cookies must be a sequence of ints or a mapping of name to int")
    values = list(cookies)
    if len(values) != len(names):
        raise ValueError(f"{len(values)} cookies for {len(names)} probe points: give exactly one cookie per point"
                         + (f" (the points are {', '.join(names[:6])}{', ...' if len(names) > 6 else ''})"
                            if len(names) <= 50 else ""))
    return u64_list(values, "cookies")

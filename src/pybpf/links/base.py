"""What the hook modules share about programs: labels for messages, the type check.

:func:`check_program` raises a TypeError naming the right ``attach_*``
method (:func:`pybpf.links.registry.method_for`) when a program of the wrong
type reaches a hook.  :class:`~pybpf.links.link.Link`,
:class:`~pybpf.links.link.LinkGroup` and :class:`~pybpf.links.info.LinkInfo`
live in their own modules and are re-exported here for older imports.

Example::

    check_program(prog, (ProgType.TRACEPOINT,), "attach_tracepoint")
"""

from __future__ import annotations

from typing import Any, Iterable

from pybpf._sys.uapi import AttachType, ProgType
from pybpf.links.info import LinkInfo
from pybpf.links.link import Link, LinkGroup, close_all
from pybpf.links.registry import method_for
from pybpf.program import program_fd as prog_fd

__all__ = ["Link", "LinkGroup", "LinkInfo", "close_all", "check_program", "prog_fd"]


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

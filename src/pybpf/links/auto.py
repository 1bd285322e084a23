"""Attach a program from its ELF section name, like libbpf's auto-attach.

``attach(program)`` reads ``program.section`` (set by the ELF loader), finds
the hook whose descriptor lists the section's kind
(:func:`pybpf.links.hooks`, the table in ``docs/sections.md``) and calls its
attach function with the arguments the section's target gives
(``uprobe//bin/bash:readline`` → ``attach_uprobe("/bin/bash", "readline")``).

Hooks whose section does not say where to attach need keyword arguments,
which ``attach`` passes on: ``interface=`` (xdp, tc/tcx), ``cgroup=``
(cgroup_skb/..., cgroup/...), ``sock=`` (socket), ``pid=`` (uprobes, usdt,
perf_event), ``cookie=``; ``perf_event`` needs ``event_type``/``config``
and a sample period or frequency.  A ``usdt`` program whose object has
libbpf's ``__bpf_usdt_specs`` map (``maps=`` or ``program.object.maps``)
gets its argument specs written there, so ``bpf_usdt_arg()`` works.  Without
them the error says which method or argument to use.  Keyword arguments
override what the section says (``attach(target="/other/bin")``...).

``attach_all(programs)`` attaches every program whose section is complete
and skips the others (as libbpf's skeleton ``attach`` does); it returns
``{name: Link}`` whose ``skipped`` attribute says, per program, why it was
not attached (also given as a RuntimeWarning), and closes what it attached if one
attach fails.

Example::

    links = obj.attach_all()
    for name, why in links.skipped.items():
        print(name, "not attached:", why)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from pybpf.errors import BPFError, LinkError
from pybpf.links.base import _label
from pybpf.links.link import Link, close_all
from pybpf.links.hook import Hook, section_of
from pybpf.links.registry import hook_for_section
from pybpf.object.sections import parse_section, unknown_section
from pybpf.object.struct_ops_map import StructOpsMap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

__all__ = ["attach", "attach_all", "attach_object", "attachable", "AutoAttachError", "AttachAllResult"]

class AutoAttachError(LinkError, ValueError):
    """The section name does not say enough to attach the program (or no section is known)."""

    def __str__(self) -> str:
        return LinkError.__str__(self)


class AttachAllResult(dict):  # dict[str, Link]
    """What :func:`attach_all` attached, ``{name: Link}``; ``skipped`` is ``{name: why not}``."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: dict[str, str] = {}


def _plan(program: Any, kwargs: Mapping[str, Any], maps: Mapping[str, Any] | None = None) -> tuple[Hook, dict]:
    """The hook and its keyword arguments for ``program``; AutoAttachError when the section says too little."""
    section = getattr(program, "section", None)
    if not section:
        raise AutoAttachError(f"{_label(program)} has no ELF section name (it was not loaded from an object); "
                              "call one of the attach_*() methods")
    info = parse_section(section)
    if info is None:
        raise AutoAttachError(f"{_label(program)}: {unknown_section(section)}; call an attach_*() method")
    hook = hook_for_section(info.kind)
    try:
        if hook is None:
            raise LookupError(f"pybpf does not auto-attach {info.kind} programs")
        kw = hook.plan(info, kwargs)
    except (LookupError, ValueError) as exc:
        raise AutoAttachError(f"{_label(program)} (SEC(\"{section}\")): cannot attach from the section name "
                              f"alone: {exc}") from None
    if hook.object_args is not None:
        for key, value in hook.object_args(program, maps).items():
            kw.setdefault(key, value)
    return hook, kw


def attach(program: Any, *, maps: Mapping[str, Any] | None = None, **kwargs: Any) -> Link:
    """Attach ``program`` as its section name says (see :mod:`pybpf.links.auto`).

    ``maps`` (the object's maps by name) lets a ``usdt`` program find
    libbpf's ``__bpf_usdt_specs`` map; ``program.object.maps`` is used too.

    Example: ``obj.programs["on_open"].attach(cookie=1)`` for a
    ``SEC("tp/syscalls/sys_enter_openat")`` program.
    """
    hook, kw = _plan(program, kwargs, maps)
    return hook.attach(program, **kw)


def attachable(program: Any) -> bool:
    """True if ``program.section`` alone says where to attach it."""
    return _why_not(program) is None


def _why_not(program: Any) -> str | None:
    try:
        _plan(program, {})
    except AutoAttachError as exc:
        return str(exc)
    return None


def _attached_by_a_map(program: Any) -> bool:
    info = section_of(program)
    hook = hook_for_section(info.kind) if info is not None else None
    return hook is not None and not hook.on_program


def attach_all(programs: Mapping[str, Any] | Iterable[Any], *, maps: Mapping[str, Any] | None = None,
               **kwargs: Any) -> AttachAllResult:
    """Attach every auto-attachable program; skip the others and say why; all or nothing on error.

    Returns ``{name: Link}`` with ``.skipped = {name: reason}``; each skipped
    program is also reported as a :class:`RuntimeWarning` (:mod:`warnings`).
    Programs that a map attaches (struct_ops) are neither attached nor
    reported: ``Object.attach_all()`` (:func:`attach_object`) registers their map.
    """
    items = list(programs.items()) if isinstance(programs, Mapping) else [(getattr(p, "name", str(i)), p)
                                                                          for i, p in enumerate(programs)]
    done = AttachAllResult()
    try:
        for name, prog in items:
            if _attached_by_a_map(prog):
                continue
            why = _why_not(prog)
            if why is not None:
                done.skipped[name] = why
                continue
            done[name] = attach(prog, maps=maps, **kwargs)
    except BaseException as exc:
        close_all(done.values())
        if isinstance(exc, BPFError):
            exc.add_context(f"attach_all: {name}")
        raise
    if done.skipped:
        text = "attach_all: not attached: " + "; ".join(done.skipped.values())
        warnings.warn(text, RuntimeWarning, stacklevel=2)
    return done


def attach_object(obj: Any, **kwargs: Any) -> AttachAllResult:
    """``Object.attach_all()``: :func:`attach_all` of its programs, then every ``.struct_ops.link`` map.

    The struct_ops maps are registered under their map names, as libbpf's
    auto-attach does; all or nothing: on an error what was attached is closed.
    """
    links = attach_all(obj.programs, maps=obj.maps, **kwargs)
    try:
        for name, m in obj.maps.items():
            if isinstance(m, StructOpsMap) and m.is_link:
                links[name] = m.attach()
    except BaseException:
        close_all(links.values())
        raise
    return links

"""Tracepoints: a TRACEPOINT program on a static kernel trace event, with a cookie.

``attach_tracepoint(prog, "syscalls", "sys_enter_getpid", cookie=7)`` opens
the trace event's perf event (its id from tracefs,
``events/<category>/<name>/id``; tracefs is mounted at /sys/kernel/tracing
when missing) and attaches the program through a perf link carrying the
cookie.  "category/name" or "category:name" in one string works too.

Minimum kernel: 4.7; cookies 5.15 (older kernels: the cookie clones of
:mod:`pybpf.links.fallback`).

Example::

    with attach_tracepoint(prog, "sched", "sched_switch", cookie=1) as link:
        assert link.info().tp_name == "sched_switch"
"""

from __future__ import annotations

from pybpf._sys.attrs import PerfEventAttr
from pybpf._sys.uapi import LinkType, PerfType, ProgType
from pybpf.errors import context
from pybpf.links import _perf, _tracefs
from pybpf.links.base import _label, check_program
from pybpf.links.link import Link
from pybpf.links.hook import Hook

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["attach_tracepoint", "split_tracepoint"]


def split_tracepoint(category: str, name: str | None) -> tuple[str, str]:
    if name is not None:
        return category, name
    for sep in ("/", ":"):
        if sep in category:
            cat, _, nm = category.partition(sep)
            return cat, nm
    raise ValueError(f"tracepoint {category!r}: give a category and a name (\"syscalls\", \"sys_enter_getpid\")")


def attach_tracepoint(program: Any, category: str, name: str | None = None, *, cookie: int = 0,
                      fallback: bool = True) -> Link:
    """Attach a TRACEPOINT program to tracepoint ``category:name``; Linux 4.7 (cookie 5.15).

    Example: ``prog.attach_tracepoint("syscalls", "sys_enter_openat", cookie=7)``.

    Raises FileNotFoundError (no such tracepoint; close names are listed),
    TypeError (wrong program type), LinkError (tracefs unavailable).
    """
    check_program(program, (ProgType.TRACEPOINT,), "attach_tracepoint")
    category, name = split_tracepoint(category, name)
    desc = f"{category}:{name}"
    with context(_label(program)), context(f"attach_tracepoint {desc}"):
        tp_id = _tracefs.tracepoint_id(category, name)
        attr = PerfEventAttr(type=PerfType.TRACEPOINT, config=tp_id)
        event = _perf.open_event(attr, pid=-1, cpu=0, what="tracepoint event")
        info = dict(link_type=LinkType.PERF_EVENT, perf_type="tracepoint", tp_name=name, cookie=cookie)
        return _perf.attach_to_event(program, event, cookie=cookie, fallback=fallback, kind="tracepoint",
                                     target=desc, local_info=info)


def _section_args(info: Any) -> dict[str, Any]:
    if not info.target:
        return {}
    category, sep, name = info.target.partition("/")
    if not sep or not name:
        raise ValueError(f"expected {info.kind}/CATEGORY/NAME, not {info.kind}/{info.target}")
    return {"category": category, "name": name}


HOOKS = (
    Hook(attach_tracepoint, sections=("tracepoint", "tp"), prog_types=(ProgType.TRACEPOINT,),
         section_args=_section_args, needs={"category": "a tracepoint needs a category and a name",
                                            "name": "a tracepoint needs a category and a name"},
         target_format="CATEGORY/NAME", min_kernel="4.7", cookies=True),
)

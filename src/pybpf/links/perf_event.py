"""Perf events: a PERF_EVENT program on sampling events (cpu-clock, cycles...).

``attach_perf_event(prog, "software", "cpu-clock", sample_period=1_000_000, cookie=4)``
opens the event on every online CPU (or for one ``pid``, or on one ``cpu``)
and attaches the program to each with a perf link carrying the cookie.  One
CPU gives a :class:`~pybpf.links.base.Link`, several a
:class:`~pybpf.links.base.LinkGroup`.

``event_type`` is a :class:`~pybpf._sys.uapi.PerfType` or its name
("software", "hardware"); ``config`` a :class:`PerfSwConfig` /
:class:`PerfHwConfig` or its name ("cpu-clock", "cycles", "instructions")
or a raw number.  Give ``sample_period`` (events between samples) or
``sample_freq`` (samples a second); the default is 100 samples a second.
Hardware counters are often missing in virtual machines: that is an
ENOENT from perf_event_open, reported as such.

Minimum kernel: 4.9; cookies 5.15.

Example::

    with attach_perf_event(prog, "software", "cpu-clock", sample_period=100_000, cookie=9) as link:
        time.sleep(0.1)
"""

from __future__ import annotations

from pybpf._sys.cpus import online_cpus
from pybpf._sys.attrs import PerfEventAttr
from pybpf._sys.flags import PERF_ATTR_FLAG_FREQ
from pybpf._sys.uapi import LinkType, PerfHwConfig, PerfSwConfig, PerfType, ProgType
from pybpf.errors import context
from pybpf.links import _perf
from pybpf.links.base import _label, check_program
from pybpf.links.link import Link, LinkGroup, close_all
from pybpf.links.hook import Hook

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["attach_perf_event", "online_cpus"]

_HW_ALIASES = {"cycles": PerfHwConfig.CPU_CYCLES, "cpu-cycles": PerfHwConfig.CPU_CYCLES,
               "branches": PerfHwConfig.BRANCH_INSTRUCTIONS}
_SW_ALIASES = {"page-faults": PerfSwConfig.PAGE_FAULTS, "faults": PerfSwConfig.PAGE_FAULTS,
               "cs": PerfSwConfig.CONTEXT_SWITCHES, "migrations": PerfSwConfig.CPU_MIGRATIONS}


def _event_type(value: Any) -> int:
    if isinstance(value, str):
        try:
            return int(PerfType[value.upper().replace("-", "_")])
        except KeyError:
            raise ValueError(f"unknown perf event type {value!r}; use one of "
                             f"{', '.join(t.name.lower() for t in PerfType if t != PerfType.MAX)}") from None
    return int(value)


def _config(event_type: int, value: Any) -> int:
    if not isinstance(value, str):
        return int(value)
    key = value.lower()
    if event_type == PerfType.HARDWARE:
        table, aliases = PerfHwConfig, _HW_ALIASES
    elif event_type == PerfType.SOFTWARE:
        table, aliases = PerfSwConfig, _SW_ALIASES
    else:
        raise ValueError(f"give a numeric config for perf event type {event_type}")
    if key in aliases:
        return int(aliases[key])
    try:
        return int(table[key.upper().replace("-", "_")])
    except KeyError:
        names = ", ".join(c.name.lower().replace("_", "-") for c in table if c.name != "MAX")
        raise ValueError(f"unknown {table.__name__} event {value!r}; known: {names}") from None


def attach_perf_event(
    program: Any,
    event_type: PerfType | int | str = PerfType.SOFTWARE,
    config: int | str = PerfSwConfig.CPU_CLOCK,
    *,
    sample_period: int | None = None,
    sample_freq: int | None = None,
    pid: int | None = None,
    cpu: int | None = None,
    cookie: int = 0,
    inherit: bool = False,
    fallback: bool = True,
) -> Link:
    """Attach a PERF_EVENT program to a sampling event (see the module docs); Linux 4.9 (cookie 5.15).

    Example: ``prog.attach_perf_event("software", "cpu-clock", sample_freq=99)``.
    """
    check_program(program, (ProgType.PERF_EVENT,), "attach_perf_event")
    etype = _event_type(event_type)
    conf = _config(etype, config)
    if sample_period is not None and sample_freq is not None:
        raise ValueError("give sample_period or sample_freq, not both")
    if sample_period is None and sample_freq is None:
        sample_freq = 100
    if (sample_period is not None and sample_period <= 0) or (sample_freq is not None and sample_freq <= 0):
        raise ValueError("sample_period/sample_freq must be positive")
    if cpu is not None:
        cpus = [cpu]
    elif pid is not None:
        cpus = [-1]  # follow the task on every CPU
    else:
        cpus = online_cpus()
    desc = f"type {etype} config {conf}" + (f" pid {pid}" if pid is not None else "")
    with context(_label(program)), context(f"attach_perf_event {desc}"):
        links: list[Link] = []
        try:
            for c in cpus:
                attr = PerfEventAttr(type=etype, config=conf)
                if sample_freq is not None:
                    attr.sample_period = sample_freq  # union with sample_freq
                    attr.flags |= PERF_ATTR_FLAG_FREQ
                else:
                    attr.sample_period = sample_period  # type: ignore[assignment]
                if inherit:
                    attr.flags |= 1 << 1  # inherit
                event = _perf.open_event(attr, pid=-1 if pid is None else pid, cpu=c, what="perf event")
                info = dict(link_type=LinkType.PERF_EVENT, perf_type="event", config=conf, event_type=etype,
                            cpu=c, cookie=cookie)
                links.append(_perf.attach_to_event(program, event, cookie=cookie, fallback=fallback,
                                                   kind="perf_event", target=f"{desc} cpu {c}", local_info=info))
        except BaseException:
            close_all(links)
            raise
    if len(links) == 1:
        return links[0]
    return LinkGroup(links, program=program, kind="perf_event", target=desc, cookie=cookie)


HOOKS = (
    Hook(attach_perf_event, sections=("perf_event",), prog_types=(ProgType.PERF_EVENT,), section_args=lambda info: {},
         needs={"event_type": "a perf_event program needs an event (event_type, config, sample_period=...)"},
         min_kernel="4.9", cookies=True),
)

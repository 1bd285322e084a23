"""``pybpf run`` / ``pybpf load``: load every program a file declares, attach them, show their maps.

A ``.py`` file is compiled with :func:`pybpf.compile` (all its pybpf.lang
programs, maps and globals); a ``.o`` file is a clang-built object.  Globals
(``Const`` in Python, ``const volatile`` in C) can be set before the load.
Every program whose section names its target is attached, as libbpf's
auto-attach does; :meth:`Runner.log_lines` yields what the programs'
``print()`` calls sent (pybpf.lang's log ring buffer); :meth:`Runner.snapshot`
reads every map (typed through BTF) and every global.

Example::

    with Runner("counter.py", variables={"TARGET_TGID": 1234}) as run:
        time.sleep(5)
        print(run.snapshot())     # {"maps": {"counts": [...]}, "variables": {...}}
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys
import time
from typing import Any, Iterator, Mapping

from pybpf._sys.uapi import MapType
from pybpf.lang.log import LOG_MAP, LogReader
from pybpf.tools import BadInputError
from pybpf.tools.output import plain
from pybpf.tools.session import Tracer

__all__ = ["Runner", "parse_assignments"]

# Streams, not tables: their contents are not listed at the end.
_STREAMS = {MapType.RINGBUF, MapType.USER_RINGBUF, MapType.PERF_EVENT_ARRAY}


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["name=value", ...]`` → ``{name: value}``; values are ints (0x.. too) or else strings.

    >>> parse_assignments(["limit=10", "mask=0xff", "comm=bash"])
    {'limit': 10, 'mask': 255, 'comm': 'bash'}
    """
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise BadInputError(f"--var {item!r}: write name=value")
        try:
            out[name] = int(text, 0)
        except ValueError:
            out[name] = text
    return out


def _load_module(path: str) -> Any:
    name = "pybpf_run_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BadInputError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    spec.loader.exec_module(module)
    return module


def _object_spec(path: str) -> Any:
    import pybpf

    if not os.path.isfile(path):
        parent = os.path.dirname(path) or "."
        close = difflib.get_close_matches(os.path.basename(path), os.listdir(parent), n=3) \
            if os.path.isdir(parent) else []
        raise BadInputError(f"no file {path}" + (f"; closest: {', '.join(close)}" if close else ""))
    if path.endswith(".py"):
        return pybpf.compile(_load_module(path))
    return pybpf.ObjectSpec.from_file(path)


class Runner(Tracer):
    """Compile or parse ``path``, set ``variables``, load, attach every program; :meth:`close` detaches."""

    def __init__(self, path: str, variables: Mapping[str, Any] | None = None) -> None:
        self.path = path
        spec = _object_spec(path)
        for name, value in (variables or {}).items():
            if name not in spec.variables:
                close = difflib.get_close_matches(name, list(spec.variables), n=3)
                raise BadInputError(f"{path} has no global {name!r}"
                                    + (f"; closest: {', '.join(close)}" if close else
                                       f"; its globals: {', '.join(spec.variables) or 'none'}"))
            var = spec.variables[name]
            var.value = value.encode() if isinstance(value, str) else value
        self.log: Any = None
        self.links: dict[str, Any] = {}
        self._start(spec, self._attach)

    def _attach(self) -> None:
        if LOG_MAP in self.kernel.maps:       # the programs call print()
            self.log = LogReader(self.kernel)
        self.links = self.kernel.attach_all()

    def wait_log(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for lines from the programs' ``print()`` calls."""
        if self.log is None:
            time.sleep(timeout)
        else:
            self.log.wait(timeout)

    def log_lines(self) -> Iterator[str]:
        """The lines the programs' ``print()`` calls sent that are waiting now."""
        return iter(()) if self.log is None else self.log.read(0)

    @property
    def unattached(self) -> list[str]:
        """Programs left alone because their section names no target (xdp, tc...)."""
        return [name for name in self.kernel.programs if name not in self.links]

    def snapshot(self) -> dict[str, Any]:
        """Every map's entries (streams and global-data maps left out) and every global's value."""
        maps = {}
        for name, m in self.kernel.maps.items():
            if "." in name or getattr(m, "type", None) in _STREAMS:
                continue
            maps[name] = [{"key": plain(k), "value": plain(v)} for k, v in m.items()]
        variables = {name: plain(var.value) for name, var in self.kernel.variables.items()}
        return {"maps": maps, "variables": variables}

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None
        super().close()

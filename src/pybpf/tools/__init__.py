"""Tracing tools behind the ``pybpf`` command, each a readable example of pybpf.

=============  ==========================================================  ============
tool           what it does                                                 hooks
=============  ==========================================================  ============
funccount      calls of user-space functions, one cookie per function       uprobe_multi
syscount       system calls by name (and latency), per process              tracepoints
funclatency    entry → return latency per function, log2 histogram          uprobes
execsnoop      every exec: pid, ppid, comm, argv, return code               tracepoints
=============  ==========================================================  ============

Each tool module holds its kernel side (the BPF program and its maps) next to
the user side that loads, attaches and reads it; the ``pybpf`` command
(:mod:`pybpf.cli`) only parses arguments and prints.

Shared pieces: :mod:`~pybpf.tools.syscalls` (names from a maintained source),
:mod:`~pybpf.tools.patterns` (``lib:glob`` → functions, with closest names),
:mod:`~pybpf.tools.session` (duration, intervals, Ctrl-C, a command started on
hold), :mod:`~pybpf.tools.output` (tables, JSON, live view, histograms).

Example::

    from pybpf.tools.funccount import FuncCount
    with FuncCount(["c:malloc", "c:free"], pid=1234) as tool:
        time.sleep(1)
        for row in tool.counts():
            print(row.function, row.count)
"""

from __future__ import annotations

from pybpf.errors import BPFError

__all__ = ["BadInputError"]


class BadInputError(BPFError, LookupError):
    """Something the user named does not exist (a library, symbol, pid, command); the CLI exits 2.

    >>> str(BadInputError("no process 99999"))
    'no process 99999'
    """

    exit_status = 2

"""Kernel ABI layer: bpf(2), perf_event_open(2), attr layouts, UAPI enums, errno → exceptions.

Nothing outside this package calls ``syscall()``.
"""

from pybpf._sys.attrs import *  # noqa: F401,F403
from pybpf._sys.flags import *  # noqa: F401,F403
from pybpf._sys.uapi import AttachType, Cmd, LinkType, MapType, ProgType, StatsType  # noqa: F401
from pybpf._sys.syscall import (  # noqa: F401
    FD, address, bpf, cmd_name, cstr, eperm_hint, errno_name, error, lockdown_mode, object_name, sys_bpf,
)
from pybpf._lazy import lazy_exports

# Helper ids and perf event ids: uapi creates their enums when they are first named.
__getattr__, __dir__ = lazy_exports(globals(), {
    "uapi": "HelperID PerfType PerfSwConfig PerfHwConfig PerfSampleFormat PerfRecordType",
})

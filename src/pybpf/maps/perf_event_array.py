"""``BPF_MAP_TYPE_PERF_EVENT_ARRAY`` (Linux 4.3): one perf event per CPU, for ``bpf_perf_event_output``.

Keys are u32 indices (CPU numbers, in the usual use), values perf event
file descriptors.  A program calls ``bpf_perf_event_output(ctx, &map,
BPF_F_CURRENT_CPU, data, size)`` and the record lands in the mmap ring of
the event stored at the current CPU's index.  :class:`pybpf.readers.PerfBufReader`
opens those events (``PERF_COUNT_SW_BPF_OUTPUT``), stores them here and reads
their rings.

The kernel refuses to look up elements from user space (EOPNOTSUPP): only
stores (an fd) and deletes work.  The map keeps a reference to each stored
event until the entry is deleted or the map's last file descriptor closes.

Example::

    from pybpf.maps import PerfEventArray
    with PerfEventArray(name="events") as events, events.reader(pages=8) as reader:
        ...                                    # a program calls bpf_perf_event_output(ctx, events, ...)
        for record in reader.poll(timeout=1.0):
            print(bytes(record))
"""

from __future__ import annotations

from pybpf._sys.uapi import MapType
from pybpf.maps.base import Map, possible_cpus
from pybpf.maps.ringbuf import Watched

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["PerfEventArray"]


class PerfEventArray(Watched, Map):
    """``BPF_MAP_TYPE_PERF_EVENT_ARRAY`` — Linux 4.3.

    ``PerfEventArray(max_entries=None, name=...)``: ``max_entries`` defaults to
    the number of possible CPUs.  ``m[cpu] = perf_fd`` stores an event;
    ``del m[cpu]`` removes it.  :meth:`reader` opens a
    :class:`pybpf.readers.PerfBufReader` on it.

    >>> with PerfEventArray(name="events") as events, events.reader(pages=8) as reader:
    ...     records = [bytes(r) for r in reader.poll(timeout=0.1)]
    """

    __slots__ = ("_watchers",)
    map_type = MapType.PERF_EVENT_ARRAY
    min_kernel = "4.3"
    _default_key = "u32"
    _default_value = "u32"

    def __init__(self, max_entries: int | None = None, *, name: str = "", numa_node: int | None = None) -> None:
        if max_entries is None:
            max_entries = possible_cpus()
        self._create(self.map_type, key="u32", value="u32", max_entries=max_entries, name=name,
                     numa_node=numa_node)

    def reader(self, **options: Any) -> Any:
        """A :class:`pybpf.readers.PerfBufReader` on this map (options as there)."""
        from pybpf.readers.perfbuf import PerfBufReader

        return PerfBufReader(self, **options)


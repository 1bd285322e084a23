"""Event streams between BPF programs and Python: ring buffers, perf buffers, user ring buffers.

=============================  ====================================  =============
class                          reads / writes                        since Linux
=============================  ====================================  =============
:class:`RingBufReader`         ``BPF_MAP_TYPE_RINGBUF``              5.8
:class:`PerfBufReader`         ``BPF_MAP_TYPE_PERF_EVENT_ARRAY``     4.3
:class:`UserRingBufWriter`     ``BPF_MAP_TYPE_USER_RINGBUF``         6.1
=============================  ====================================  =============

The two readers share their ways to read (:class:`StreamReader`): a callback
per record (:meth:`~StreamReader.dispatch`), an iterator
(``for rec in reader.poll(timeout=1.0)``), a batch of everything available
(:meth:`~StreamReader.read_batch`, a :class:`RecordBatch` that turns into a
NumPy structured array without copying), ``for rec in reader`` until closed,
and ``async for rec in reader``.  Waiting is one epoll set per reader;
:meth:`~StreamReader.flush` and :meth:`~StreamReader.close` wake a blocked
reader from any thread.

Example::

    import pybpf
    from pybpf.maps.ringbuf import RingBuf

    with RingBuf(size=1 << 20) as events, pybpf.readers.RingBufReader(events, record="<QQ") as reader:
        for seq, value in reader.poll(timeout=1.0):
            ...
"""

from pybpf.readers._base import StreamReader
from pybpf.readers._records import RecordBatch, RecordError, RecordType, btf_dtype
from pybpf.readers.ringbuf import RingBufReader
from pybpf.readers.perfbuf import PerfBufReader
from pybpf.readers.userringbuf import Reservation, UserRingBufWriter

__all__ = [
    "StreamReader", "RingBufReader", "PerfBufReader", "UserRingBufWriter", "Reservation",
    "RecordBatch", "RecordError", "RecordType", "btf_dtype",
]

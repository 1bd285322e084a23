"""Print histograms that BPF programs collect in maps, the way BCC and bpftrace do.

A BPF program counts values into buckets — usually a map whose key is the bucket's index and
whose value is a count — and user space prints them. :func:`log2` reads power-of-two buckets
(BCC's ``print_log2_hist``, bpftrace's ``hist()``); :func:`linear` reads fixed-width buckets
(bpftrace's ``lhist()``). Both accept a pybpf map or any mapping (a ``dict``), print the table,
and return the buckets as ``(low, high, count)`` tuples, empty buckets between the first and the
last non-empty one included. Per-CPU values (a list per key) are summed.

The C side of a log2 histogram, with the slot numbering :func:`log2` expects (slot 0 holds the
value 0, slot ``k`` holds ``2**(k-1)`` to ``2**k - 1``; :func:`log2_slot` is the same in
Python)::

    static __always_inline __u32 log2_slot(__u64 v) {
        __u32 slot = 0;
        for (int i = 0; i < 64 && v; i++) { v >>= 1; slot++; }
        return slot;
    }
    ...
    __u32 slot = log2_slot(delta_ns / 1000);
    __u64 *count = bpf_map_lookup_elem(&hist_us, &slot);   /* an ARRAY of 65 u64 */
    if (count) __sync_fetch_and_add(count, 1);

and in Python::

    import pybpf.hist
    buckets = pybpf.hist.log2(obj.maps["hist_us"], label="usecs")
    #      usecs               : count    distribution
    #          0 -> 1          : 3       |**                                      |
    #          2 -> 3          : 52      |****************************************|

Standard library only.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Mapping, TextIO

__all__ = ["Bucket", "log2", "linear", "log2_slot", "format_buckets"]

Bucket = tuple[int, int, int]
"""``(low, high, count)``: how many values fell in ``low..high`` (both included)."""

_BAR_WIDTH = 40


def log2_slot(value: int) -> int:
    """The log2 slot of ``value`` as :func:`log2` numbers them: 0 for 0, else its bit length.

    >>> [log2_slot(v) for v in (0, 1, 2, 3, 4, 1000)]
    [0, 1, 2, 2, 3, 10]
    """
    if value < 0:
        raise ValueError(f"log2 slots are for values >= 0, not {value}")
    return int(value).bit_length()


def log2(source: Any, *, label: str = "value", file: TextIO | None = None,
         show: bool = True) -> list[Bucket]:
    """Print the power-of-two histogram held in ``source`` and return its buckets.

    ``source`` maps slot numbers (see :func:`log2_slot`) to counts: a pybpf map (an ARRAY or
    HASH keyed by a u32 slot), or a dict. ``label`` heads the value column; ``file`` defaults to
    standard output; ``show=False`` only returns the buckets.

    >>> log2({1: 3, 2: 10, 4: 1}, label="usecs")        # doctest: +NORMALIZE_WHITESPACE
         usecs               : count    distribution
             1               : 3       |************                            |
             2 -> 3          : 10      |****************************************|
             4 -> 7          : 0       |                                        |
             8 -> 15         : 1       |****                                    |
    [(1, 1, 3), (2, 3, 10), (4, 7, 0), (8, 15, 1)]
    """
    counts = _counts(source)
    buckets = [(_log2_low(slot), (1 << slot) - 1, counts.get(slot, 0)) for slot in _span(counts)]
    if show:
        print(format_buckets(buckets, label=label), file=file or sys.stdout)
    return buckets


def linear(source: Any, step: int, *, start: int = 0, label: str = "value",
           file: TextIO | None = None, show: bool = True) -> list[Bucket]:
    """Print the fixed-width histogram held in ``source`` and return its buckets.

    Bucket ``i`` holds the values ``start + i*step`` to ``start + (i+1)*step - 1`` (the program
    computes ``i = (value - start) / step``); ``source`` maps ``i`` to its count.

    >>> linear({0: 2, 2: 4}, step=10, label="ms")        # doctest: +NORMALIZE_WHITESPACE
         ms                  : count    distribution
             0 -> 9          : 2       |********************                    |
            10 -> 19         : 0       |                                        |
            20 -> 29         : 4       |****************************************|
    [(0, 9, 2), (10, 19, 0), (20, 29, 4)]
    """
    if step < 1:
        raise ValueError(f"step must be at least 1, not {step}")
    counts = _counts(source)
    buckets = [(start + i * step, start + (i + 1) * step - 1, counts.get(i, 0)) for i in _span(counts)]
    if show:
        print(format_buckets(buckets, label=label), file=file or sys.stdout)
    return buckets


def format_buckets(buckets: Iterable[Bucket], *, label: str = "value") -> str:
    """The text table of ``buckets``: range, count and a bar scaled to the largest count.

    >>> print(format_buckets([(0, 0, 1)]))                # doctest: +NORMALIZE_WHITESPACE
         value               : count    distribution
             0               : 1       |****************************************|
    """
    rows = list(buckets)
    top = max((count for _, _, count in rows), default=0)
    low_w = max([10, *(len(str(low)) for low, _, _ in rows)])
    high_w = max([6, *(len(str(high)) for _, high, _ in rows)])
    count_w = max([8, *(len(str(count)) + 1 for _, _, count in rows)])
    lines = [f"{label:>{low_w}}{'':<{high_w + 5}}: {'count':<{count_w}} distribution"]
    for low, high, count in rows:
        span = f"{low:>{low_w}}" + (f" -> {high:<{high_w}}" if high != low else " " * (high_w + 4))
        stars = count * _BAR_WIDTH // top if top else 0
        if count and not stars:
            stars = 1  # a bucket that is not empty shows at least one star
        lines.append(f"{span} : {count:<{count_w}}|{'*' * stars:<{_BAR_WIDTH}}|")
    return "\n".join(lines)


def _log2_low(slot: int) -> int:
    return 0 if slot == 0 else 1 << (slot - 1)


def _counts(source: Any) -> dict[int, int]:
    """``{bucket index: count}`` from a map or mapping; per-CPU lists are summed, zeros dropped."""
    items = source.items() if hasattr(source, "items") else source
    counts: dict[int, int] = {}
    for key, value in items:
        index = _index(key)
        count = sum(value) if isinstance(value, (list, tuple)) else int(value)
        if count:
            counts[index] = counts.get(index, 0) + count
    return counts


def _index(key: Any) -> int:
    if isinstance(key, (bytes, bytearray, memoryview)):
        return int.from_bytes(key, sys.byteorder)  # an untyped map: the key's raw bytes
    try:
        index = int(key)
    except (TypeError, ValueError):
        raise TypeError(f"histogram keys must be bucket numbers, not {key!r}") from None
    if index < 0:
        raise ValueError(f"histogram bucket numbers are >= 0, not {index}")
    return index


def _span(counts: Mapping[int, int]) -> range:
    """Every bucket index from the first to the last that holds a count."""
    if not counts:
        return range(0)
    return range(min(counts), max(counts) + 1)

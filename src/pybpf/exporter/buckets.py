"""Histogram buckets: a histogram map's per-key counts → Prometheus' cumulative buckets.

A histogram's last label is its bucket: the BPF program counts each
observation under a small integer key, and ``bucket_type`` says which values
a key stands for (its upper bound, in map units, then times
``bucket_multiplier``):

============  =====================================================  =========================
bucket_type   key ``k`` counts values up to                          keys read
============  =====================================================  =========================
``exp2``      ``2**k`` (the program stores ``ceil(log2(v))``)        bucket_min..bucket_max
``exp2zero``  ``0`` for ``k == 0``, else ``2**(k-1)`` (the program   bucket_min..bucket_max
              stores ``0`` for 0, else ``ceil(log2(v)) + 1``)
``linear``    ``k`` (the program stores ``v`` divided by its step)   bucket_min..bucket_max
``fixed``     ``k`` itself: the program stores the bound of the      the config's bucket_keys
              bucket, one of ``bucket_keys`` (increasing)
============  =====================================================  =========================

The key after the last bucket (``bucket_max + 1``, or the last of
``bucket_keys`` + 1) holds the sum of the observed values, in map units, if
the program keeps one.  A key below a bucket's key and above the previous
one's counts in that bucket (its values are below that bound too); a key
beyond the sum key counts only in ``+Inf``.  These are cloudflare/ebpf_exporter's
bucket types; it drops keys outside the configured ones, pybpf counts them as
said, so ``_count`` is every observation.

Example::

    >>> HistogramBuckets("exp2zero", 0, 3).cumulative({0: 2, 1: 1, 3: 4, 4: 9})
    ([('0.0', 2), ('1.0', 3), ('2.0', 3), ('4.0', 7), ('+Inf', 7)], 9.0)
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Callable, Sequence

__all__ = ["HistogramBuckets", "histogram_buckets", "UPPER_BOUNDS"]

# bucket_type → the upper bound (in map units) of the values key k counts.
UPPER_BOUNDS: dict[str, Callable[[int], float]] = {
    "exp2": lambda k: 2.0 ** k,
    "exp2zero": lambda k: 2.0 ** (k - 1) if k else 0.0,
    "linear": float,
    "fixed": float,
}


class HistogramBuckets:
    """The buckets of one histogram metric, computed once: its keys, ``le`` texts and sum key."""

    __slots__ = ("keys", "bounds", "sum_key", "multiplier")

    def __init__(self, bucket_type: str, bucket_min: int = 0, bucket_max: int = 0, multiplier: float = 1.0,
                 keys: Sequence[int] = ()) -> None:
        from prometheus_client.utils import floatToGoString

        self.keys = list(keys) if bucket_type == "fixed" else list(range(bucket_min, bucket_max + 1))
        upper = UPPER_BOUNDS[bucket_type]
        self.bounds = [floatToGoString(upper(k) * multiplier) for k in self.keys] + ["+Inf"]
        self.sum_key = self.keys[-1] + 1
        self.multiplier = multiplier

    def cumulative(self, counts: dict[int, int]) -> tuple[list[tuple[str, int]], float]:
        """(``le`` text, cumulative count) of every bucket, ``+Inf`` last, and the sum."""
        keys, last = self.keys, self.keys[-1]
        per = [0] * (len(keys) + 1)
        total = 0
        for key, count in counts.items():
            if key == self.sum_key:
                total = count
            elif key > last:
                per[-1] += count
            else:
                per[bisect_left(keys, key)] += count
        out, running = [], 0
        for bound, count in zip(self.bounds, per):
            running += count
            out.append((bound, running))
        return out, total * self.multiplier


def histogram_buckets(counts: dict[int, int], bucket_type: str, bucket_min: int, bucket_max: int,
                      multiplier: float, keys: Sequence[int] = ()) -> tuple[list[tuple[str, int]], float]:
    """Cumulative buckets (``le`` text, count) and the sum of one label set, from per-key counts.

    >>> histogram_buckets({0: 1, 2: 3, 3: 40}, "exp2", 0, 2, 1.0)
    ([('1.0', 1), ('2.0', 1), ('4.0', 4), ('+Inf', 4)], 40.0)
    >>> histogram_buckets({1: 2, 7: 1, 10: 5, 11: 60}, "fixed", 0, 0, 1.0, keys=[1, 5, 10])
    ([('1.0', 2), ('5.0', 2), ('10.0', 8), ('+Inf', 8)], 60.0)
    """
    return HistogramBuckets(bucket_type, bucket_min, bucket_max, multiplier, keys).cumulative(counts)

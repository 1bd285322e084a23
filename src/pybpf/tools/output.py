"""How the tools print: aligned tables, JSON, a live view, log2 histograms.

The final output is always plain text (aligned columns, or JSON with
``--json``) so it can be read by people and parsed by scripts alike.  While a
tool runs on a terminal, :class:`LiveView` shows a refreshing table through
`rich <https://github.com/Textualize/rich>`_ (the ``tools`` extra); without
rich, or when the output is not a terminal, it prints nothing.

Example::

    >>> print("\\n".join(log2_hist_lines({0: 1, 3: 4}, "ns")))
                          ns : count    distribution
             0 -> 1          : 1        |**********                              |
             2 -> 3          : 0        |                                        |
             4 -> 7          : 0        |                                        |
             8 -> 15         : 4        |****************************************|
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

from pybpf.cli._output import print_json, print_table

__all__ = ["print_table", "print_json", "plain", "LiveView", "log2_hist_lines", "bucket_range"]


def bucket_range(bucket: int) -> tuple[int, int]:
    """The values ``[low, high]`` of log2 bucket ``bucket``: 0 holds 0 and 1, bucket k holds 2**k .. 2**(k+1)-1.

    >>> bucket_range(0), bucket_range(4)
    ((0, 1), (16, 31))
    """
    if bucket <= 0:
        return 0, 1
    return 1 << bucket, (1 << (bucket + 1)) - 1


def log2_hist_lines(buckets: dict[int, int], unit: str, width: int = 40) -> list[str]:
    """A log2 histogram as text lines, like BCC's ``print_log2_hist`` (from the first used bucket to the last)."""
    if not buckets:
        return []
    used = [k for k, v in buckets.items() if v] or [0]
    first, last = min(used), max(used)
    peak = max(buckets.values()) or 1
    lines = [f"{unit:>24} : count    distribution"]
    for k in range(first, last + 1):
        n = buckets.get(k, 0)
        low, high = bucket_range(k)
        stars = "*" * (n * width // peak)
        lines.append(f"{low:>10} -> {high:<10} : {n:<8} |{stars:<{width}}|")
    return lines


class LiveView:
    """A table refreshed in place while a tool runs (rich on a terminal; otherwise nothing).

    ``update(title, headers, rows)`` redraws it; leaving the ``with`` block
    removes it, so the final table printed after it stands alone.
    """

    def __init__(self, enabled: bool = True) -> None:
        self._live: Any = None
        self._rich: Any = None
        if enabled and sys.stdout.isatty():
            try:
                import rich.live
                import rich.table
            except ImportError:
                return
            self._rich = rich
            self._live = rich.live.Live(auto_refresh=False, transient=True)

    @property
    def active(self) -> bool:
        return self._live is not None

    def update(self, title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self._live is None:
            return
        table = self._rich.table.Table(title=title, title_justify="left")
        for i, h in enumerate(headers):
            table.add_column(h, justify="right" if i == len(headers) - 1 else "left")
        for row in rows:
            table.add_row(*(str(c) for c in row))
        self._live.update(table, refresh=True)

    def __enter__(self) -> "LiveView":
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)


def plain(value: Any) -> Any:
    """A decoded key or value as JSON-ready data: records as dicts, C strings as text, other bytes as hex.

    >>> plain([b"abc\\x00\\x00", b"\\x01\\x02"])
    ['abc', '0102']
    """
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        text = raw.rstrip(b"\0")
        if text and b"\0" not in text and all(32 <= c < 127 for c in text):
            return text.decode()
        return raw.hex()
    return value

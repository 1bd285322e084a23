"""The exporter configuration's data: what :mod:`.config` reads from YAML and the rest consumes.

Every part remembers where it came from (:class:`Where`, ``file:line``) and
its field path, so a later check can still raise a :class:`ConfigError`
that points at the line, e.g. ``calls.yaml:12: metrics.counters[0].labels[0]:
unknown decoder 'uint8'``.

Example::

    err = ConfigError(Where("calls.yaml", 12), "metrics.counters[0].name", "must be set")
    str(err)     # 'calls.yaml:12: metrics.counters[0].name: must be set'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pybpf.errors import BPFError

__all__ = ["ConfigError", "Where", "DecoderConfig", "LabelConfig", "MetricConfig", "AttachPoint", "AttachConfig",
           "ModuleConfig"]


class ConfigError(BPFError):
    """A configuration problem: ``file:line: field: message``."""

    def __init__(self, where: "Where", fieldpath: str, message: str) -> None:
        self.where = where
        self.field = fieldpath
        text = f"{where}: {fieldpath}: {message}" if fieldpath else f"{where}: {message}"
        super().__init__(text)


@dataclass(frozen=True)
class Where:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class DecoderConfig:
    name: str
    options: dict[str, Any]
    where: Where
    path: str


@dataclass
class LabelConfig:
    name: str
    size: int | None
    padding: int
    decoders: list[DecoderConfig]
    where: Where
    path: str


@dataclass
class MetricConfig:
    kind: str                      # "counter" | "histogram"
    name: str
    help: str
    table: str
    labels: list[LabelConfig]
    where: Where
    path: str
    bucket_type: str = "exp2"
    bucket_min: int = 0
    bucket_max: int = 0
    bucket_keys: tuple[int, ...] = ()       # bucket_type fixed
    bucket_multiplier: float = 1.0


@dataclass
class AttachPoint:
    """One hook: ``target`` (a function, a tracepoint ``category/name``, a USDT ``provider:name``)."""

    target: str
    cookie: int
    name: str
    where: Where


@dataclass
class AttachConfig:
    program: str
    kind: str
    binary: str | None             # uprobe/uretprobe/usdt: the executable or library
    points: list[AttachPoint]
    pid: int | None
    where: Where
    path: str


@dataclass
class ModuleConfig:
    name: str
    file: str
    object_path: str
    variables: dict[str, Any]
    attach: list[AttachConfig] | None
    metrics: list[MetricConfig]
    fingerprint: tuple[Any, ...] = ()
    cookie_names: dict[int, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)    # top-level field → line

    def where(self, key: str) -> Where:
        return Where(self.file, self.lines.get(key, 0))

"""YAML with line numbers: every mapping and list remembers where its items are.

The exporter's configuration errors name the file, the line and the field
("syscalls.yaml:12: metrics.counters[0].table: unknown map 'cnts'"), so the
loader keeps, for each mapping key and list item, the line it was written
on.  Everything else is plain PyYAML ``SafeLoader`` (no Python tags).

Example::

    >>> doc = parse("a:\\n  b: 1\\n")
    >>> doc["a"]["b"], doc["a"].line_of("b")
    (1, 2)
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["LineDict", "LineList", "YAMLSyntaxError", "parse"]


class LineDict(dict):
    """A mapping whose keys remember their line (1-based); ``line`` is the mapping's own."""

    line: int = 0
    lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.lines.get(key, self.line)


class LineList(list):
    """A list whose items remember their line; ``line`` is the list's own."""

    line: int = 0
    lines: list[int]

    def line_of(self, index: int) -> int:
        return self.lines[index] if 0 <= index < len(self.lines) else self.line


class YAMLSyntaxError(ValueError):
    """Not YAML, or a duplicate key: ``line`` (1-based) and ``message``."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in out:
            raise YAMLSyntaxError(line, f"duplicate key {key!r} (first on line {out.lines[key]})")
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(item, deep=True) for item in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [item.start_mark.line + 1 for item in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def parse(text: str) -> Any:
    """Parse one YAML document; raise :class:`YAMLSyntaxError` with the line on bad input."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise YAMLSyntaxError(line, f"YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise YAMLSyntaxError(0, f"YAML: {err}") from None

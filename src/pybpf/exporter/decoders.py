"""Label decoders: the bytes of a map key → the text of a Prometheus label.

A label takes ``size`` bytes of the key and runs them through its decoders
in order, each taking what the previous one made (the first gets bytes;
decoders that want a number read unsigned host-order integers from bytes
themselves, so ``[uint, syscall]`` and ``[syscall]`` are the same).  The
last result becomes the label's text.

========================  ==================================================================
decoder                   what it makes
========================  ==================================================================
``uint`` (``integer``)    unsigned integer (host byte order)
``int``                   signed integer
``string``                text up to the first NUL (invalid UTF-8 replaced)
``hex``                   the bytes in hex
``syscall``               syscall name of this architecture (:mod:`pybpf.tools.syscalls`)
``errno``                 ``EPIPE``... from an errno number (negative values too)
``ksym``                  kernel function containing an address (``/proc/kallsyms``)
``usym``                  user function containing an address; option ``pid_label``: the
                          label holding the process id (resolved through /proc/PID/maps)
``cgroup``                cgroup v2 path of a cgroup id (``bpf_get_current_cgroup_id()``)
``inet_ip``               IPv4 (4 bytes) or IPv6 (16 bytes) address, network byte order
``static_map``            option ``static_map: {1: read, 2: write}``; unknown values
                          become ``unknown:<value>`` unless ``allow_unknown: true``
``cookie``                the name of the attach point whose BPF cookie this is (the
                          module's ``attach`` list), ``unknown_cookie:<n>`` otherwise
``regexp``                a filter: option ``regexps: [pattern, ...]`` (Python :mod:`re`,
                          searched anywhere in the text unless anchored with ``^``/``$``);
                          the first that matches gives the label its text (the match, or
                          its one capture group if it has one), and a series whose text
                          matches none is left out of the metric
========================  ==================================================================

``regexp`` usually follows ``string`` (``[string, {name: regexp, regexps:
['^systemd-journal$', '^(kswapd)']}]`` keeps journald's series as they are
and names every kswapd thread ``kswapd``); given bytes, it reads them as
``string`` does.  A pattern with more than one capture group is refused.

Example::

    >>> chain = build_chain(label, DecodeContext(cookie_names={1: "func_a"}))  # doctest: +SKIP
    >>> chain(b"\\x01" + b"\\0" * 7, key)                                      # doctest: +SKIP
    'func_a'
"""

from __future__ import annotations

import errno as _errno
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from pybpf.exporter.model import ConfigError, DecoderConfig, LabelConfig, Where

__all__ = ["DECODERS", "DecodeContext", "SkipSeries", "build_chain"]

Step = Callable[[Any, bytes], Any]


class SkipSeries(Exception):
    """Raised by a decoder (``regexp``) to leave the key's whole series out of the metric."""


@dataclass
class DecodeContext:
    """What decoders need beyond their bytes: the module's cookie names, the metric's label
    layout (name → (offset, size)) and the shared resolvers (made on first use)."""

    cookie_names: dict[int, str] = field(default_factory=dict)
    layout: dict[str, tuple[int, int]] = field(default_factory=dict)
    _resolvers: dict[str, Any] = field(default_factory=dict)

    def resolver(self, kind: str) -> Any:
        found = self._resolvers.get(kind)
        if found is None:
            from pybpf.exporter import resolvers

            found = {"ksym": resolvers.KernelSymbols, "usym": resolvers.UserSymbols,
                     "cgroup": resolvers.CgroupPaths}[kind]()
            self._resolvers[kind] = found
        return found


def _uint(v: Any) -> int:
    return int.from_bytes(v, "little") if isinstance(v, (bytes, bytearray)) else int(v)


def _no_options(d: DecoderConfig) -> None:
    if d.options:
        key = next(iter(d.options))
        raise ConfigError(d.where, f"{d.path}.{key}", f"decoder {d.name!r} takes no options")


def _make_uint(d: DecoderConfig, ctx: DecodeContext) -> Step:
    _no_options(d)
    return lambda v, key: _uint(v)


def _make_int(d: DecoderConfig, ctx: DecodeContext) -> Step:
    _no_options(d)
    return lambda v, key: int.from_bytes(v, "little", signed=True) if isinstance(v, (bytes, bytearray)) else int(v)


def _text(v: Any, key: bytes) -> str:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).split(b"\0", 1)[0].decode("utf-8", "replace")
    return str(v)


def _make_string(d: DecoderConfig, ctx: DecodeContext) -> Step:
    _no_options(d)
    return _text


def _make_hex(d: DecoderConfig, ctx: DecodeContext) -> Step:
    _no_options(d)
    return lambda v, key: bytes(v).hex() if isinstance(v, (bytes, bytearray)) else format(int(v), "x")


def _make_syscall(d: DecoderConfig, ctx: DecodeContext) -> Step:
    from pybpf.tools import syscalls

    _no_options(d)
    return lambda v, key: syscalls.name(_uint(v))


def _make_errno(d: DecoderConfig, ctx: DecodeContext) -> Step:
    _no_options(d)

    def decode(v: Any, key: bytes) -> str:
        n = int.from_bytes(v, "little", signed=True) if isinstance(v, (bytes, bytearray)) else int(v)
        return _errno.errorcode.get(abs(n), f"errno_{abs(n)}") if n else "0"
    return decode


def _make_ksym(d: DecoderConfig, ctx: DecodeContext) -> Step:
    _no_options(d)

    def decode(v: Any, key: bytes) -> str:
        addr = _uint(v)
        return ctx.resolver("ksym").name(addr) or f"unknown_ksym:{addr:#x}"
    return decode


def _make_usym(d: DecoderConfig, ctx: DecodeContext) -> Step:
    pid_label = d.options.get("pid_label")
    extra = set(d.options) - {"pid_label"}
    if extra:
        raise ConfigError(d.where, f"{d.path}.{extra.pop()}", "unknown option (usym takes pid_label)")
    if not isinstance(pid_label, str) or pid_label not in ctx.layout:
        raise ConfigError(d.where, f"{d.path}.pid_label", f"name the label that holds the process id "
                                                          f"(labels: {', '.join(ctx.layout)})")
    off, size = ctx.layout[pid_label]

    def decode(v: Any, key: bytes) -> str:
        addr = _uint(v)
        pid = int.from_bytes(key[off:off + size], "little")
        return ctx.resolver("usym").name(pid, addr) or f"unknown_usym:{addr:#x}"
    return decode


def _make_cgroup(d: DecoderConfig, ctx: DecodeContext) -> Step:
    _no_options(d)

    def decode(v: Any, key: bytes) -> str:
        cid = _uint(v)
        return ctx.resolver("cgroup").path(cid) or f"unknown_cgroup_id:{cid}"
    return decode


def _make_inet_ip(d: DecoderConfig, ctx: DecodeContext) -> Step:
    _no_options(d)

    def decode(v: Any, key: bytes) -> str:
        raw = bytes(v) if isinstance(v, (bytes, bytearray)) else int(v).to_bytes(4, "little")
        if len(raw) == 4:
            return str(ipaddress.IPv4Address(raw))
        if len(raw) == 16:
            return str(ipaddress.IPv6Address(raw))
        return raw.hex()
    return decode


def _make_static_map(d: DecoderConfig, ctx: DecodeContext) -> Step:
    table = d.options.get("static_map")
    extra = set(d.options) - {"static_map", "allow_unknown"}
    if extra:
        raise ConfigError(d.where, f"{d.path}.{extra.pop()}", "unknown option (known: static_map, allow_unknown)")
    if not isinstance(table, dict) or not table:
        raise ConfigError(d.where, f"{d.path}.static_map", "a mapping of values to names, e.g. {1: read}")
    allow_unknown = bool(d.options.get("allow_unknown", False))
    names = {str(k): str(v) for k, v in table.items()}

    def decode(v: Any, key: bytes) -> str:
        text = str(_uint(v)) if isinstance(v, (bytes, bytearray)) else str(v)
        found = names.get(text)
        if found is not None:
            return found
        return text if allow_unknown else f"unknown:{text}"
    return decode


def _make_cookie(d: DecoderConfig, ctx: DecodeContext) -> Step:
    _no_options(d)
    names = ctx.cookie_names

    def decode(v: Any, key: bytes) -> str:
        c = _uint(v)
        return names.get(c) or f"unknown_cookie:{c}"
    return decode


def _make_regexp(d: DecoderConfig, ctx: DecodeContext) -> Step:
    extra = set(d.options) - {"regexps"}
    if extra:
        raise ConfigError(d.where, f"{d.path}.{extra.pop()}", "unknown option (regexp takes regexps)")
    patterns = d.options.get("regexps")
    if not isinstance(patterns, list) or not patterns:
        raise ConfigError(d.where, f"{d.path}.regexps", "a list of regular expressions, e.g. ['^bash$']")
    line_of = getattr(patterns, "line_of", lambda i: d.where.line)
    compiled = []
    for i, pattern in enumerate(patterns):
        where, path = Where(d.where.file, line_of(i)), f"{d.path}.regexps[{i}]"
        if not isinstance(pattern, str):
            raise ConfigError(where, path, f"expected a regular expression (a string), got {pattern!r}")
        try:
            rx = re.compile(pattern)
        except re.error as err:
            raise ConfigError(where, path, f"bad regular expression {pattern!r}: {err}") from None
        if rx.groups > 1:
            raise ConfigError(where, path, f"{pattern!r} has {rx.groups} capture groups: the label takes "
                                           f"the match or its one group (write (?:...) for the others)")
        compiled.append(rx)

    def decode(v: Any, key: bytes) -> str:
        text = _text(v, key)
        for rx in compiled:
            found = rx.search(text)
            if found is not None:
                return found.group(rx.groups) or ""
        raise SkipSeries
    return decode


DECODERS: dict[str, Callable[[DecoderConfig, DecodeContext], Step]] = {
    "uint": _make_uint, "integer": _make_uint, "int": _make_int, "string": _make_string, "hex": _make_hex,
    "syscall": _make_syscall, "errno": _make_errno, "ksym": _make_ksym, "usym": _make_usym,
    "cgroup": _make_cgroup, "inet_ip": _make_inet_ip, "static_map": _make_static_map, "cookie": _make_cookie,
    "regexp": _make_regexp,
}


def build_chain(label: LabelConfig, ctx: DecodeContext) -> Callable[[bytes, bytes], str]:
    """The label's decoders as one function ``(label bytes, whole key) -> text``.

    It raises :class:`SkipSeries` when a ``regexp`` decoder filters the key out;
    building it raises :class:`ConfigError` for bad decoder options.  Without
    decoders a label of 1, 2, 4 or 8 bytes is an unsigned integer, others are hex.
    """
    steps = [DECODERS[d.name](d, ctx) for d in label.decoders]
    if not steps:
        steps = [(lambda v, key: _uint(v)) if label.size in (1, 2, 4, 8) else (lambda v, key: bytes(v).hex())]

    def run(raw: bytes, key: bytes) -> str:
        v: Any = raw
        for step in steps:
            v = step(v, key)
        return v if isinstance(v, str) else str(v)
    return run

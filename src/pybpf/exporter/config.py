"""The exporter's configuration: one YAML file per module, in ebpf_exporter's shape.

A module is a BPF object (a clang ``.bpf.o`` or a :mod:`pybpf.lang` ``.py``
file) plus the metrics read from its maps.  ``--config`` names one such file
or a directory of them (every ``*.yaml``/``*.yml``; the module is named after
the file)::

    object: uprobe_counter.bpf.o      # next to this file; default: <name>.bpf.o, else <name>.py
    variables: {target_tgid: 0}       # .rodata/.data values set before load
    attach:                           # optional: without it, attach from section names
      - program: count_call
        uprobe: /usr/bin/myapp        # uprobe | uretprobe | tracepoint | raw_tracepoint | usdt | kprobe | kretprobe
        functions:                    # one attach point per function, one cookie each
          - func_a                    # cookie chosen for you (the same name gets the same cookie)
          - {symbol: func_b, cookie: 7, name: b}
    metrics:
      counters:
        - name: myapp_calls_total
          help: Calls per function
          table: counts               # the map (default: the metric's name)
          labels:
            - name: function
              size: 8                 # bytes of the key (default: from the key's BTF struct)
              decoders: [{name: cookie}]
      histograms:
        - name: myapp_latency_seconds
          help: Latency
          table: latency
          bucket_type: exp2           # exp2 | exp2zero | linear | fixed
          bucket_min: 0               # exp2, exp2zero, linear: map keys bucket_min..bucket_max
          bucket_max: 30
          bucket_multiplier: 1e-9
          labels:                     # the last label is the bucket
            - {name: function, size: 8, decoders: [{name: cookie}]}
            - {name: bucket, size: 8, decoders: [{name: uint}]}
        - name: myapp_request_bytes
          table: request_bytes
          bucket_type: fixed          # the program stores each value under the first of
          bucket_keys: [64, 512, 4096, 65536]   # these bounds that holds it (increasing)
          labels:
            - name: comm
              decoders:               # only bash and sshd* series; sshd's all named "sshd"
                - {name: string}
                - {name: regexp, regexps: ['^bash$', '^(sshd)']}
            - {name: bucket}

Bucket types (:mod:`.buckets` has the arithmetic): ``exp2``, key ``k`` counts
values up to ``2**k``; ``exp2zero``, key 0 counts the value 0 and key ``k`` values
up to ``2**(k-1)``; ``linear``, up to ``k``; ``fixed``, up to the key itself, one
of ``bucket_keys``.  Bounds and sums are in map units times ``bucket_multiplier``;
the key after the last bucket holds the sum.  Decoders are listed in
:mod:`.decoders`; ``regexp`` leaves out the series whose label matches none of
its ``regexps``.  These are cloudflare/ebpf_exporter's fields and semantics.

:func:`read_config` checks the YAML alone (fields, types, bucket keys, decoder
names and options, regular expressions);
:func:`check_against` then checks it against the object's ``ObjectSpec``
(maps, programs, variables, key sizes) — parsing only, no system calls.
Every problem is one :class:`ConfigError` naming file, line and field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from pybpf.exporter.decoders import DECODERS, DecodeContext, build_chain
from pybpf.exporter.model import (
    AttachConfig, AttachPoint, ConfigError, DecoderConfig, LabelConfig, MetricConfig, ModuleConfig, Where,
)
from pybpf.exporter.yamlsource import LineDict, LineList, YAMLSyntaxError, parse

__all__ = [
    "ConfigError", "Where", "DecoderConfig", "LabelConfig", "MetricConfig", "AttachPoint", "AttachConfig",
    "ModuleConfig", "read_config", "read_module", "check_against", "ATTACH_KINDS", "BUCKET_TYPES",
]

ATTACH_KINDS = ("uprobe", "uretprobe", "tracepoint", "raw_tracepoint", "usdt", "kprobe", "kretprobe")
# Kinds whose attach entry lists functions (one attach point, one cookie each).
FUNCTION_KINDS = ("uprobe", "uretprobe", "kprobe", "kretprobe")
BUCKET_TYPES = ("exp2", "exp2zero", "linear", "fixed")
COUNTER_MAP_TYPES = {1, 2, 5, 6, 9, 10}   # hash, array, percpu hash/array, lru (percpu) hash


# ---------------------------------------------------------------------------------------------- reading


def read_config(path: str | os.PathLike[str]) -> list[ModuleConfig]:
    """Every module of ``path`` (a YAML file, or a directory of them), checked for shape.

    Raises :class:`ConfigError` for the first problem.
    """
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file())
        if not files:
            raise ConfigError(Where(str(p), 0), "", "no *.yaml module files in this directory")
    elif p.is_file():
        files = [p]
    else:
        raise ConfigError(Where(str(p), 0), "", "no such file or directory")
    modules = [read_module(f) for f in files]
    _check_unique_metrics(modules)
    return modules


def read_module(path: str | os.PathLike[str]) -> ModuleConfig:
    """One module file, checked for shape (not yet against its object)."""
    file = str(path)
    try:
        text = Path(file).read_text()
    except OSError as err:
        raise ConfigError(Where(file, 0), "", f"cannot read: {err.strerror}") from None
    try:
        doc = parse(text)
    except YAMLSyntaxError as err:
        raise ConfigError(Where(file, err.line), "", err.message) from None
    ctx = _Fields(file)
    if not isinstance(doc, LineDict):
        raise ConfigError(Where(file, getattr(doc, "line", 1) or 1), "", "a module file is a YAML mapping")
    ctx.only(doc, "", ("object", "variables", "attach", "metrics"))
    name = Path(file).stem
    obj_path = _object_path(ctx, doc, file, name)
    variables = ctx.mapping(doc, "variables", "", optional=True) or {}
    attach = None
    if "attach" in doc:
        entries = ctx.seq(doc, "attach", "")
        attach = [_attach(ctx, entries, i) for i in range(len(entries))]
    metrics_doc = ctx.mapping(doc, "metrics", "")
    ctx.only(metrics_doc, "metrics", ("counters", "histograms"))
    metrics: list[MetricConfig] = []
    for kind, key in (("counter", "counters"), ("histogram", "histograms")):
        if key in metrics_doc:
            items = ctx.seq(metrics_doc, key, "metrics")
            metrics += [_metric(ctx, kind, items, i, f"metrics.{key}[{i}]") for i in range(len(items))]
    if not metrics:
        raise ConfigError(ctx.at(metrics_doc, None), "metrics", "no counters or histograms")
    mod = ModuleConfig(name, file, obj_path, dict(variables), attach, metrics)
    mod.lines = {key: doc.line_of(key) for key in doc}
    if isinstance(variables, LineDict):
        mod.lines.update({f"variables.{key}": variables.line_of(key) for key in variables})
    mod.cookie_names = _assign_cookies(attach or [])
    mod.fingerprint = (text, _stat(obj_path))
    return mod


def _stat(path: str) -> tuple[int, ...]:
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _object_path(ctx: "_Fields", doc: LineDict, file: str, name: str) -> str:
    base = Path(file).resolve().parent
    if "object" in doc:
        rel = ctx.string(doc, "object", "")
        path = base / rel
        if not path.is_file():
            raise ConfigError(ctx.at(doc, "object"), "object", f"no such file: {path}")
        if not (path.name.endswith(".o") or path.suffix == ".py"):
            raise ConfigError(ctx.at(doc, "object"), "object", "a module is a BPF ELF object (.o) or a .py file")
        return str(path)
    for candidate in (base / f"{name}.bpf.o", base / f"{name}.py"):
        if candidate.is_file():
            return str(candidate)
    raise ConfigError(Where(file, 1), "object", f"not given, and neither {name}.bpf.o nor {name}.py is next to "
                                                f"the file")


def _attach(ctx: "_Fields", entries: LineList, i: int) -> AttachConfig:
    path = f"attach[{i}]"
    entry = ctx.item_mapping(entries, i, path)
    kinds = [k for k in ATTACH_KINDS if k in entry]
    if len(kinds) != 1:
        raise ConfigError(ctx.at(entry, None), path, f"needs exactly one of: {', '.join(ATTACH_KINDS)}")
    kind = kinds[0]
    allowed = ["program", kind, "pid"]
    allowed += ["functions"] if kind in FUNCTION_KINDS else ["cookie", "name"]
    if kind == "usdt":
        allowed.append("probe")
    ctx.only(entry, path, allowed)
    program = ctx.string(entry, "program", path)
    pid = ctx.integer(entry, "pid", path, optional=True)
    where = ctx.at(entry, kind)
    binary: str | None = None
    if kind in FUNCTION_KINDS:
        if kind.startswith("u"):
            binary = ctx.string(entry, kind, path)
        elif entry[kind] is not None:
            raise ConfigError(where, f"{path}.{kind}", "kprobes take no value here: list the kernel "
                                                       "functions under 'functions'")
        funcs = ctx.seq(entry, "functions", path)
        points = [_function(ctx, funcs, j, f"{path}.functions[{j}]") for j in range(len(funcs))]
        if not points:
            raise ConfigError(ctx.at(entry, "functions"), f"{path}.functions", "empty list")
    else:
        if kind == "usdt":
            binary = ctx.string(entry, kind, path)
            target = ctx.string(entry, "probe", path)
            if target.count(":") != 1:
                raise ConfigError(ctx.at(entry, "probe"), f"{path}.probe", "write provider:name")
        else:
            target = ctx.string(entry, kind, path)
            if kind == "tracepoint" and not any(sep in target for sep in "/:"):
                raise ConfigError(where, f"{path}.{kind}", "write category/name (raw_syscalls/sys_enter)")
        cookie = ctx.integer(entry, "cookie", path, optional=True)
        name = ctx.string(entry, "name", path, optional=True) or target
        points = [AttachPoint(target, -1 if cookie is None else cookie, name, where)]
    return AttachConfig(program, kind, binary, points, pid, ctx.at(entries, i), path)


def _function(ctx: "_Fields", funcs: LineList, j: int, path: str) -> AttachPoint:
    item = funcs[j]
    where = ctx.at(funcs, j)
    if isinstance(item, str):
        return AttachPoint(item, -1, item, where)
    if not isinstance(item, LineDict):
        raise ConfigError(where, path, "a function name or a mapping {symbol, cookie, name}")
    ctx.only(item, path, ("symbol", "cookie", "name"))
    symbol = ctx.string(item, "symbol", path)
    cookie = ctx.integer(item, "cookie", path, optional=True)
    name = ctx.string(item, "name", path, optional=True) or symbol
    return AttachPoint(symbol, -1 if cookie is None else cookie, name, where)


def _assign_cookies(attach: list[AttachConfig]) -> dict[int, str]:
    """Cookie → name for the module; points without a cookie get the lowest free one (same name, same cookie)."""
    by_cookie: dict[int, str] = {}
    by_name: dict[str, int] = {}
    for a in attach:
        for p in a.points:
            if p.cookie < 0:
                continue
            if not 0 <= p.cookie < 1 << 64:
                raise ConfigError(p.where, a.path, f"cookie {p.cookie} is not a u64")
            if by_cookie.get(p.cookie, p.name) != p.name:
                raise ConfigError(p.where, a.path, f"cookie {p.cookie} is named both "
                                                   f"{by_cookie[p.cookie]!r} and {p.name!r}")
            by_cookie[p.cookie] = p.name
            by_name.setdefault(p.name, p.cookie)
    free = 1
    for a in attach:
        for p in a.points:
            if p.cookie >= 0:
                continue
            if p.name in by_name:
                p.cookie = by_name[p.name]
                continue
            while free in by_cookie:
                free += 1
            p.cookie = free
            by_cookie[free] = p.name
            by_name[p.name] = free
    return by_cookie


def _metric(ctx: "_Fields", kind: str, items: LineList, i: int, path: str) -> MetricConfig:
    m = ctx.item_mapping(items, i, path)
    fields = ["name", "help", "table", "labels"]
    if kind == "histogram":
        fields += ["bucket_type", "bucket_min", "bucket_max", "bucket_keys", "bucket_multiplier"]
    ctx.only(m, path, fields)
    name = ctx.string(m, "name", path)
    if not _is_metric_name(name):
        raise ConfigError(ctx.at(m, "name"), f"{path}.name", f"{name!r} is not a Prometheus metric name")
    help_text = ctx.string(m, "help", path, optional=True) or name
    table = ctx.string(m, "table", path, optional=True) or name
    labels_doc = ctx.seq(m, "labels", path, optional=True) or LineList()
    labels = [_label(ctx, labels_doc, j, f"{path}.labels[{j}]") for j in range(len(labels_doc))]
    seen: set[str] = set()
    for lab in labels:
        if lab.name in seen:
            raise ConfigError(lab.where, f"{lab.path}.name", f"label {lab.name!r} twice")
        seen.add(lab.name)
    # Each label's decoders built once, to refuse bad options (a bad regexp...) here, not at load.
    layout = {lab.name: (0, 0) for lab in labels}
    for lab in labels:
        build_chain(lab, DecodeContext(layout=layout))
    out = MetricConfig(kind, name, help_text, table, labels, ctx.at(items, i), path)
    if kind == "histogram":
        out.bucket_type = ctx.string(m, "bucket_type", path)
        if out.bucket_type not in BUCKET_TYPES:
            raise ConfigError(ctx.at(m, "bucket_type"), f"{path}.bucket_type",
                              f"unknown bucket type {out.bucket_type!r} (known: {', '.join(BUCKET_TYPES)})")
        if out.bucket_type == "fixed":
            out.bucket_keys = _bucket_keys(ctx, m, path)
        else:
            _bucket_range(ctx, m, path, out)
        mult = m.get("bucket_multiplier", 1.0)
        if isinstance(mult, str):
            try:
                mult = float(mult)      # YAML 1.1 reads 1e-9 as a string
            except ValueError:
                pass
        if isinstance(mult, bool) or not isinstance(mult, (int, float)) or mult <= 0:
            raise ConfigError(ctx.at(m, "bucket_multiplier"), f"{path}.bucket_multiplier", "a positive number")
        out.bucket_multiplier = float(mult)
        if not labels:
            raise ConfigError(out.where, f"{path}.labels", "a histogram needs its bucket as the last label")
    return out


def _bucket_range(ctx: "_Fields", m: LineDict, path: str, out: MetricConfig) -> None:
    """bucket_min..bucket_max of an exp2, exp2zero or linear histogram."""
    if "bucket_keys" in m:
        raise ConfigError(ctx.at(m, "bucket_keys"), f"{path}.bucket_keys",
                          f"only for bucket_type fixed ({out.bucket_type} buckets are bucket_min..bucket_max)")
    out.bucket_min = ctx.integer(m, "bucket_min", path, optional=True) or 0
    out.bucket_max = ctx.integer(m, "bucket_max", path)
    if out.bucket_min < 0:
        raise ConfigError(ctx.at(m, "bucket_min"), f"{path}.bucket_min", "map keys are unsigned: 0 or more")
    if out.bucket_max < out.bucket_min:
        raise ConfigError(ctx.at(m, "bucket_max"), f"{path}.bucket_max", "is below bucket_min")
    if out.bucket_max > 1023 and out.bucket_type.startswith("exp2"):
        raise ConfigError(ctx.at(m, "bucket_max"), f"{path}.bucket_max", "at most 1023 (2**1024 is not a float)")


def _bucket_keys(ctx: "_Fields", m: LineDict, path: str) -> tuple[int, ...]:
    """The bucket_keys of a fixed histogram: map keys, each its bucket's upper bound, increasing."""
    for other in ("bucket_min", "bucket_max"):
        if other in m:
            raise ConfigError(ctx.at(m, other), f"{path}.{other}",
                              "not used by bucket_type fixed: list the buckets in bucket_keys")
    keys = ctx.seq(m, "bucket_keys", path)
    if not keys:
        raise ConfigError(ctx.at(m, "bucket_keys"), f"{path}.bucket_keys", "empty list")
    for i, key in enumerate(keys):
        if isinstance(key, bool) or not isinstance(key, int) or key < 0:
            raise ConfigError(ctx.at(keys, i), f"{path}.bucket_keys[{i}]",
                              f"expected a map key (an integer, 0 or more), got {key!r}")
        if i and key <= keys[i - 1]:
            raise ConfigError(ctx.at(keys, i), f"{path}.bucket_keys[{i}]",
                              f"{key} does not follow {keys[i - 1]}: list the keys in increasing order, once each")
    return tuple(keys)


def _is_metric_name(name: str) -> bool:
    ok = name[:1].isascii() and (name[:1].isalpha() or name[:1] in "_:")
    return ok and all(c.isascii() and (c.isalnum() or c in "_:") for c in name)


def _label(ctx: "_Fields", labels: LineList, j: int, path: str) -> LabelConfig:
    lab = ctx.item_mapping(labels, j, path)
    ctx.only(lab, path, ("name", "size", "padding", "decoders"))
    name = ctx.string(lab, "name", path)
    if not _is_metric_name(name) or ":" in name:
        raise ConfigError(ctx.at(lab, "name"), f"{path}.name", f"{name!r} is not a Prometheus label name")
    size = ctx.integer(lab, "size", path, optional=True)
    padding = ctx.integer(lab, "padding", path, optional=True) or 0
    if size is not None and size <= 0:
        raise ConfigError(ctx.at(lab, "size"), f"{path}.size", "must be positive")
    decs_doc = ctx.seq(lab, "decoders", path, optional=True) or LineList()
    decoders = []
    for k in range(len(decs_doc)):
        dpath = f"{path}.decoders[{k}]"
        d = ctx.item_mapping(decs_doc, k, dpath)
        dname = ctx.string(d, "name", dpath)
        if dname not in DECODERS:
            raise ConfigError(ctx.at(d, "name"), f"{dpath}.name",
                              f"unknown decoder {dname!r} (known: {', '.join(sorted(DECODERS))})")
        options = {k2: v for k2, v in d.items() if k2 != "name"}
        decoders.append(DecoderConfig(dname, options, ctx.at(d, "name"), dpath))
    return LabelConfig(name, size, padding, decoders, ctx.at(labels, j), path)


def _check_unique_metrics(modules: Iterable[ModuleConfig]) -> None:
    seen: dict[str, str] = {}
    for mod in modules:
        for m in mod.metrics:
            if m.name in seen:
                raise ConfigError(m.where, f"{m.path}.name", f"metric {m.name!r} is also defined in {seen[m.name]}")
            seen[m.name] = mod.file


class _Fields:
    """Typed field access that raises ConfigError with file, line and field path."""

    def __init__(self, file: str) -> None:
        self.file = file

    def at(self, container: Any, key: Any) -> Where:
        if isinstance(container, (LineDict, LineList)) and key is not None:
            return Where(self.file, container.line_of(key))
        return Where(self.file, getattr(container, "line", 0))

    def only(self, d: LineDict, path: str, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in d:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                raise ConfigError(self.at(d, key), where, f"unknown field (known here: {', '.join(allowed)})")

    def _get(self, d: LineDict, key: str, path: str, optional: bool) -> Any:
        if key not in d or d[key] is None:
            if optional:
                return None
            raise ConfigError(self.at(d, None), f"{path}.{key}" if path else key, "missing")
        return d[key]

    def _bad(self, d: LineDict, key: str, path: str, what: str) -> ConfigError:
        return ConfigError(self.at(d, key), f"{path}.{key}" if path else key, f"expected {what}, got {d[key]!r}")

    def string(self, d: LineDict, key: str, path: str, optional: bool = False) -> Any:
        v = self._get(d, key, path, optional)
        if v is not None and not isinstance(v, str):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return str(v)
            raise self._bad(d, key, path, "a string")
        return v

    def integer(self, d: LineDict, key: str, path: str, optional: bool = False) -> Any:
        v = self._get(d, key, path, optional)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise self._bad(d, key, path, "an integer")
        return v

    def mapping(self, d: LineDict, key: str, path: str, optional: bool = False) -> Any:
        v = self._get(d, key, path, optional)
        if v is not None and not isinstance(v, LineDict):
            raise self._bad(d, key, path, "a mapping")
        return v

    def seq(self, d: LineDict, key: str, path: str, optional: bool = False) -> Any:
        v = self._get(d, key, path, optional)
        if v is not None and not isinstance(v, LineList):
            raise self._bad(d, key, path, "a list")
        return v

    def item_mapping(self, items: LineList, i: int, path: str) -> LineDict:
        if not isinstance(items[i], LineDict):
            raise ConfigError(self.at(items, i), path, f"expected a mapping, got {items[i]!r}")
        return items[i]


# ---------------------------------------------------------------------------------------------- checking


def check_against(mod: ModuleConfig, spec: Any) -> None:
    """Check ``mod`` against its parsed object: maps, programs, variables, key sizes (no syscalls).

    Fills each label's ``size`` from the map key's BTF struct where the config left it out.
    """
    for name in mod.variables:
        if name not in spec.variables:
            raise ConfigError(mod.where(f"variables.{name}"), f"variables.{name}",
                              f"no such variable in {Path(mod.object_path).name} "
                              f"(known: {', '.join(sorted(spec.variables)) or 'none'})")
    for a in mod.attach or []:
        if a.program not in spec.programs:
            raise ConfigError(a.where, f"{a.path}.program",
                              f"unknown program {a.program!r} (known: {', '.join(sorted(spec.programs))})")
    for m in mod.metrics:
        ms = spec.maps.get(m.table)
        if ms is None:
            known = ", ".join(sorted(n for n in spec.maps if not n.startswith(".")))
            raise ConfigError(m.where, f"{m.path}.table", f"unknown map {m.table!r} (known: {known})")
        if int(ms.type) not in COUNTER_MAP_TYPES:
            raise ConfigError(m.where, f"{m.path}.table", f"map {m.table!r} is a {_type_name(ms.type)} map: "
                                                          f"metrics read hash and array maps (plain, per-CPU, LRU)")
        if ms.value_size != 8:
            raise ConfigError(m.where, f"{m.path}.table",
                              f"map {m.table!r} has {ms.value_size}-byte values: counters are u64 (8 bytes)")
        _fill_sizes(m, ms)


def _type_name(t: Any) -> str:
    return getattr(t, "name", str(t)).lower()


def _fill_sizes(m: MetricConfig, ms: Any) -> None:
    key_size = ms.key_size
    missing = [lab for lab in m.labels if lab.size is None]
    if missing:
        if len(m.labels) == 1:
            m.labels[0].size = key_size - m.labels[0].padding
        else:
            sizes = _btf_member_sizes(ms.key_type, key_size)
            if sizes is None or len(sizes) != len(m.labels):
                raise ConfigError(missing[0].where, f"{missing[0].path}.size",
                                  f"missing, and the key of map {m.table!r} is not a BTF struct with "
                                  f"{len(m.labels)} members to take it from")
            for lab, size in zip(m.labels, sizes):
                if lab.size is None:
                    lab.size = size - lab.padding
    total = sum((lab.size or 0) + lab.padding for lab in m.labels)
    if m.labels and total != key_size:
        raise ConfigError(m.where, f"{m.path}.labels", f"label sizes and paddings add up to {total} bytes, "
                                                       f"the key of map {m.table!r} is {key_size} bytes")


def _btf_member_sizes(key_type: Any, key_size: int) -> list[int] | None:
    """Each member's bytes up to the next member (its padding included), or None if not a struct."""
    if key_type is None:
        return None
    from pybpf.btf.typeinfo import resolve
    from pybpf.btf.types import Struct

    t = resolve(key_type)
    if not isinstance(t, Struct) or not t.members:
        return None
    offsets = [mem.offset for mem in t.members] + [key_size]
    return [offsets[i + 1] - offsets[i] for i in range(len(t.members))]

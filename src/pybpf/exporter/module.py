"""One exporter module: its object parsed, checked, loaded, attached, and its maps read.

:func:`prepare` does everything that needs no kernel (parse the ``.bpf.o``
or compile the ``.py``, check the config against it, set variables) and
raises :class:`~pybpf.exporter.config.ConfigError`; :meth:`Module.start`
loads and attaches — a failure there is kept in ``Module.error`` and
reported, it does not stop the other modules.  :meth:`Module.collect` reads
every configured map once (batch lookups) and returns prometheus_client
metric families.

Example::

    mod = Module(prepare(read_module("syscalls.yaml")))
    mod.start()
    for family in mod.collect():
        print(family.name, len(family.samples))
    mod.close()                       # detaches everything
"""

from __future__ import annotations

import importlib.util
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from pybpf.errors import BPFError
from pybpf.maps.batch import raw_chunks
from pybpf.maps.info import PERCPU_TYPES, possible_cpus
from pybpf.exporter.buckets import HistogramBuckets
from pybpf.exporter.config import AttachConfig, ConfigError, MetricConfig, ModuleConfig, Where, check_against
from pybpf.exporter.decoders import DecodeContext, SkipSeries, build_chain

__all__ = ["Prepared", "prepare", "Module", "MetricReader"]

DECODE_ERRORS = (ValueError, OverflowError, OSError, UnicodeError, IndexError, KeyError)
_CACHE_LIMIT = 1 << 17       # decoded label sets kept per metric
_UNSEEN = object()


@dataclass
class Prepared:
    config: ModuleConfig
    spec: Any


def prepare(cfg: ModuleConfig) -> Prepared:
    """Parse (or compile) the module's object and check the config against it; no syscalls."""
    try:
        spec = _object_spec(cfg.object_path)
    except ConfigError:
        raise
    except BPFError as err:
        raise ConfigError(cfg.where("object"), "object", f"{Path(cfg.object_path).name}: {err}") from None
    check_against(cfg, spec)
    for name, value in cfg.variables.items():
        try:
            spec.variables[name].value = value
        except (BPFError, TypeError, ValueError, OverflowError) as err:
            raise ConfigError(cfg.where(f"variables.{name}"), f"variables.{name}",
                              f"cannot set {value!r}: {err}") from None
    return Prepared(cfg, spec)


def _object_spec(path: str) -> Any:
    import pybpf

    if not path.endswith(".py"):
        return pybpf.ObjectSpec.from_file(path)
    compile_fn = getattr(pybpf, "compile", None)
    if compile_fn is None:
        raise ConfigError(Where(path, 0), "object", "a .py module needs pybpf.compile (pybpf.lang), "
                                                    "which this pybpf does not have")
    name = f"pybpf_exporter_module_{Path(path).stem}"
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ConfigError(Where(path, 0), "object", "cannot import this file")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module
    try:
        loader_spec.loader.exec_module(module)
    except SyntaxError as err:
        raise ConfigError(Where(path, err.lineno or 0), "object", f"Python syntax: {err.msg}") from None
    except ImportError as err:
        raise ConfigError(Where(path, 0), "object", f"import: {err}") from None
    finally:
        sys.modules.pop(name, None)
    return compile_fn(module)


class MetricReader:
    """Reads one map into one metric family; decoded label sets are cached per raw key."""

    def __init__(self, cfg: MetricConfig, bpf_map: Any, ctx_cookies: dict[int, str]) -> None:
        self.cfg = cfg
        self.map = bpf_map
        self._copies = possible_cpus() if bpf_map.type in PERCPU_TYPES else 1   # values per key
        layout: dict[str, tuple[int, int]] = {}
        off = 0
        for lab in cfg.labels:
            layout[lab.name] = (off, lab.size or 0)
            off += (lab.size or 0) + lab.padding
        ctx = DecodeContext(cookie_names=ctx_cookies, layout=layout)
        labels = cfg.labels[:-1] if cfg.kind == "histogram" else cfg.labels
        self.names = [lab.name for lab in labels]
        self._slices = [(layout[lab.name][0], layout[lab.name][0] + (lab.size or 0), build_chain(lab, ctx))
                        for lab in labels]
        if cfg.kind == "histogram":
            b_off, b_size = layout[cfg.labels[-1].name]
            self._bucket = (b_off, b_off + b_size)
            self._buckets = HistogramBuckets(cfg.bucket_type, cfg.bucket_min, cfg.bucket_max,
                                             cfg.bucket_multiplier, cfg.bucket_keys)
        self._cache: dict[bytes, tuple[str, ...] | None] = {}
        self._dicts: dict[tuple[str, ...], dict[str, str]] = {}
        self.decode_errors = 0

    def _labels(self, key: bytes) -> tuple[str, ...] | None:
        """The key's label values, or None when a decoder (``regexp``) leaves its series out."""
        found = self._cache.get(key, _UNSEEN)
        if found is not _UNSEEN:
            return found
        values = []
        try:
            for lo, hi, chain in self._slices:
                try:
                    values.append(chain(key[lo:hi], key))
                except DECODE_ERRORS:
                    self.decode_errors += 1
                    values.append(f"undecodable:{key[lo:hi].hex()}")
            found = tuple(values)
        except SkipSeries:
            found = None
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _entries(self) -> Iterator[tuple[bytes, int]]:
        """(raw key, value) of every entry, per-CPU values summed; read with batch lookups."""
        ks, copies = self.map.key_size, self._copies
        for keys, values, n in raw_chunks(self.map, None):
            kb = bytes(memoryview(keys)[:n * ks])
            with memoryview(values) as mv, mv[:n * 8 * copies].cast("Q") as words:
                counts = words.tolist()
            if copies > 1:
                counts = [sum(counts[i:i + copies]) for i in range(0, n * copies, copies)]
            yield from zip([kb[i:i + ks] for i in range(0, n * ks, ks)], counts)

    def _label_dict(self, labels: tuple[str, ...]) -> dict[str, str]:
        found = self._dicts.get(labels)
        if found is None:
            if len(self._dicts) >= _CACHE_LIMIT:
                self._dicts.clear()
            found = self._dicts[labels] = dict(zip(self.names, labels))
        return found

    def read(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
        from prometheus_client.samples import Sample

        cfg = self.cfg
        if cfg.kind == "counter":
            totals: dict[tuple[str, ...], int] = {}
            label = self._labels
            for key, value in self._entries():
                labels = label(key)
                if labels is not None:
                    totals[labels] = totals.get(labels, 0) + value
            family = CounterMetricFamily(cfg.name, cfg.help, labels=self.names)
            # add_metric's samples, made here with label dicts cached across scrapes.
            sample_name, label_dict = f"{family.name}_total", self._label_dict
            family.samples = [Sample(sample_name, label_dict(labels), value, None, None)
                              for labels, value in totals.items()]
            return family
        family = HistogramMetricFamily(cfg.name, cfg.help, labels=self.names)
        for labels, counts in self._histograms().items():
            buckets, total = self._buckets.cumulative(counts)
            family.add_metric(labels, buckets, total)
        return family

    def _histograms(self) -> dict[tuple[str, ...], dict[int, int]]:
        lo, hi = self._bucket
        groups: dict[bytes, dict[int, int]] = {}
        for key, value in self._entries():
            counts = groups.setdefault(key[:lo] + key[hi:], {})
            b = int.from_bytes(key[lo:hi], "little")
            counts[b] = counts.get(b, 0) + value
        out: dict[tuple[str, ...], dict[int, int]] = {}
        for prefix, counts in groups.items():
            labels = self._labels(prefix)
            if labels is None:
                continue
            merged = out.setdefault(labels, {})
            for b, c in counts.items():
                merged[b] = merged.get(b, 0) + c
        return out

class Module:
    """A prepared module once started: its object, links, readers and its own counters."""

    def __init__(self, prepared: Prepared, log: Callable[[str], None] = lambda msg: None) -> None:
        self.prepared = prepared
        self.config = prepared.config
        self.name = prepared.config.name
        self.log = log
        self.obj: Any = None
        self.links: list[Any] = []
        self.clones: dict[str, list[Any]] = {}     # program name → copies the hooks made of it
        self.readers: list[MetricReader] = []
        self.error: str | None = None
        self.attach_failures = 0
        self.map_read_errors = 0
        self.last_scrape_seconds = 0.0

    @property
    def up(self) -> bool:
        return self.obj is not None and self.error is None

    @property
    def decode_errors(self) -> int:
        return sum(r.decode_errors for r in self.readers)

    def start(self) -> None:
        """Load and attach; errors are recorded in ``error`` (and logged), not raised."""
        try:
            self.obj = self.prepared.spec.load()
            self.readers = [MetricReader(m, self.obj.maps[m.table], self.config.cookie_names)
                            for m in self.config.metrics]
        except BPFError as err:
            self._fail(f"load: {err}")
            return
        if self.config.attach is None:
            try:
                for pname, link in self.obj.attach_all().items():
                    self._add_links(pname, [link])
            except BPFError as err:
                self.attach_failures += 1
                self._fail(f"attach: {err}")
            return
        for a in self.config.attach:
            try:
                self._add_links(a.program, _attach(self.obj.programs[a.program], a))
            except BPFError as err:
                self.attach_failures += 1
                self.error = f"{a.path} ({a.kind} {a.binary or a.points[0].target}): {err}"
                self.log(f"module {self.name!r}: {self.error}")

    def _add_links(self, pname: str, links: list[Any]) -> None:
        """Keep ``links``, and open the programs they run when a hook ran a copy of ours
        (uprobe_multi's clone of a plain uprobe program, the cookie clones of old kernels),
        so that their run statistics are counted under ``pname`` too."""
        from pybpf.program import Program

        self.links += links
        own = self.obj.programs.get(pname)
        known = {c.id for c in self.clones.get(pname, [])} | ({own.id} if own is not None else set())
        for link in links:
            for part in getattr(link, "links", None) or [link]:
                try:
                    prog_id = part.info().prog_id
                    if prog_id and prog_id not in known:
                        self.clones.setdefault(pname, []).append(Program.from_id(prog_id))
                        known.add(prog_id)
                except BPFError:
                    continue        # gone already, or a link without program info: nothing to count

    def program_stats(self) -> list[tuple[str, int, str, int, int]]:
        """(name, id, tag, run time ns, run count) of each program, its clones' runs included."""
        out = []
        for pname, prog in self.programs.items():
            try:
                infos = [prog.info()] + [c.info() for c in self.clones.get(pname, [])]
            except BPFError:
                continue
            out.append((pname, infos[0].id, infos[0].tag, sum(i.run_time_ns for i in infos),
                        sum(i.run_count for i in infos)))
        return out

    def _fail(self, message: str) -> None:
        self.error = message
        self.log(f"module {self.name!r}: {message}")
        self.close()

    @property
    def programs(self) -> dict[str, Any]:
        return self.obj.programs if self.obj is not None else {}

    def collect(self) -> list[Any]:
        """Every metric family of this module, each map read once."""
        start = time.perf_counter()
        out = []
        for reader in self.readers:
            try:
                out.append(reader.read())
            except BPFError as err:
                self.map_read_errors += 1
                self.log(f"module {self.name!r}: map {reader.cfg.table!r}: {err}")
        self.last_scrape_seconds = time.perf_counter() - start
        return out

    def close(self) -> None:
        """Detach every link and close the object."""
        from pybpf.links.link import close_all

        links, self.links = self.links, []
        close_all(links)
        for clones in self.clones.values():
            for prog in clones:
                prog.close()
        self.clones = {}
        if self.obj is not None:
            self.obj.close()
            self.obj = None
        self.readers = []


def _attach(prog: Any, a: AttachConfig) -> list[Any]:
    """Attach ``prog`` at every point of ``a``; the links made (closed again on failure)."""
    kind = a.kind
    if kind in ("uprobe", "uretprobe"):
        return [prog.attach_uprobe_multi(a.binary, [p.target for p in a.points], cookies=[p.cookie for p in a.points],
                                         pid=a.pid, retprobe=kind == "uretprobe")]
    if kind in ("kprobe", "kretprobe"):
        return [prog.attach_kprobe_multi([p.target for p in a.points], cookies=[p.cookie for p in a.points],
                                         retprobe=kind == "kretprobe")]
    p = a.points[0]
    cookie = max(p.cookie, 0)
    if kind == "tracepoint":
        category, _, name = p.target.replace(":", "/").partition("/")
        return [prog.attach_tracepoint(category, name, cookie=cookie)]
    if kind == "raw_tracepoint":
        return [prog.attach_raw_tracepoint(p.target, cookie=cookie)]
    provider, _, name = p.target.partition(":")
    return [prog.attach_usdt(a.binary, provider, name, pid=a.pid, cookie=cookie)]

"""The pybpf Prometheus exporter: BPF maps turned into counters and histograms.

``pybpf exporter --config DIR_OR_FILE [--listen :9435]`` loads BPF modules
(clang ``.bpf.o`` objects, or :mod:`pybpf.lang` ``.py`` files), attaches
them (from section names, or the attach points of the config, one BPF
cookie each), and serves ``/metrics`` through prometheus_client, reading
each configured map once per scrape with batch lookups.  The configuration
is ebpf_exporter's shape (``metrics: counters: / histograms:``, labels with
decoders) plus the ``cookie`` decoder and an ``attach`` list.

Modules, each with one job:

- :mod:`.yamlsource` — YAML with line numbers;
- :mod:`.model` — the configuration's data and :class:`ConfigError`; :mod:`.config` — reading
  and checking it;
- :mod:`.decoders` — label decoders; :mod:`.resolvers` — names for numbers (syscall names:
  :mod:`pybpf.tools.syscalls`, shared with the tools);
- :mod:`.module` — one module: prepare (no syscalls), load, attach, read maps;
- :mod:`.service` — the set of modules, reloads, the collector;
- :mod:`.server` — HTTP; :mod:`.command` — the ``pybpf exporter`` command.

Needs the ``exporter`` extra (prometheus_client, pyyaml).  Minimum kernel:
what the modules use; batch map reads need Linux 5.6 (older kernels are
read key by key), cookies 5.15.

Example::

    from pybpf.exporter import Exporter
    exp = Exporter("examples/exporter/")
    exp.start()
"""

from typing import Any

__all__ = ["Exporter", "ConfigError"]


def __getattr__(name: str) -> Any:
    # Imported on use, so that ``pybpf --help`` works without the extra installed.
    if name == "Exporter":
        from pybpf.exporter.service import Exporter
        return Exporter
    if name == "ConfigError":
        from pybpf.exporter.config import ConfigError
        return ConfigError
    raise AttributeError(f"module 'pybpf.exporter' has no attribute {name!r}")

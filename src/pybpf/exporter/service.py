"""The exporter's state: the running modules, config reloads, and the Prometheus collector.

:class:`Exporter` owns the modules of one configuration.  :meth:`Exporter.reload`
reads the configuration again: an unchanged module (same YAML text, same
object file) that is up keeps its loaded object, links and counters; a
changed, new or failed one is (re)started, a removed one closed.  A configuration with an error is
refused as a whole and the running one kept.  :meth:`Exporter.collect` is
the ``prometheus_client`` collector: it reads the maps at scrape time.

Its own metrics, per module: ``pybpf_exporter_module_up``,
``pybpf_exporter_programs_loaded``, ``pybpf_exporter_attach_failures_total``,
``pybpf_exporter_map_read_errors_total``, ``pybpf_exporter_decoder_errors_total``,
``pybpf_exporter_scrape_duration_seconds``; per program
``pybpf_exporter_program_info`` (id, tag) and, with ``kernel.bpf_stats_enabled``,
``pybpf_exporter_program_run_seconds_total`` / ``..._run_count_total``; and
``pybpf_exporter_config_last_reload_successful``, ``pybpf_exporter_config_reloads_total``.

Example::

    exp = Exporter("/etc/pybpf/exporter", log=print)
    exp.start()                       # ConfigError if the config is bad
    registry = CollectorRegistry(auto_describe=False)
    registry.register(exp)
    exp.reload()                      # on SIGHUP
    exp.close()                       # on SIGTERM: detaches everything
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator

from pybpf.exporter.config import ConfigError, read_config
from pybpf.exporter.module import Module, prepare

__all__ = ["Exporter"]


class Exporter:
    """The modules of the configuration at ``path`` and the collector that reads them."""

    def __init__(self, path: str, log: Callable[[str], None] = lambda msg: None) -> None:
        self.path = path
        self.log = log
        self.modules: dict[str, Module] = {}
        self.reloads = {"success": 0, "failure": 0}
        self.last_reload_ok = True
        self.last_error: str | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Read, check and start the configuration; :class:`ConfigError` if it is bad."""
        prepared = [prepare(cfg) for cfg in read_config(self.path)]
        for p in prepared:
            mod = Module(p, self.log)
            mod.start()
            self.modules[mod.name] = mod

    def reload(self) -> bool:
        """Apply the configuration as it is now; False (old one kept, error logged) if it is bad."""
        try:
            configs = read_config(self.path)
            # Kept as they run: modules that are up and whose YAML and object did not change.
            unchanged = {c.name for c in configs if c.name in self.modules and self.modules[c.name].up
                         and self.modules[c.name].config.fingerprint == c.fingerprint}
            prepared = {c.name: prepare(c) for c in configs if c.name not in unchanged}
        except ConfigError as err:
            self.reloads["failure"] += 1
            self.last_reload_ok = False
            self.last_error = str(err)
            self.log(f"reload refused, keeping the running configuration: {err}")
            return False
        started = {}
        for name, p in prepared.items():
            mod = Module(p, self.log)
            mod.start()
            started[name] = mod
        with self._lock:
            old = self.modules
            self.modules = {c.name: (old[c.name] if c.name in unchanged else started[c.name]) for c in configs}
        for name, mod in old.items():
            if name not in unchanged:
                mod.close()
        self.reloads["success"] += 1
        self.last_reload_ok = True
        self.last_error = None
        self.log(f"reloaded: {len(unchanged)} module(s) kept, {len(started)} started, "
                 f"{len([n for n in old if n not in unchanged])} closed")
        return True

    def close(self) -> None:
        """Detach and close every module."""
        with self._lock:
            modules, self.modules = self.modules, {}
        for mod in modules.values():
            mod.close()

    # ------------------------------------------------------------------ collector

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        with self._lock:
            families = []
            own = {
                "up": GaugeMetricFamily("pybpf_exporter_module_up",
                                        "1 if the module is loaded and every attach point attached",
                                        labels=["module"]),
                "programs": GaugeMetricFamily("pybpf_exporter_programs_loaded", "BPF programs loaded",
                                              labels=["module"]),
                "attach": CounterMetricFamily("pybpf_exporter_attach_failures", "Attach points that failed",
                                              labels=["module"]),
                "maps": CounterMetricFamily("pybpf_exporter_map_read_errors", "Failed map reads",
                                            labels=["module"]),
                "decode": CounterMetricFamily("pybpf_exporter_decoder_errors", "Map keys a decoder failed on",
                                              labels=["module"]),
                "duration": GaugeMetricFamily("pybpf_exporter_scrape_duration_seconds",
                                              "Time the last scrape spent reading this module's maps",
                                              labels=["module"]),
            }
            info = GaugeMetricFamily("pybpf_exporter_program_info", "A loaded BPF program",
                                     labels=["module", "program", "id", "tag"])
            run_time = CounterMetricFamily("pybpf_exporter_program_run_seconds",
                                           "Time the program ran (kernel.bpf_stats_enabled=1)",
                                           labels=["module", "program"])
            run_count = CounterMetricFamily("pybpf_exporter_program_run_count",
                                            "Times the program ran (kernel.bpf_stats_enabled=1)",
                                            labels=["module", "program"])
            for name, mod in self.modules.items():
                families += mod.collect()
                own["up"].add_metric([name], 1 if mod.up else 0)
                own["programs"].add_metric([name], len(mod.programs))
                own["attach"].add_metric([name], mod.attach_failures)
                own["maps"].add_metric([name], mod.map_read_errors)
                own["decode"].add_metric([name], mod.decode_errors)
                own["duration"].add_metric([name], mod.last_scrape_seconds)
                for pname, prog_id, tag, run_ns, runs in mod.program_stats():
                    info.add_metric([name, pname, str(prog_id), tag], 1)
                    run_time.add_metric([name, pname], run_ns / 1e9)
                    run_count.add_metric([name, pname], runs)
            reload_ok = GaugeMetricFamily("pybpf_exporter_config_last_reload_successful",
                                          "1 if the last configuration reload was applied")
            reload_ok.add_metric([], 1 if self.last_reload_ok else 0)
            reloads = CounterMetricFamily("pybpf_exporter_config_reloads", "Configuration reloads",
                                          labels=["result"])
            for result, n in self.reloads.items():
                reloads.add_metric([result], n)
        yield from families
        yield from own.values()
        yield from (info, run_time, run_count, reload_ok, reloads)

    def health(self) -> tuple[bool, str]:
        """(some module is up, one line per module: "name: up" or "name: down: <error>")."""
        with self._lock:
            lines = [f"{n}: {'up' if m.up else 'down: ' + (m.error or '')}" for n, m in self.modules.items()]
            any_up = any(m.up for m in self.modules.values())
        if not self.last_reload_ok:
            lines.append(f"last reload refused: {self.last_error}")
        return any_up, "\n".join(lines) + "\n"

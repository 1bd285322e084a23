"""Shared pieces of the exporter tests: the example modules built, a workload, a running exporter.

- :func:`example_config` copies the three shipped example modules
  (examples/exporter) into a directory with their objects built by clang,
  pointed at the test workload instead of libc;
- :class:`Workload` is tests/bin/exporter_target.c built into a private
  path (uprobes are per inode: nobody else's runs count), started waiting
  for a line on stdin, so probes can be attached first;
- :class:`ExporterProcess` runs ``pybpf exporter`` on a free port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from buildprogs import BUILD, build_file

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "exporter"
TARGET_SRC = Path(__file__).resolve().parent / "bin" / "exporter_target.c"
MODULES = ("syscalls", "uprobe_counter", "latency")     # C, built by clang
PY_MODULES = ("calls_py",)                              # pybpf.lang, compiled by the exporter

# What the workload is asked to do, and so what every test expects.
ALPHA, BETA, SLOW, GETPPID = 3, 5, 4, 7


def example_object(name: str) -> Path:
    return build_file(EXAMPLES / f"{name}.bpf.c", BUILD / "exporter")


def build_target(dest: Path) -> Path:
    out = dest / "exporter_target"
    subprocess.run(["gcc", "-O1", "-o", str(out), str(TARGET_SRC)], check=True, capture_output=True)
    return out


def example_config(dest: Path, target: Path, tgid: int, modules: tuple[str, ...] = MODULES) -> Path:
    """The shipped examples in ``dest``, watching ``target`` (and, for syscalls, process ``tgid``)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in modules:
        if name in PY_MODULES:
            shutil.copy(EXAMPLES / f"{name}.py", dest / f"{name}.py")
        else:
            shutil.copy(example_object(name), dest / f"{name}.bpf.o")
        doc = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
        if name == "syscalls":
            doc["variables"]["target_tgid"] = tgid
        elif name == "uprobe_counter":
            doc["attach"][0]["uprobe"] = str(target)
            doc["attach"][0]["functions"] = ["alpha", "beta", {"symbol": "slow", "name": "sleepy"}]
        elif name == "calls_py":
            doc["attach"][0]["uprobe"] = str(target)
            doc["attach"][0]["functions"] = ["alpha", "beta"]
        elif name == "latency":
            for a in doc["attach"]:
                a["uprobe" if "uprobe" in a else "uretprobe"] = str(target)
                a["functions"] = ["slow", "alpha"]
        (dest / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


class Workload:
    """The target process, waiting on stdin until :meth:`run`."""

    def __init__(self, binary: Path, counts: tuple[int, int, int, int] = (ALPHA, BETA, SLOW, GETPPID)) -> None:
        """``counts``: the calls of alpha(i), beta(i) (i = 0, 1, ...), slow() and getppid."""
        self.proc = subprocess.Popen([str(binary), *map(str, counts), "wait"], stdin=subprocess.PIPE)
        self.pid = self.proc.pid

    def run(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, accept: str | None = None, timeout: float = 10) -> tuple[int, str, str]:
    """(status, content type, body)."""
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """{(sample name, frozenset(labels.items())): value} of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(smp: dict, name: str, **labels: str) -> float | None:
    return smp.get((name, frozenset(labels.items())))


class ExporterProcess:
    """``python3 -m pybpf.cli exporter --config CONFIG`` on a free port; stderr kept in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pybpf.cli", "exporter", "--config", str(config),
             "--listen", f"127.0.0.1:{self.port}"],
            stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ),
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exporter exited {self.proc.returncode}: {self.log()}")
            try:
                status, _, _ = http_get(self.url + "/healthz", timeout=2)
                if status in (200, 503):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"exporter not serving after {timeout} s: {self.log()}")

    def metrics(self) -> dict[tuple[str, frozenset], float]:
        status, _, text = http_get(self.url + "/metrics")
        assert status == 200, text
        return samples(text)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

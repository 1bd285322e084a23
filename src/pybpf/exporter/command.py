"""``pybpf exporter``: serve BPF map contents as Prometheus metrics.

Usage::

    pybpf exporter --config DIR_OR_FILE [--listen :9435]

Loads and attaches every module of the configuration (see
:mod:`pybpf.exporter.config`), then serves ``/metrics`` and ``/healthz``
until SIGTERM (or SIGINT), which detaches everything and exits 0.  SIGHUP
reloads the configuration: unchanged modules keep their objects and
counters; a bad configuration is refused and the running one kept.

Exit status: 0 after SIGTERM, 2 for a bad configuration (one line naming
file, line and field), 1 when the address cannot be bound.  Needs the
``exporter`` extra (prometheus_client, pyyaml).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pybpf exporter`` to the command's subparsers."""
    parser = subparsers.add_parser(
        "exporter", help="export BPF maps as Prometheus metrics",
        description="Load BPF modules described by YAML files and serve their maps on /metrics.",
    )
    parser.add_argument("--config", required=True, metavar="DIR_OR_FILE",
                        help="a module YAML file, or a directory of them")
    parser.add_argument("--listen", default=":9435", metavar="[HOST]:PORT", help="default :9435")
    parser.set_defaults(func=run)


def _log(message: str) -> None:
    print(f"pybpf exporter: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the exporter until SIGTERM/SIGINT; the exit status."""
    try:
        from pybpf.exporter.config import ConfigError
        from pybpf.exporter.server import parse_listen, serve
        from pybpf.exporter.service import Exporter
    except ImportError as err:
        _log(f"error: {err.name} is missing: pip install 'pybpf[exporter]'")
        return 2
    try:
        parse_listen(args.listen)
    except ValueError as err:
        _log(f"error: {err}")
        return 2
    exporter = Exporter(args.config, log=_log)
    stop = threading.Event()
    hup = threading.Event()

    def on_stop(signum: int, frame: object) -> None:
        stop.set()

    def on_hup(signum: int, frame: object) -> None:
        hup.set()

    previous = {s: signal.signal(s, h) for s, h in
                ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop), (signal.SIGHUP, on_hup))}
    try:
        try:
            exporter.start()
        except ConfigError as err:
            _log(f"error: {err}")
            return 2
        try:
            server = serve(exporter, args.listen)
        except OSError as err:
            _log(f"error: --listen {args.listen}: {err.strerror or err}")
            return 1
        up = sum(m.up for m in exporter.modules.values())
        _log(f"serving {args.listen}: {up}/{len(exporter.modules)} module(s) up")
        try:
            while not stop.is_set():
                stop.wait(0.2)
                if hup.is_set():
                    hup.clear()
                    exporter.reload()
        finally:
            server.shutdown()
            server.server_close()
        _log("stopping: detaching every module")
        return 0
    finally:
        exporter.close()
        for s, h in previous.items():
            signal.signal(s, h)

"""tracefs: tracepoint ids and the legacy dynamic probe files.

Where tracefs is, and mounting it when it is missing, is
:func:`pybpf._sys.fs.tracefs_root`.

Dynamic probes (``uprobe_events``/``kprobe_events``) are the attach path of
kernels without the uprobe/kprobe PMU (before 4.17).  pybpf names its probes
``pybpf_<pid>_<n>`` in group ``pybpf`` and removes each when its link closes.
A process killed with SIGKILL cannot do that: before adding a probe, pybpf
removes the entries of its group whose process no longer exists (the pid is
in the name), as libbpf-based tools do.
"""

from __future__ import annotations

import errno as _errno
import itertools
import os
import re
import time

from pybpf._sys.fs import TRACEFS, tracefs_root
from pybpf.errors import LinkError, NotFoundError, SyscallError

__all__ = ["tracefs_root", "tracepoint_id", "add_dynamic_probe", "remove_dynamic_probe", "TRACEFS"]

_counter = itertools.count()
GROUP = "pybpf"
_OURS = re.compile(rf"^[pr]:{GROUP}/({GROUP}_(\d+)_\d+)\s", re.M)


def _valid_part(text: str, what: str) -> None:
    if not text or "/" in text or text in (".", "..") or "\0" in text:
        raise ValueError(f"invalid tracepoint {what} {text!r}")


def tracepoint_id(category: str, name: str) -> int:
    """The id of tracepoint ``category:name`` from ``events/<category>/<name>/id``.

    Raises NotFoundError, a FileNotFoundError (listing close names), when there is no such tracepoint.
    """
    _valid_part(category, "category")
    _valid_part(name, "name")
    root = tracefs_root()
    path = os.path.join(root, "events", category, name, "id")
    try:
        with open(path) as f:
            return int(f.read().strip())
    except FileNotFoundError:
        raise NotFoundError(_missing_tracepoint(root, category, name), filename=path) from None
    except PermissionError as exc:
        raise LinkError(f"cannot read {path}: {exc.strerror} (run as root)") from None


def _missing_tracepoint(root: str, category: str, name: str) -> str:
    import difflib

    events = os.path.join(root, "events")
    try:
        cats = sorted(d for d in os.listdir(events) if os.path.isdir(os.path.join(events, d)))
    except OSError:
        cats = []
    if category not in cats:
        close = difflib.get_close_matches(category, cats, n=5)
        return (f"no tracepoint category {category!r} in {events}"
                + (f"; did you mean {', '.join(close)}?" if close else ""))
    try:
        names = sorted(os.listdir(os.path.join(events, category)))
    except OSError:
        names = []
    close = difflib.get_close_matches(name, names, n=5)
    return (f"no tracepoint {category}:{name}"
            + (f"; did you mean {', '.join(close)}?" if close else ""))


def new_event_name(prefix: str = "pybpf") -> str:
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


def _append(path: str, text: str) -> None:
    """Write one command to a tracefs control file.

    Not ``open(path, "a")``: Python seeks to the end of a file opened for
    appending, and tracefs control files refuse the seek with EINVAL.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def add_dynamic_probe(kind: str, definition: str, event: str) -> int:
    """Write ``<p|r>:pybpf/<event> <definition>`` into ``<kind>_events``; return the event's id.

    ``kind`` is "uprobe" or "kprobe"; ``definition`` starts with the probe
    letter, e.g. ``"p /bin/bash:0x1234"``.
    """
    root = tracefs_root()
    letter, _, spec = definition.partition(" ")
    line = f"{letter}:{GROUP}/{event} {spec}\n"
    path = os.path.join(root, f"{kind}_events")
    remove_leftovers(kind)
    try:
        _append(path, line)
    except FileNotFoundError:
        raise LinkError(f"{path} does not exist: the kernel has no {kind} events (CONFIG_{kind.upper()}_EVENTS)") from None
    except OSError as exc:
        raise LinkError(f"adding {kind} event {line.strip()!r} failed: {exc.strerror}") from None
    try:
        return tracepoint_id(GROUP, event)
    except BaseException:
        remove_dynamic_probe(kind, event)
        raise


def remove_dynamic_probe(kind: str, event: str) -> None:
    """Remove a probe made by :func:`add_dynamic_probe` (retrying while the kernel still holds it)."""
    try:
        root = tracefs_root(mount=False)
    except SyscallError:
        return
    path = os.path.join(root, f"{kind}_events")
    for attempt in range(50):
        try:
            _append(path, f"-:{GROUP}/{event}\n")
            return
        except OSError as exc:
            if exc.errno == _errno.ENOENT:
                return
            if exc.errno != _errno.EBUSY or attempt == 49:
                return
            time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def remove_leftovers(kind: str) -> list[str]:
    """Remove the ``<kind>_events`` entries of pybpf processes that no longer exist; their names.

    Entries of live processes (this one included) are left alone.
    """
    try:
        path = os.path.join(tracefs_root(mount=False), f"{kind}_events")
        with open(path) as f:
            text = f.read()
    except (OSError, SyscallError):
        return []
    removed = []
    for event, pid in _OURS.findall(text):
        if not _alive(int(pid)):
            remove_dynamic_probe(kind, event)
            removed.append(event)
    if removed:
        import logging   # only when something was cleaned up

        logging.getLogger("pybpf").info("pybpf removed %d %s event(s) left by processes that no longer exist: %s",
                 len(removed), kind, ", ".join(removed))
    return removed

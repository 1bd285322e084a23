"""Session programs (libbpf 1.5): one program at the entry and the return of each call.

``uprobe.session`` (Linux 6.12) attaches through one uprobe_multi link with
``BPF_TRACE_UPROBE_SESSION``; ``kprobe.session`` (6.10) through a kprobe_multi
link with ``BPF_TRACE_KPROBE_SESSION``.  The program is attached as loaded:
never reloaded as a plain uprobe_multi clone (whose verifier would refuse
the session kfuncs).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import pybpf
from pybpf import features
from pybpf.errors import NotSupportedError
from pybpf.links import attach_all, fallback

from test_links_support import target

pytestmark = pytest.mark.root  # against the kernel: needs root

sys.path.insert(0, os.path.dirname(__file__))
from buildprogs import build  # noqa: E402

N, M = 7, 5


def _counts(obj: pybpf.Object) -> list[int]:
    values = dict(obj.maps["session_counts"].items())
    return [values[i] for i in range(16)]


def _session_object(tgid: int) -> pybpf.Object:
    try:
        return pybpf.load(build("link_session"), variables={"target_tgid": tgid})
    except NotSupportedError as exc:
        pytest.skip(f"NotSupportedError: session programs: {exc}")


def _run_waiting_target(binary, attach) -> pybpf.Object:
    """Start the target stopped, load the object for its pid and ``attach(obj)``, then let it call
    func_a N times and func_b M times; returns the object (the caller closes it)."""
    if not features.has("uprobe_session"):
        pytest.skip(f"NotSupportedError: uprobe_session: {features.reason('uprobe_session')}")
    proc = subprocess.Popen([str(binary), str(N), str(M), "wait"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        obj = _session_object(proc.pid)
        attach(obj)
        proc.communicate("go\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    return obj


def test_uprobe_session_counts_entries_and_returns():
    binary = target()

    def attach(obj: pybpf.Object) -> None:
        prog = obj.programs["on_usession"]
        link = prog.attach_uprobe_multi(binary, ["func_a", "func_b"], cookies=[1, 2])
        assert link.kind == "uprobe_session" and link.attached_program is prog
        assert fallback.live_clones(prog) == {}                  # not reloaded as a plain clone
        assert link.info().cookies == [1, 2] and not link.info().retprobe
        with pytest.raises(ValueError, match=r"retprobe=True.*uprobe.session"):
            prog.attach_uprobe_multi(binary, "func_c", retprobe=True)

    with _run_waiting_target(binary, attach) as obj:
        counts = _counts(obj)
    # cookie 1 (func_a): every entry has its return, which reads back the argument the entry saved.
    assert counts[4:8] == [N, N, N, sum(range(N))]
    # cookie 2 (func_b): the entry returns 1, so the kernel skips the return of each call.
    assert counts[8:12] == [M, 0, 0, 0]


def test_attach_all_attaches_a_session_program():
    binary = target()

    def attach(obj: pybpf.Object) -> None:
        prog = obj.programs["on_usession"]
        prog.section = f"uprobe.session/{binary}:func_a"
        links = attach_all({"s": prog, "k": obj.programs["on_ksession"]})
        assert set(links) == {"s"} and "kernel functions" in links.skipped["k"]

    with _run_waiting_target(binary, attach) as obj:
        assert _counts(obj)[0:4] == [N, N, N, sum(range(N))]   # cookie 0


def test_kprobe_session():
    with _session_object(os.getpid()) as obj:
        prog = obj.programs["on_ksession"]
        function = f"{pybpf._sys.kernel.syscall_prefix()}sys_getpid"
        if not features.has("kprobe_session"):
            with pytest.raises(NotSupportedError) as err:
                prog.attach_kprobe_multi(function)
            assert err.value.feature == "kprobe_session"
            assert features.reason("kprobe_session") in str(err.value)
            return
        with prog.attach_kprobe_multi(function, cookies=[1]) as link:
            assert link.kind == "kprobe_session"
            for _ in range(9):
                os.getpid()
        assert _counts(obj)[4:7] == [9, 9, 9]

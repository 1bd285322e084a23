"""The tracing tools, driven as a user drives them: ``python -m pybpf.cli <tool> ...`` in a subprocess.

Each test starts its own workload and checks the numbers the kernel produced:
exact call counts from tests/bin/cookie_target.c (func_a N times, func_b M
times), exact getppid counts, the argv of a command it runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pybpf.tools import session, syscalls
from pybpf.tools.session import NO_COOKIES_ENV
from test_links_support import run_target, target

pytestmark = pytest.mark.root  # against the kernel: needs root

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
MISSING_PID = "4194304"   # above the largest pid_max (2**22): never a process


def pybpf(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpf.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def start(*args: str, env: dict | None = None) -> subprocess.Popen:
    """Start a tool and wait until it says it is tracing (its first stderr line)."""
    proc = subprocess.Popen([sys.executable, "-m", "pybpf.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stderr.readline()
    if not line.startswith(("tracing", "counting", "timing", "attached")):
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"tool did not start: {line}{err}")
    return proc


def stop(proc: subprocess.Popen) -> str:
    """Ctrl-C the tool; it must detach, print what it collected and exit 0."""
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return out


def last_json(out: str) -> dict:
    """The tool's JSON document: the last line (a COMMAND's own output comes before it)."""
    return json.loads(out.splitlines()[-1])


def counts_of(doc: dict) -> dict[str, int]:
    return {f["function"]: f["count"] for f in doc["functions"]}


# -- funccount ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("no_cookies", [False, True], ids=["kernel", "no-cookie-fallback"])
def test_funccount_command_counts_exact_calls(no_cookies: bool) -> None:
    binary = target()
    env = dict(os.environ, **{NO_COOKIES_ENV: "1"}) if no_cookies else None
    res = pybpf("funccount", "--json", f"{binary}:func_*", "--", str(binary), "1234", "567", env=env)
    assert res.returncode == 0, res.stderr
    doc = last_json(res.stdout)
    assert counts_of(doc) == {"func_a": 1234, "func_b": 567, "func_c": 0}
    assert {f["target"] for f in doc["functions"]} == {os.path.realpath(binary)}
    assert doc["duration_s"] > 0
    if no_cookies:
        assert "a program clone per function" in res.stderr


def test_funccount_pid_counts_only_that_process_and_ctrl_c_prints_them() -> None:
    binary = target()
    victim = subprocess.Popen([str(binary), "300", "200", "wait"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        tracer = start("funccount", "-p", str(victim.pid), "--json", f"{binary}:func_a", f"{binary}:func_b")
        run_target(binary, 50, 70)           # the same functions in another process: not counted
        victim.communicate("go\n", timeout=30)
        doc = json.loads(stop(tracer))
    finally:
        victim.kill()
        victim.wait()
    assert counts_of(doc) == {"func_a": 300, "func_b": 200}


def test_funccount_intervals_add_up() -> None:
    binary = target()
    res = pybpf("funccount", "-i", "0.05", "--json", f"{binary}:func_a", "--", str(binary), "777", "0")
    assert res.returncode == 0, res.stderr
    docs = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(docs) >= 1
    assert sum(counts_of(d)["func_a"] for d in docs) == 777


def test_funccount_table() -> None:
    binary = target()
    res = pybpf("funccount", f"{binary}:func_*", "--", str(binary), "12", "3")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()[1:]     # after the command's own output line
    assert lines[0].split() == ["FUNCTION", "TARGET", "COUNT"]
    assert [line.split() for line in lines[1:3]] == [["func_a", str(binary), "12"], ["func_b", str(binary), "3"]]
    assert lines[0].index("COUNT") == lines[1].index("12")     # aligned columns
    assert lines[3] == "(1 more function not called)"


def test_funccount_main_job_without_arguments() -> None:
    res = pybpf("funccount")
    assert res.returncode == 0, res.stderr
    rows = {line.split()[0]: int(line.split()[-1]) for line in res.stdout.splitlines()[1:] if line[:1] != "("}
    assert rows["malloc"] > 0 and rows["free"] > 0 and rows["read"] > 0 and rows["opendir"] > 0
    assert "built-in workload" in res.stderr


# -- syscount ----------------------------------------------------------------------------------------

_GETPPID_WORKLOAD = """
import os, sys
sys.stdin.readline()
for _ in range({n}):
    os.getppid()
print("done", flush=True)
sys.stdin.readline()
"""


def traced_getppid(n: int, *tool_args: str) -> tuple[str, int]:
    """Start a process, then the tool (``{pid}`` in its arguments is the process's pid); the process
    calls getppid() ``n`` times; Ctrl-C the tool.  Returns (the tool's stdout, the pid)."""
    child = subprocess.Popen([sys.executable, "-c", _GETPPID_WORKLOAD.format(n=n)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        tracer = start(*(a.format(pid=child.pid) for a in tool_args))
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "done\n"
        out = stop(tracer)
        child.communicate("end\n", timeout=30)
    finally:
        child.kill()
        child.wait()
    return out, child.pid


@pytest.mark.parametrize("extra", [[], ["--latency"]], ids=["count", "latency"])
def test_syscount_pid_sees_exact_getppid_calls(extra: list[str]) -> None:
    n = 4321
    out, _ = traced_getppid(n, "syscount", "-p", "{pid}", "--json", *extra)
    rows = {r["syscall"]: r for r in json.loads(out)["syscalls"]}
    assert rows["getppid"]["count"] == n
    assert rows["getppid"]["nr"] == syscalls.number("getppid")
    if extra:
        assert rows["getppid"]["total_ns"] > 0


def test_syscount_by_process_table() -> None:
    res = pybpf("syscount", "--by-process", "-d", "0.3")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["PID", "COMM", "COUNT"]
    assert len(lines) > 1 and all(int(line.split()[-1]) > 0 for line in lines[1:])


# -- execsnoop ---------------------------------------------------------------------------------------

def test_execsnoop_reports_a_command_with_its_argv() -> None:
    tracer = start("execsnoop", "--json")
    subprocess.run(["/bin/echo", "pybpf-execsnoop", "two words", ""], check=True, capture_output=True)
    out = stop(tracer)
    events = [json.loads(line) for line in out.splitlines()]
    mine = [e for e in events if e["argv"][:2] == ["/bin/echo", "pybpf-execsnoop"]]
    assert len(mine) == 1, events
    assert mine[0]["argv"] == ["/bin/echo", "pybpf-execsnoop", "two words", ""]
    assert mine[0]["comm"] == "echo" and mine[0]["ret"] == 0 and mine[0]["ppid"] == os.getpid()


# -- funclatency -------------------------------------------------------------------------------------

def test_funclatency_counts_calls_and_writes_a_png(tmp_path) -> None:
    binary = target()
    png = tmp_path / "lat.png"
    try:
        import matplotlib  # noqa: F401
        plot = ["--plot", str(png)]
    except ImportError:   # the plot extra is not installed: the counts are still checked
        plot = []
    res = pybpf("funclatency", "--json", *plot, f"{binary}:func_a", f"{binary}:func_b", "--", str(binary),
                "300", "200")
    assert res.returncode == 0, res.stderr
    doc = last_json(res.stdout)
    assert counts_of(doc) == {"func_a": 300, "func_b": 200}
    for f in doc["functions"]:
        assert sum(f["buckets"].values()) == f["count"] and f["total_ns"] > 0
    if plot:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_funclatency_histogram_text() -> None:
    binary = target()
    res = pybpf("funclatency", f"{binary}:func_a", "--", str(binary), "64", "0")
    assert res.returncode == 0, res.stderr
    assert "func_a (" in res.stdout and ": 64 calls" in res.stdout
    bars = [line for line in res.stdout.splitlines() if "->" in line]
    assert sum(int(line.split(":")[1].split()[0]) for line in bars) == 64


# -- run / load --------------------------------------------------------------------------------------

_LANG_COUNTER = """
from pybpf.lang import Const, HashMap, tgid, tracepoint, u32, u64

TARGET_TGID = Const(u32, 0)
HITS = u64(0)
calls = HashMap(key=u32, value=u64, max_entries=64)


@tracepoint("syscalls/sys_enter_getppid")
def count_getppid(ctx) -> int:
    global HITS
    if TARGET_TGID != 0 and tgid() != TARGET_TGID:
        return 0
    calls[tgid()] += 1
    HITS += 1
    return 0
"""


@pytest.mark.parametrize("kind", ["run", "load"])
def test_run_and_load_attach_and_print_maps_and_globals(kind: str, tmp_path) -> None:
    if kind == "run":
        path = tmp_path / "counter.py"
        path.write_text(_LANG_COUNTER)
        target_var, hits_var = "TARGET_TGID", "HITS"
    else:
        from buildprogs import build
        path = build("tools_getppid")
        target_var, hits_var = "target_tgid", "hits"
    n = 321
    out, pid = traced_getppid(n, kind, str(path), "--var", f"{target_var}={{pid}}", "--json")
    doc = json.loads(out)
    assert doc["maps"]["calls"] == [{"key": pid, "value": n}]
    assert doc["variables"][hits_var] == n and doc["variables"][target_var] == pid


_LANG_HELLO = """
from pybpf.lang import Const, tgid, tracepoint, u32

TARGET_TGID = Const(u32, 0)


@tracepoint("syscalls/sys_enter_getppid")
def hello(ctx) -> int:
    if tgid() == TARGET_TGID:
        print("getppid from", tgid())
    return 0
"""


def test_run_prints_the_programs_print_lines(tmp_path) -> None:
    # 300 lines: Ctrl-C comes while they are still being printed, and none may be lost
    path = tmp_path / "hello.py"
    path.write_text(_LANG_HELLO)
    out, pid = traced_getppid(300, "run", str(path), "--var", "TARGET_TGID={pid}")
    lines = out.splitlines()
    assert lines[:lines.index("globals:")] == [f"getppid from {pid}"] * 300


def test_interrupts_held_defers_ctrl_c_to_the_end_of_the_block() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with session.interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            reached.append("end of block")
    assert reached == ["end of block"]


def test_run_prints_tables_after_duration(tmp_path) -> None:
    path = tmp_path / "counter.py"
    path.write_text(_LANG_COUNTER)
    res = pybpf("run", str(path), "-d", "0.2", "--var", f"TARGET_TGID={os.getpid()}")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[:2] == ["calls:", "  KEY  VALUE"]
    assert "attached count_getppid (tracepoint)" in res.stderr


# -- bad input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, named", [
    (["funccount", "libnosuchlibrary:malloc"], "libnosuchlibrary"),
    (["funccount", "c:mallocc"], "malloc"),
    (["funccount", "c:zzqqxx*"], "zzqqxx"),
    (["funccount", "malloc"], "c:malloc"),
    (["funccount", "/no/such/binary:main"], "/no/such/binary"),
    (["funccount", "-p", MISSING_PID, "c:malloc"], MISSING_PID),
    (["funccount", "c:malloc", "--", "/no/such/command"], "/no/such/command"),
    (["funccount", "c:malloc", "--", "pybpf-no-such-command"], "pybpf-no-such-command"),
    (["funclatency", "c:mallocc"], "malloc"),
    (["syscount", "-p", MISSING_PID], MISSING_PID),
    (["run", "/no/such/file.py"], "/no/such/file.py"),
    (["load", "/no/such/file.o"], "/no/such/file.o"),
], ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_bad_input_is_one_line_and_exit_2(args: list[str], named: str) -> None:
    res = pybpf(*args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("pybpf: error: ")
    assert named in res.stderr and "Traceback" not in res.stderr


def test_closest_names_are_suggested() -> None:
    res = pybpf("funccount", "c:mallocc")
    assert "closest: malloc" in res.stderr


@pytest.mark.parametrize("args", [["funccount", "c:malloc"], ["funccount"], ["syscount"], ["execsnoop"],
                                  ["funclatency", "c:malloc"]], ids=" ".join)
def test_not_root_names_the_missing_capabilities(args: list[str]) -> None:
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    res = subprocess.run([python, "-m", "pybpf.cli", *args], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=SRC), user=65534, group=65534, extra_groups=[], cwd="/")
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert res.stderr.count("\n") == 1 and "CAP_BPF and CAP_PERFMON" in res.stderr
    assert "Traceback" not in res.stderr

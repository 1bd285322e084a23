"""ObjectSpec.load(): every program loaded and run in the kernel, maps typed, variables mmapped."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import threading
import time

import pytest

import pybpf
from buildprogs import build
import pybpf._sys.syscall as sc
from pybpf._sys import Cmd, MapFlag, PerfEventAttr, PerfType
from pybpf._sys import perf as _perf

pytestmark = pytest.mark.root  # against the kernel: needs root

XDP_ABORTED, XDP_DROP, XDP_PASS = 0, 1, 2
SK_BUFF_SIZE = 192


def spec_of(name: str) -> pybpf.ObjectSpec:
    return pybpf.ObjectSpec.from_file(build(name))


def skb_ctx(mark: int) -> bytes:
    ctx = bytearray(SK_BUFF_SIZE)
    struct.pack_into("<I", ctx, 8, mark)  # struct __sk_buff.mark
    return bytes(ctx)


# -- global data ---------------------------------------------------------------------------


def test_const_volatile_rodata_changes_behaviour():
    with spec_of("obj_globals").load() as obj:
        prog = obj.programs["filter"]
        assert prog.test_run(b"\0" * 64).retval == XDP_PASS
        baseline = prog.info().xlated_size
    spec = spec_of("obj_globals")
    spec.variables["min_len"].value = 100
    with spec.load() as obj:
        prog = obj.programs["filter"]
        assert prog.test_run(b"\0" * 64).retval == XDP_ABORTED
        assert prog.test_run(b"\0" * 128).retval == XDP_PASS
        assert dict(obj.maps["counters"].items()) == {0: 128, 1: -1}
    # variables= on load, without touching the spec
    spec = spec_of("obj_globals")
    with spec.load(variables={"drop_all": 1}) as obj:
        assert obj.programs["filter"].test_run(b"\0" * 64).retval == XDP_DROP
        # drop_all is known at load: the verifier pruned everything after it
        assert obj.programs["filter"].info().xlated_size < baseline
    assert spec.variables["drop_all"].value == 0


def test_data_and_bss_read_and_written_through_mmap():
    with pybpf.load(build("obj_globals")) as obj:
        v = obj.variables
        prog = obj.programs["filter"]
        assert (v["seen"].value, v["increment"].value, v["label"].value) == (0, 1, b"pybpf")
        prog.test_run(b"\0" * 64)
        assert (v["seen"].value, v["last_len"].value, v["custom_hits"].value) == (1, 64, 101)
        v["increment"].value = 10           # the program sees it on its next run
        v["label"].value = b"changed"
        prog.test_run(b"\0" * 80)
        assert v["seen"].value == 11 and v["static_calls"].value == 2
        ev = obj.maps["events"][80]
        assert (ev.pid, ev.len, ev.total, ev.tag) == (7, 80, 11, b"changed")
        v["seen"].value = 1000              # .bss is writable too
        prog.test_run(b"\0" * 64)
        assert v["seen"].value == 1010
        # the map reads the same memory, typed by its DATASEC
        bss = obj.maps[".bss"][0]
        assert (bss.seen, bss.last_len) == (1010, 64)
        with pytest.raises(pybpf.BPFError, match="read-only"):
            v["min_len"].value = 5
        assert obj.maps[".rodata"].frozen
        assert obj.maps[".rodata"].name == "obj_glob.rodata"


def test_btf_and_legacy_maps_typed():
    with pybpf.load(build("obj_globals")) as obj:
        obj.programs["filter"].test_run(b"\0" * 100)
        assert obj.btf_error is None and obj.btf_fd is not None
        ev = obj.maps["events"][100]
        assert ev.len == 100 and ev.tag == b"pybpf"
        assert obj.maps["counters"][0] == 100
        legacy = dict(obj.maps["legacy_counts"].items())
        assert struct.unpack("<Q", legacy[0])[0] == 1   # no BTF: raw bytes
        info = obj.maps["events"].info()
        assert info.btf_id and info.btf_value_type_id


def test_programs_subset_and_unknown_name():
    spec = spec_of("obj_calls")
    with spec.load(programs=["calls_main"]) as obj:
        assert list(obj.programs) == ["calls_main"]
        assert obj.programs["calls_main"].test_run(b"\0" * 64).retval == 17
    with spec.load(programs=["not_autoloaded"]) as obj:
        assert obj.programs["not_autoloaded"].test_run(b"\0" * 64).retval == 5
    with pytest.raises(pybpf.ObjectError, match="no program 'nope'"):
        spec.load(programs=["nope"])


# -- calls -----------------------------------------------------------------------------------


def test_bpf_to_bpf_calls_and_bpf_loop_callback():
    with spec_of("obj_calls").load() as obj:
        assert "not_autoloaded" not in obj.programs
        main = obj.programs["calls_main"]
        assert main.section == "xdp" and main.spec.name == "calls_main"
        assert main.test_run(b"\0" * 64).retval == 17
        assert obj.programs["calls_loop"].test_run(b"\0" * 64).retval == 49


def test_tail_calls_through_prog_array_values():
    with spec_of("obj_calls").load() as obj:
        entry = obj.programs["tail_entry"]
        assert entry.test_run(b"\0" * 64, ctx=skb_ctx(1)).retval == 12
        assert entry.test_run(b"\0" * 64, ctx=skb_ctx(2)).retval == 22
        assert entry.test_run(b"\0" * 64, ctx=skb_ctx(3)).retval == 99
        assert obj.maps["jumps"][1] == obj.programs["tail_target"].id


def test_map_in_map_values():
    with spec_of("obj_calls").load() as obj:
        obj.maps["inner_b"][0] = 4242
        assert obj.programs["map_in_map"].test_run(b"\0" * 64).retval == 4242
        assert obj.maps["outer"][3] == obj.maps["inner_b"].id
        assert obj.maps["outer"][0] == obj.maps["inner_a"].id


def test_tail_target_not_loaded_is_noted():
    with spec_of("obj_calls").load(programs=["tail_entry"]) as obj:
        assert obj.programs["tail_entry"].test_run(b"\0" * 64, ctx=skb_ctx(1)).retval == 99
        assert any("tail_target" in n for n in obj.notes)


# -- errors ----------------------------------------------------------------------------------


def test_verifier_error_names_the_c_line():
    with pytest.raises(pybpf.VerifierError) as info:
        spec_of("obj_verifier").load()
    err = info.value
    assert str(err).startswith("object 'obj_verifier.bpf.o': program 'null_deref': load: ")
    assert err.source_line is not None
    assert "obj_verifier.bpf.c:23" in err.source_line and "missing NULL check" in err.source_line
    assert "map_value_or_null" in err.summary


def test_failed_load_closes_everything():
    # the conftest fixture fails the test if the maps created before the failure leak
    with pytest.raises(pybpf.VerifierError):
        spec_of("obj_verifier").load()


def test_a_closed_object_is_freed_without_the_garbage_collector():
    import gc
    import weakref

    obj = spec_of("obj_many").load()
    var, prog = obj.variables["total"], obj.programs["prog_0"]
    assert prog.object is obj
    obj.close()
    assert prog.object is None
    with pytest.raises(pybpf.BPFError, match="variable 'total': the object is closed"):
        var.value
    with pytest.raises(pybpf.BPFError, match="the object is closed"):
        var.value = 1
    ref = weakref.ref(obj)
    enabled = gc.isenabled()
    gc.disable()
    try:
        del obj
        assert ref() is None   # no reference cycle kept it: freed when dropped
    finally:
        if enabled:
            gc.enable()


def test_btf_refused_falls_back_without_btf(monkeypatch):
    from pybpf._sys import commands

    def refuse(data, *, log_size=0, log_level=0):
        return None, "magic: refused for the test", errno.EINVAL

    monkeypatch.setattr(commands, "btf_load", refuse)
    with spec_of("obj_calls").load(programs=["calls_main", "tail_entry", "tail_target"]) as obj:
        assert obj.btf_fd is None and "EINVAL" in obj.btf_error
        assert obj.programs["calls_main"].test_run(b"\0" * 64).retval == 17
        assert obj.programs["calls_main"].info().btf_id == 0
        assert obj.programs["tail_entry"].test_run(b"\0" * 64, ctx=skb_ctx(1)).retval == 12
    # callbacks cannot be verified without func_info: the error says why BTF is missing
    with pytest.raises(pybpf.VerifierError, match="func_info") as info:
        spec_of("obj_calls").load(programs=["calls_loop"])
    assert "BTF was not loaded" in str(info.value)


# -- tracepoints -------------------------------------------------------------------------------


def _tracepoint_id(group: str, name: str) -> int:
    for root in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        try:
            with open(f"{root}/events/{group}/{name}/id") as f:
                return int(f.read())
        except OSError:
            continue
    raise pybpf.NotSupportedError("tracefs", detail=f"no events/{group}/{name}/id")


def _perf_event_open(attr: PerfEventAttr, pid: int, cpu: int) -> int:
    """perf_event_open(2) through a private libc handle (the tracepoint attach is not under test here)."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr.size = ctypes.sizeof(PerfEventAttr)
    fd = libc.syscall(ctypes.c_long(298), ctypes.c_void_p(ctypes.addressof(attr)), ctypes.c_int(pid),
                      ctypes.c_int(cpu), ctypes.c_int(-1), ctypes.c_ulong(8))  # PERF_FLAG_FD_CLOEXEC
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def test_tracepoint_attached_through_perf_event_counts_getpid():
    spec = spec_of("obj_tracepoint")
    spec.variables["target_tgid"].value = os.getpid()
    with spec.load() as obj:
        assert obj.programs["raw_enter"].test_run(ctx=bytes(16)).retval == 0
        prog = obj.programs["count_getpid"]
        attr = PerfEventAttr(type=PerfType.TRACEPOINT, config=_tracepoint_id("syscalls", "sys_enter_getpid"),
                             sample_period=1, wakeup_events=1)
        event = _perf_event_open(attr, pid=-1, cpu=0)
        try:
            _perf.set_bpf(event, prog.fd)
            _perf.enable(event)
            libc = ctypes.CDLL(None, use_errno=True)
            os.sched_setaffinity(0, {0})
            try:
                for _ in range(5):
                    libc.getpid()       # os.getpid() may be cached by libc; call the syscall
                    libc.syscall(39)    # __NR_getpid on x86_64
            finally:
                os.sched_setaffinity(0, range(os.cpu_count() or 1))
            _perf.disable(event)
        finally:
            os.close(event)
        assert obj.variables["calls"].value >= 5


# -- ksyms --------------------------------------------------------------------------------------


def test_ksym_variables_need_kallsyms_all():
    """Typed ksyms load where the kernel can find variables (CONFIG_KALLSYMS_ALL), else NotSupported."""
    spec = spec_of("obj_ksym")
    try:
        obj = spec.load()
    except pybpf.NotSupportedError as exc:
        assert "CONFIG_KALLSYMS_ALL" in str(exc) and "runqueues" in str(exc)
        pytest.skip(f"NotSupportedError: {exc}")
    with obj:
        cpu = obj.programs["this_cpu"].test_run(ctx=bytes(8)).retval
        assert 0 <= cpu < (os.cpu_count() or 1)
        assert obj.variables["active_addr"].value != 0


def test_mmapable_flags_reach_the_kernel():
    with pybpf.load(build("obj_globals")) as obj:
        assert obj.maps[".bss"].info().flags & MapFlag.MMAPABLE
        assert obj.maps[".rodata"].info().flags & MapFlag.RDONLY_PROG


# -- the fast path: linked bytes, few system calls ---------------------------------------------


def test_edited_instructions_are_what_gets_loaded():
    """A parsed program keeps linked bytes; once its instructions are read (and changed), they are loaded."""
    from pybpf.asm.instruction import Instruction

    spec = spec_of("obj_many")
    with spec.load(programs=["prog_3"]) as obj:
        assert obj.programs["prog_3"].test_run(b"\0" * 64).retval == XDP_PASS
    prog = spec.programs["prog_3"]
    insns = prog.instructions
    assert insns[0].symbol == "prog_3" and any(i.reference == "hits" for i in insns)
    insns[:] = [Instruction(0xB7, 0, 0, 0, XDP_DROP), Instruction(0x95)]  # r0 = XDP_DROP; exit
    prog.func_info, prog.line_info = [], []
    with spec.load(programs=["prog_3"]) as obj:
        assert obj.programs["prog_3"].test_run(b"\0" * 64).retval == XDP_DROP


def test_a_warm_load_makes_only_the_system_calls_it_needs(monkeypatch):
    """No BPF_OBJ_GET_INFO_BY_FD after creating a map, no write of an all-zero .rodata/.bss."""
    import pybpf._sys.syscall as sc
    from pybpf._sys import Cmd

    path = build("obj_many")
    pybpf.ObjectSpec.from_file(path).load().close()  # feature probes are made once per process
    calls: list[int] = []
    real = sc._syscall4

    def counting(nr, cmd, addr, size):
        if int(getattr(nr, "value", nr)) == sc.NR_BPF:
            calls.append(int(getattr(cmd, "value", cmd)))
        return real(nr, cmd, addr, size)

    monkeypatch.setattr(sc, "_syscall4", counting)
    with pybpf.ObjectSpec.from_file(path).load() as obj:
        assert len(obj.programs) == 10
    assert sorted(Cmd(c).name for c in calls) == sorted(
        ["BTF_LOAD"] + ["MAP_CREATE"] * 3 + ["MAP_FREEZE"] + ["PROG_LOAD"] * 10)


def test_a_missing_name_says_what_the_object_has() -> None:
    """obj.maps["typo"] is a NameNotFoundError (also a KeyError) with a suggestion, in the spec and
    in the loaded object; .get and `in` behave as on a dict."""
    spec = pybpf.ObjectSpec.from_file(build("tools_getppid"))
    with pytest.raises(pybpf.NameNotFoundError, match=r"object 'tools_getppid.bpf.o': no map 'cals'; "
                                                        r"did you mean 'calls'\?"):
        spec.maps["cals"]
    with spec.load() as obj:
        with pytest.raises(KeyError) as info:
            obj.programs["nothing_like_it"]
        assert str(info.value) == ("object 'tools_getppid.bpf.o': no program 'nothing_like_it' "
                                   "(it has 'count_getppid')")
        assert obj.maps.get("typo") is None and "calls" in obj.maps
        obj.variables["hits"].value      # the real names still work


# -- the BPF_PROG_LOADs of an object, on two threads ---------------------------------------


def _prog_load_threads(monkeypatch) -> list[int]:
    """Record the thread of every BPF_PROG_LOAD from now on; the list it returns fills as they happen."""
    threads: list[int] = []
    real = sc._syscall4

    def recording(nr, cmd, addr, size):
        if int(getattr(cmd, "value", cmd)) == Cmd.PROG_LOAD:
            threads.append(threading.get_ident())
        return real(nr, cmd, addr, size)

    monkeypatch.setattr(sc, "_syscall4", recording)
    return threads


def test_programs_load_on_two_threads_and_keep_their_order(monkeypatch):
    """With more than one CPU, a helper thread takes the next BPF_PROG_LOAD whenever it is free (here
    the main thread's loads are slowed down, so that it surely takes some); every fd still belongs to
    the program of that name (the kernel's name for it says so)."""
    monkeypatch.setattr(sc, "_cpus", lambda: 2)
    threads = _prog_load_threads(monkeypatch)
    recording, main = sc._syscall4, threading.get_ident()

    def slow_on_main(nr, cmd, addr, size):
        if threading.get_ident() == main:
            time.sleep(0.005)
        return recording(nr, cmd, addr, size)

    monkeypatch.setattr(sc, "_syscall4", slow_on_main)
    with spec_of("obj_many").load() as obj:
        names = {name: prog.info().name for name, prog in obj.programs.items()}
    assert names == {f"prog_{n}": f"prog_{n}" for n in range(10)}
    assert len(threads) == 10 and len(set(threads)) == 2
    assert 1 <= threads.count(main) < 10


def test_one_cpu_loads_on_one_thread(monkeypatch):
    monkeypatch.setattr(sc, "_cpus", lambda: 1)
    threads = _prog_load_threads(monkeypatch)
    with spec_of("obj_many").load() as obj:
        assert len(obj.programs) == 10
    assert threads == [threading.get_ident()] * 10


def test_an_interrupted_load_closes_what_both_threads_loaded(monkeypatch):
    """Ctrl-C on the main thread in the middle of its loads: the helper's fds are waited for and closed
    with the rest (the conftest fixture fails the test on any leaked fd)."""
    monkeypatch.setattr(sc, "_cpus", lambda: 2)
    real = sc._syscall4
    main = threading.get_ident()
    seen = []

    def interrupted(nr, cmd, addr, size):
        if int(getattr(cmd, "value", cmd)) == Cmd.PROG_LOAD and threading.get_ident() == main:
            if len(seen) == 2:
                raise KeyboardInterrupt   # between two loads, as a signal handler would
            seen.append(real(nr, cmd, addr, size))
            return seen[-1]
        if int(getattr(cmd, "value", cmd)) == Cmd.PROG_LOAD:
            time.sleep(0.002)   # the helper is slow: the main thread surely makes three
        return real(nr, cmd, addr, size)

    spec = spec_of("obj_many")
    monkeypatch.setattr(sc, "_syscall4", interrupted)
    with pytest.raises(KeyboardInterrupt):
        spec.load()
    assert len(seen) == 2 and min(seen) >= 0
    monkeypatch.setattr(sc, "_syscall4", real)
    with spec.load() as obj:   # the helper is free again
        assert len(obj.programs) == 10


def test_loads_from_two_threads_at_once_and_after_fork():
    """Two user threads loading at the same time share the helper (one of them goes without it);
    a forked child, which has no helper thread, starts its own."""
    path = build("obj_many")
    errors: list[BaseException] = []

    def load_five() -> None:
        try:
            for _ in range(5):
                with pybpf.ObjectSpec.from_file(path).load() as obj:
                    assert obj.programs["prog_9"].info().name == "prog_9"
        except BaseException as exc:   # reported below, on the test's thread
            errors.append(exc)

    workers = [threading.Thread(target=load_five) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []

    pid = os.fork()
    if pid == 0:
        try:
            with pybpf.ObjectSpec.from_file(path).load() as obj:
                ok = [obj.programs[f"prog_{n}"].info().name for n in range(10)] == [f"prog_{n}" for n in range(10)]
            os._exit(0 if ok else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_what_the_helper_meets_is_raised_by_the_caller_and_the_helper_lives_on(monkeypatch):
    """An exception on the helper thread (here ctypes refusing an argument) is raised by the caller
    once the calls are done, and the helper takes the next object's loads as before."""
    monkeypatch.setattr(sc, "_cpus", lambda: 2)
    main = threading.get_ident()

    def refused_on_the_helper(nr, cmd, addr, size):
        if threading.get_ident() != main:
            raise ctypes.ArgumentError("argument 3: wrong type")
        time.sleep(0.005)   # the helper surely takes one
        return -1

    monkeypatch.setattr(sc, "_syscall4", refused_on_the_helper)
    out: list[int] = []
    with pytest.raises(ctypes.ArgumentError, match="wrong type"):
        sc.bpf_each(5, [None] * 4, 8, out)
    assert len(out) == 4
    monkeypatch.undo()
    monkeypatch.setattr(sc, "_cpus", lambda: 2)
    threads = _prog_load_threads(monkeypatch)
    with spec_of("obj_many").load() as obj:
        assert len(obj.programs) == 10 and len(threads) == 10

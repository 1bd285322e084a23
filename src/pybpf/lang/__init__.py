"""pybpf.lang: write BPF programs in (typed) Python, compiled by pybpf itself.

No clang, LLVM or kernel headers: :func:`compile` turns decorated Python
functions into an :class:`~pybpf.ObjectSpec` that the usual loader loads
(maps, global data, BTF, line info and verifier errors with the Python
line all work as for clang objects).  The same functions run in CPython
with the same integer semantics, so probe logic is unit-testable.

Example::

    import pybpf
    from pybpf.lang import uprobe, HashMap, u64

    counts = HashMap(key=u64, value=u64, max_entries=1024)

    @uprobe
    def generic_probe(ctx) -> int:
        cookie = ctx.cookie
        if cookie == 1:
            counts[cookie] += 1
        elif cookie == 2:
            counts[cookie] += 10
        return 0

    obj = pybpf.compile(generic_probe).load()
    prog = obj.programs["generic_probe"]
    with prog.attach_uprobe(binary, "func_a", cookie=1), prog.attach_uprobe(binary, "func_b", cookie=2):
        ...

The language reference is docs/lang.md.
"""

from pybpf.lang.ctx import FakeCtx
from pybpf.lang.helpers import (
    boot_ns, get_current_comm, gid, ktime_get_ns, pid, pid_tgid, prandom_u32, probe_read_kernel,
    probe_read_kernel_str, probe_read_user, probe_read_user_str, send_signal, smp_processor_id, tgid, uid,
    uid_gid,
)
from pybpf.lang.kernel_types import current_task
from pybpf.lang.log import LogReader
from pybpf.lang.loops import bpf_loop
from pybpf.lang.packet import be16, be32, be64, load_u8, load_u16, load_u32, load_u64, pkt
from pybpf.lang.maps import (
    Array, HashMap, LpmTrie, LruHash, LruPerCpuHash, PerCpuArray, PerCpuHash, PerfEventArray, ProgArray, Queue,
    RingBuf, StackTrace,
)
from pybpf.lang.programs import BPFProgram, bpf_function, decorators
from pybpf.lang.types import Const, Struct, i8, i16, i32, i64, u8, u16, u32, u64

# One decorator per section kind of the hook registry (uprobe, uprobe_multi, tracepoint, xdp, ...).
DECORATORS = decorators()
globals().update(DECORATORS)

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = 0, 1, 2, 3, 4
TC_ACT_OK, TC_ACT_SHOT = 0, 2


def compile(*programs, name=None, license="GPL"):
    """Compile decorated functions (or all programs of modules) into one :class:`~pybpf.ObjectSpec`.

    Every map, global variable and function the programs reference is
    included.  Raises :class:`~pybpf.CompileError` (file:line:col and a hint)
    for Python that has no BPF translation, before anything reaches the kernel.
    """
    from pybpf.lang.compiler import compile_programs

    return compile_programs(*programs, name=name, license=license)


__all__ = [
    "compile", "FakeCtx", "Const", "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64",
    "HashMap", "LruHash", "PerCpuHash", "LruPerCpuHash", "Array", "PerCpuArray", "RingBuf",
    "LpmTrie", "PerfEventArray", "StackTrace", "Queue", "ProgArray",
    "BPFProgram", "DECORATORS", "bpf_function", "bpf_loop",
    "pid_tgid", "tgid", "pid", "uid_gid", "uid", "gid", "ktime_get_ns", "boot_ns", "smp_processor_id",
    "prandom_u32", "send_signal", "get_current_comm", "probe_read_user", "probe_read_kernel",
    "probe_read_user_str", "probe_read_kernel_str", "Struct", "LogReader", "current_task",
    "load_u8", "load_u16", "load_u32", "load_u64", "be16", "be32", "be64", "pkt",
    "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT", "TC_ACT_OK", "TC_ACT_SHOT",
    *DECORATORS,
]

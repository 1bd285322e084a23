"""A 50-line pybpf.lang probe for bench/lang_bench.py (compile time; compile + load against BCC)."""

from pybpf.lang import (
    Const, HashMap, RingBuf, Struct, get_current_comm, ktime_get_ns, pid_tgid, tracepoint, u8, u32, u64,
)

calls = HashMap(key=u64, value=u64, max_entries=512)
per_process = HashMap(key=u32, value=u64, max_entries=4096)
classes = HashMap(key=u32, value=u64, max_entries=8)
events = RingBuf(1 << 16)
TARGET = Const(u32, 0)
TOTAL = u64(0)


class Event(Struct):
    pid: u32
    nr: u32
    ts: u64
    comm: u8[16]


@tracepoint("raw_syscalls/sys_enter")
def probe(ctx) -> int:
    global TOTAL
    pt = pid_tgid()
    proc = u32(pt >> 32)
    if TARGET != 0 and proc != TARGET:
        return 0
    nr = ctx.id
    if nr >= 512:
        return 0
    calls[nr] += 1
    per_process[proc] += 1
    TOTAL += 1
    match nr:
        case 0 | 1 | 17 | 18:
            cls = u32(1)
        case 2 | 3 | 257:
            cls = u32(2)
        case 9 | 10 | 11:
            cls = u32(3)
        case _:
            cls = u32(0)
    classes[cls] += 1
    if nr == 59 or nr == 322:
        e = events.reserve(Event)
        if not e:
            return 0
        e.pid = proc
        e.nr = u32(nr)
        e.ts = ktime_get_ns()
        get_current_comm(e.comm)
        events.submit(e)
    return 0

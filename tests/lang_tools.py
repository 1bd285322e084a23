"""Small tools written in pybpf.lang for the run-for-real tests (module level, so the source is readable)."""

from pybpf.lang import (
    XDP_PASS, Array, Const, HashMap, RingBuf, Struct, be16, get_current_comm, ktime_get_ns, load_u8, load_u16,
    tgid, tracepoint, u8, u32, u64, xdp,
)

TARGET_TGID = Const(u32, 0)

# -- a syscall counter: raw_syscalls/sys_enter, per syscall number, for one process -----------------

syscalls = HashMap(key=u64, value=u64, max_entries=512)


@tracepoint("raw_syscalls/sys_enter")
def count_syscalls(ctx) -> int:
    if tgid() != TARGET_TGID:
        return 0
    syscalls[ctx.id] += 1
    return 0


# -- a ring-buffer event tool: one event per getppid() of the process ---------------------------------

class Event(Struct):
    pid: u32
    nr: u32
    ts: u64
    comm: u8[16]


events = RingBuf(1 << 14)


@tracepoint("raw_syscalls/sys_enter")
def snoop(ctx) -> int:
    if tgid() != TARGET_TGID or ctx.id != GETPPID:
        return 0
    e = events.reserve(Event)
    if not e:
        return 0
    e.pid = tgid()
    e.nr = ctx.id
    e.ts = ktime_get_ns()
    get_current_comm(e.comm)
    events.submit(e)
    return 0


GETPPID = 110

# -- an XDP packet counter: UDP/IPv4 to one port ----------------------------------------------------

PORT = 40404
packets = Array(u64, 2)


@xdp
def count_udp(ctx) -> int:
    data = ctx.data
    if data + 42 > ctx.data_end:
        return XDP_PASS
    if load_u16(data + 12) != be16(0x0800) or load_u8(data + 23) != 17:
        packets[1] += 1
        return XDP_PASS
    if load_u16(data + 36) == be16(PORT):
        packets[0] += 1
    return XDP_PASS

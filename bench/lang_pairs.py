"""The pybpf.lang programs of bench/lang_bench.py; bench/progs/lang_pairs.bpf.c has their C twins."""

from pybpf.lang import (
    XDP_PASS, Array, Const, HashMap, PerCpuArray, RingBuf, Struct, be16, current_task, get_current_comm,
    ktime_get_ns, load_u8, load_u16, pid_tgid, syscall, tgid, tracepoint, u8, u32, u64, uprobe, uretprobe,
    xdp,
)

counts = HashMap(key=u64, value=u64, max_entries=1024)
syscalls = HashMap(key=u64, value=u64, max_entries=1024)
starts = HashMap(key=u64, value=u64, max_entries=10240)
hist = Array(u64, 64)
packets = Array(u64, 2)
percpu = PerCpuArray(u64, 1)
family = HashMap(key=u32, value=u64, max_entries=16)
classes = HashMap(key=u32, value=u64, max_entries=16)
events = RingBuf(1 << 14)

TARGET_TGID = Const(u32, 0)
MASK = u64(1)
MASK2 = u64(0)
OUT = u64(0)


class Event(Struct):
    pid: u32
    nr: u32
    ts: u64
    comm: u8[16]


@uprobe
def generic_probe(ctx) -> int:
    cookie = ctx.cookie
    if cookie == 1:
        counts[cookie] += 1
    elif cookie == 2:
        counts[cookie] += 10
    return 0


@tracepoint("syscalls/sys_enter_getppid")
def myapp(ctx) -> int:
    global MASK, MASK2
    if tgid() != TARGET_TGID:
        return 0
    MASK += 1
    MASK2 += 1
    return 0


@tracepoint("raw_syscalls/sys_enter")
def count_syscalls(ctx) -> int:
    if tgid() != TARGET_TGID:
        return 0
    syscalls[ctx.id] += 1
    return 0


@tracepoint("raw_syscalls/sys_enter")
def snoop(ctx) -> int:
    if tgid() != TARGET_TGID or ctx.id != 110:
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


@xdp
def count_udp(ctx) -> int:
    data = ctx.data
    if data + 42 > ctx.data_end:
        return XDP_PASS
    if load_u16(data + 12) != be16(0x0800) or load_u8(data + 23) != 17:
        packets[1] += 1
        return XDP_PASS
    if load_u16(data + 36) == be16(40404):
        packets[0] += 1
    return XDP_PASS


@tracepoint("syscalls/sys_enter_getppid")
def task_family(ctx) -> int:
    if tgid() != TARGET_TGID:
        return 0
    task = current_task()
    family[0] = task.tgid
    family[1] = task.real_parent.tgid
    return 0


@uprobe
def lat_entry(ctx) -> int:
    starts[pid_tgid()] = ktime_get_ns()
    return 0


@uretprobe
def lat_exit(ctx) -> int:
    key = pid_tgid()
    start = starts.get(key, 0)
    if start == 0:
        return 0
    delta = ktime_get_ns() - start
    del starts[key]
    slot = u32(0)
    for i in range(63):
        if delta <= 1:
            break
        delta = delta >> 1
        slot += 1
    hist[slot] += 1
    return 0


@syscall
def arith(ctx) -> int:
    global OUT
    a = ctx.arg(0)
    b = ctx.arg(1)
    c = u32(a) * 3 + u32(b)
    d = a // 7 - (b >> 3)
    e = (a ^ b) & 0xFF00FF00FF
    if a > b:
        e += c
    else:
        e -= d
    OUT = e + (c << 5) + a % 13
    return 0


@tracepoint("syscalls/sys_enter_getppid")
def percpu_count(ctx) -> int:
    percpu[0] += 1
    return 0


@tracepoint("raw_syscalls/sys_enter")
def classify(ctx) -> int:
    match ctx.id:
        case 0 | 1 | 17 | 18:
            cls = u32(1)
        case 2 | 3 | 257:
            cls = u32(2)
        case 9 | 11 | 10:
            cls = u32(3)
        case _:
            cls = u32(0)
    classes[cls] += 1
    return 0

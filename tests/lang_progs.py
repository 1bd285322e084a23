"""Programs written in pybpf.lang, shared by the tests of the language (imported, so their source is readable)."""

from pybpf.lang import Const, HashMap, tgid, tracepoint, u32, u64, uprobe

counts = HashMap(key=u64, value=u64, max_entries=1024)


@uprobe
def generic_probe(ctx) -> int:
    cookie = ctx.cookie
    if cookie == 1:
        counts[cookie] += 1
    elif cookie == 2:
        counts[cookie] += 10
    return 0


MASK = u64(1)        # .data
MASK2 = u64(0)       # .bss
LIMIT = Const(u64, 100)
TARGET_TGID = Const(u32, 0)


@tracepoint("syscalls/sys_enter_getppid")
def myapp(ctx) -> int:
    global MASK, MASK2
    if tgid() != TARGET_TGID:
        return 0
    MASK += 1        # an atomic add: exact across CPUs
    MASK2 += 1
    return 0


over_limit = HashMap(key=u32, value=u64, max_entries=16)


@tracepoint("syscalls/sys_enter_getppid")
def limited(ctx) -> int:
    if tgid() != TARGET_TGID:
        return 0
    if MASK2 >= LIMIT:
        over_limit[ctx.__syscall_nr] += 1
    return 0

"""Cookies on kernels without cookies: one clone of the program per cookie.

``bpf_get_attach_cookie()`` (helper 174) arrived with BPF cookies in Linux
5.15 (perf event links; tracing and raw tracepoint cookies came later).  On a
kernel without them pybpf still honours ``cookie=``: it loads a *clone* of
the program in which every ``call bpf_get_attach_cookie`` is replaced by the
constant, and attaches the clone instead.  The program then reads the same
value it would have read from the kernel.

The rewrite::

    call bpf_get_attach_cookie    →   r0 = <cookie>          (1 slot, mov64 r0, imm32)
                                  or  r0 = <cookie> ll       (2 slots, ld_imm64)

A cookie that fits a sign-extended 32-bit immediate keeps the program's
length.  A larger one needs ``ld_imm64``, one slot longer than the call, so
every jump, bpf-to-bpf call and callback address (``ld_imm64`` of a
subprogram) that crosses the insertion is moved, and so are the
``insn_off`` of the BTF func_info/line_info records and the line table.

The same machinery *retypes* a program: a program loaded for
``BPF_TRACE_UPROBE_MULTI`` cannot be attached to a single uprobe's perf
event and the other way round, so when the hook needs the other kind,
pybpf loads a clone with the expected attach type it needs.

Cost: every clone is one more verification and one more program in the
kernel (its maps are shared: they are the same map fds).  Clones are cached
per (program, cookie, attach type) while a link uses them: attaching the
same cookie twice verifies once; the clone is closed with its last link.

The fallback is on by default (``fallback=True`` on every attach method);
``fallback=False`` raises :class:`pybpf.NotSupportedError` instead.
Kernels with cookies never clone for a cookie.

Note: on such a kernel a program calling ``bpf_get_attach_cookie`` cannot
be *loaded* at all (the helper is unknown), so the loader must load it with
the call rewritten to ``r0 = 0`` (:func:`rewrite_cookie_calls`) while
keeping the original instructions for the clones.
"""

from __future__ import annotations

import struct
from _thread import RLock   # threading.RLock itself, without importing threading
import weakref

from pybpf._record import Record
from pybpf.asm.cookie import COOKIE_HELPER, calls_cookie_helper
from pybpf.errors import ArgumentError, BPFError, NotSupportedError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["rewrite_cookie_calls", "calls_cookie_helper", "Lease", "acquire", "prepare", "Prepared",
           "clear_cache", "clone_count", "KEEP"]

_CALL, _LD_IMM64, _MOV64_IMM = 0x85, 0x18, 0xB7
_GOTOL, _GOTOX = 0x06, 0x0D
_U64 = 1 << 64


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()
"""Sentinel: keep the program's expected attach type."""


def _instructions(insns: Any) -> list:
    from pybpf.asm.instruction import Instruction, decode_all

    if isinstance(insns, (bytes, bytearray, memoryview)):
        return decode_all(bytes(insns))
    return [Instruction(i.code, i.dst, i.src, i.off, i.imm, i.symbol, i.reference, i.source) for i in insns]


def _is_cookie_call(insn: Any) -> bool:
    return insn.code == _CALL and insn.src == 0 and insn.imm == COOKIE_HELPER


def _fits_imm32(cookie: int) -> int | None:
    """The imm32 whose sign extension is ``cookie`` (as a u64), or None."""
    value = cookie % _U64
    if value < (1 << 31):
        return value
    if value >= _U64 - (1 << 31):
        return value - _U64
    return None


class Rewrite(Record):
    """The result of :func:`rewrite_cookie_calls`.

    ``insns`` is the new program; ``new_index(i)`` maps an old slot index to
    the new one (identity when nothing was inserted); ``sites`` lists the
    old indices of the rewritten calls.
    """

    __slots__ = ("insns", "sites", "inserted")

    def __init__(self, insns: list, sites: list[int], inserted: list[int]) -> None:
        self.insns = insns
        self.sites = sites
        self.inserted = inserted  # old indices where one slot was inserted (sorted)

    def new_index(self, old: int) -> int:
        import bisect

        return old + bisect.bisect_left(self.inserted, old)


def rewrite_cookie_calls(insns: Any, cookie: int) -> Rewrite:
    """Replace every ``call bpf_get_attach_cookie`` with ``r0 = cookie``.

    ``cookie`` is taken as a u64 (negative values wrap).  Raises
    BPFError when a moved jump no longer fits its offset field, or the
    program uses indirect jumps (``gotox``), whose tables cannot be moved.
    """
    from pybpf.asm.instruction import Instruction

    if not isinstance(cookie, int):
        raise TypeError(f"a cookie is an int, not {type(cookie).__name__}")
    if not -(1 << 63) <= cookie < _U64:
        raise ArgumentError(f"cookie {cookie:#x} is out of range (a u64, or an s64 taken as its u64: -2**63..2**64-1)")
    old = _instructions(insns)
    sites = [i for i, insn in enumerate(old) if _is_cookie_call(insn)]
    imm = _fits_imm32(cookie)
    if imm is not None or not sites:
        out = list(old)
        for i in sites:
            src = old[i]
            out[i] = Instruction(_MOV64_IMM, 0, 0, 0, imm if imm is not None else 0, src.symbol, None, src.source)
        return Rewrite(out, sites, [])
    # ld_imm64: one slot more per site; move every relative reference across the sites.
    if any(insn.code == _GOTOX for insn in old):
        raise BPFError("cannot insert instructions into a program with indirect jumps (gotox)")
    value = cookie % _U64
    lo, hi = value & 0xFFFFFFFF, value >> 32
    lo = lo - (1 << 32) if lo & 0x80000000 else lo
    hi = hi - (1 << 32) if hi & 0x80000000 else hi
    rw = Rewrite([], sites, list(sites))
    site_set = set(sites)
    out: list = []
    i = 0
    n = len(old)
    while i < n:
        insn = old[i]
        if i in site_set:
            out.append(Instruction(_LD_IMM64, 0, 0, 0, lo, insn.symbol, None, insn.source))
            out.append(Instruction(0, 0, 0, 0, hi))
            i += 1
            continue
        new = Instruction(insn.code, insn.dst, insn.src, insn.off, insn.imm, insn.symbol, insn.reference, insn.source)
        if insn.is_jump or insn.is_pseudo_call or insn.is_pseudo_func:
            target = insn.jump_target(i)
            delta = rw.new_index(target) - (rw.new_index(i) + 1)
            if insn.is_jump and insn.code != _GOTOL:
                if not -(1 << 15) <= delta < (1 << 15):
                    raise BPFError(f"instruction {i}: the jump no longer fits 16 bits after inserting "
                                   f"the 64-bit cookie constant")
                new.off = delta
            else:
                new.imm = delta
        out.append(new)
        if insn.is_ld_imm64 and i + 1 < n:
            second = old[i + 1]
            out.append(Instruction(second.code, second.dst, second.src, second.off, second.imm,
                                   second.symbol, second.reference, second.source))
            i += 2
            continue
        i += 1
    rw.insns = out
    return rw


def _shift_records(records: bytes | None, rec_size: int, rw: Rewrite) -> bytes | None:
    """Move the ``insn_off`` (first u32) of func_info/line_info records."""
    if not records or not rw.inserted:
        return records
    buf = bytearray(records)
    for off in range(0, len(buf) - rec_size + 1, rec_size):
        (insn_off,) = struct.unpack_from("<I", buf, off)
        struct.pack_into("<I", buf, off, rw.new_index(insn_off))
    return bytes(buf)


def _clone_overrides(program: Any, rw: Rewrite | None) -> dict[str, Any]:
    if rw is None or not rw.inserted:
        return {}
    opts = getattr(program, "load_options", None) or {}
    out: dict[str, Any] = {}
    for kind in ("func_info", "line_info"):
        rec = opts.get(kind)
        if rec:
            out[kind] = _shift_records(rec, opts.get(f"{kind}_rec_size") or (8 if kind == "func_info" else 16), rw)
    table = opts.get("line_table")
    if table:
        out["line_table"] = {rw.new_index(k): v for k, v in table.items()}
    return out


# -- the clone cache ----------------------------------------------------------------------

class _Entry:
    __slots__ = ("clone", "refs")

    def __init__(self, clone: Any) -> None:
        self.clone = clone
        self.refs = 0


_lock = RLock()
_cache: "weakref.WeakKeyDictionary[Any, dict[tuple, _Entry]]" = weakref.WeakKeyDictionary()
_clones_made = 0


class Lease:
    """A use of a program or of a cached clone; :meth:`release` when the link using it closes."""

    __slots__ = ("program", "_owner", "_key", "__weakref__")

    def __init__(self, program: Any, owner: Any = None, key: tuple | None = None) -> None:
        self.program = program
        self._owner = weakref.ref(owner) if owner is not None else None
        self._key = key

    @property
    def is_clone(self) -> bool:
        return self._key is not None

    def release(self) -> None:
        key, self._key = self._key, None
        if key is None:
            return
        owner = self._owner() if self._owner is not None else None
        with _lock:
            entries = _cache.get(owner) if owner is not None else None
            entry = entries.get(key) if entries is not None else None
            if entry is None:
                return
            entry.refs -= 1
            if entry.refs > 0:
                return
            del entries[key]  # type: ignore[union-attr]
        entry.clone.close()


def _eat_key(value: Any) -> int:
    return int(value or 0)


def acquire(program: Any, *, cookie: int | None = None, expected_attach_type: Any = KEEP) -> Lease:
    """The program itself, or a cached clone with the cookie constant and/or another attach type.

    ``cookie=None`` leaves ``bpf_get_attach_cookie`` calls alone.
    """
    global _clones_made
    current = getattr(program, "expected_attach_type", None)
    want = current if expected_attach_type is KEEP else expected_attach_type
    retype = _eat_key(want) != _eat_key(current)
    rewrite = cookie is not None and calls_cookie_helper(getattr(program, "insns", None))
    if not retype and not rewrite:
        return Lease(program)
    key = (None if not rewrite else cookie % _U64, _eat_key(want))
    with _lock:
        entries = _cache.setdefault(program, {})
        entry = entries.get(key)
        if entry is not None and not getattr(entry.clone, "closed", False):
            entry.refs += 1
            return Lease(entry.clone, program, key)
    insns = getattr(program, "insns", None)
    if insns is None or not hasattr(program, "clone"):
        raise NotSupportedError(
            "bpf_cookie" if rewrite else "attach type change", "5.15" if rewrite else None,
            f"{getattr(program, '_label', 'the program')} was not loaded by pybpf, so it cannot be cloned "
            + ("with the cookie as a constant" if rewrite else "with another expected attach type"))
    rw = rewrite_cookie_calls(insns, cookie) if rewrite else None
    overrides = _clone_overrides(program, rw)
    if retype:
        overrides["expected_attach_type"] = want
    try:
        clone = program.clone(rw.insns if rw is not None else None, **overrides)
    except BPFError as exc:
        what = f"cookie {cookie:#x}" if rewrite else "attach type"
        raise exc.add_context(f"clone for {what}") from None
    with _lock:
        _clones_made += 1
        entries = _cache.setdefault(program, {})
        entry = entries.get(key)
        if entry is None or getattr(entry.clone, "closed", False):
            entry = entries[key] = _Entry(clone)
        else:
            clone.close()  # another thread made the same clone first
        entry.refs += 1
        return Lease(entry.clone, program, key)


class Prepared(Record):
    """What to attach: ``program`` (original or clone), the ``cookie`` to give the kernel, the ``lease``."""

    __slots__ = ("program", "cookie", "lease", "cloned_for_cookie")

    def __init__(self, program: Any, cookie: int, lease: Lease, cloned_for_cookie: bool = False) -> None:
        self.program = program
        self.cookie = cookie
        self.lease = lease
        self.cloned_for_cookie = cloned_for_cookie


def prepare(program: Any, cookie: int | None, *, kernel_cookies: bool, fallback: bool = True,
            expected_attach_type: Any = KEEP, feature: str = "bpf_cookie", min_kernel: str = "5.15") -> Prepared:
    """Decide how to honour ``cookie`` for one attachment.

    ``kernel_cookies``: whether the kernel can carry a cookie on this kind of
    link.  Without it a non-zero cookie is compiled into a clone (if the
    program reads it at all), or NotSupportedError when ``fallback`` is off.
    """
    value = 0 if cookie is None else cookie
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"cookie must be an int, not {type(cookie).__name__}")
    if not -(1 << 63) <= value < _U64:
        raise ArgumentError(f"cookie {value:#x} is out of range (a u64, or an s64 taken as its u64: -2**63..2**64-1)")
    value %= _U64
    if value == 0 or kernel_cookies:
        lease = acquire(program, expected_attach_type=expected_attach_type)
        return Prepared(lease.program, value if kernel_cookies else 0, lease)
    if not fallback:
        raise NotSupportedError(feature, min_kernel,
                                "fallback=False: pass fallback=True to load a clone of the program per cookie")
    lease = acquire(program, cookie=value, expected_attach_type=expected_attach_type)
    return Prepared(lease.program, 0, lease, cloned_for_cookie=lease.is_clone)


def clear_cache() -> None:
    """Close every cached clone that no link uses (links keep theirs)."""
    with _lock:
        for entries in list(_cache.values()):
            for key, entry in list(entries.items()):
                if entry.refs <= 0:
                    del entries[key]
                    entry.clone.close()


def clone_count() -> int:
    """How many clones were loaded since start (for tests and benchmarks)."""
    return _clones_made


def live_clones(program: Any) -> dict[tuple, Any]:
    """The cached clones of ``program`` now in use, by (cookie, attach type)."""
    with _lock:
        return {k: e.clone for k, e in _cache.get(program, {}).items()}


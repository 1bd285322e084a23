"""Kernel types by name, read with CO-RE relocations (``task = current_task(); task.real_parent.tgid``).

``current_task()`` is ``bpf_get_current_task()`` (Linux 4.8): the address of
the current ``struct task_struct``, typed :class:`KPtr`.  A member of a
kernel struct is found by name in the running kernel's BTF
(/sys/kernel/btf/vmlinux) at compile time; each access compiles to::

    r = task; r += offsetof(task_struct, real_parent)    # CO-RE: FIELD_BYTE_OFFSET
    bpf_probe_read_kernel(&tmp, 8, r)                     # Linux 5.5
    real_parent = tmp

(as libbpf's ``BPF_CORE_READ`` does).  The offset instruction carries a CO-RE
relocation against a local copy of the struct (the members the program
uses) written into the object's BTF, so the loader's CO-RE engine moves it
to the offset of the kernel the object is loaded on.  Members that are
structs are addresses (no read), arrays too (``probe_read_kernel_str(buf,
task.comm)``); integers and pointers are read.

In CPython, ``current_task()`` returns a stand-in for the calling process
(``tgid``, ``pid``, ``real_parent.tgid``, ``comm`` from /proc).
"""

from __future__ import annotations

import ast
import os
import threading
from typing import Any

from pybpf._sys.uapi import HelperID
from pybpf.asm import opcodes as op
from pybpf.btf.ext import CoreRelocKind
from pybpf.lang.aggregates import Mem
from pybpf.lang.emit import Imm
from pybpf.lang.types import INT_TYPES, u64

__all__ = ["KPtr", "KernelMixin", "current_task", "kernel_member"]


class KPtr:
    """The address of a kernel ``struct <name>`` (a u64 in registers)."""

    __slots__ = ("name",)
    _cache: dict[str, "KPtr"] = {}
    bits = 64
    signed = False

    def __new__(cls, name: str) -> "KPtr":
        found = cls._cache.get(name)
        if found is None:
            found = cls._cache[name] = object.__new__(cls)
            found.name = name
        return found

    @property
    def __name__(self) -> str:
        return f"struct {self.name} *"


def _kernel_struct(name: str) -> Any:
    from pybpf.btf.kernel import kernel_spec
    from pybpf.btf.types import BTFKind

    t = kernel_spec().find(name, BTFKind.STRUCT)
    if t is None:
        raise LookupError(f"the kernel's BTF has no struct {name}")
    return t


class Bitfield:
    """Where a bitfield member is read: ``byte_offset``/``byte_size`` of the smallest aligned
    integer holding it, and the shifts that leave its value in a u64 (libbpf's
    BPF_CORE_READ_BITFIELD_PROBED, little-endian)."""

    __slots__ = ("byte_offset", "byte_size", "lshift", "rshift", "signed")

    def __init__(self, bit_offset: int, bits: int, size: int, signed: bool) -> None:
        size = size if size in (1, 2, 4, 8) else 8
        offset = bit_offset // 8 // size * size
        while bit_offset + bits - 8 * offset > 8 * size and size < 8:
            size *= 2
            offset = bit_offset // 8 // size * size
        self.byte_offset, self.byte_size, self.signed = offset, size, signed
        self.lshift = 64 - (bit_offset + bits - 8 * offset)
        self.rshift = 64 - bits


def kernel_member(struct: str, member: str) -> tuple[int | Bitfield, Any, Any]:
    """(byte offset, pybpf.lang type, kernel member type) of ``struct.member`` in vmlinux BTF.

    The lang type is an integer type, a :class:`KPtr` (pointer to a struct, or an
    embedded struct's address) or ``u64`` (an array's address).  For a bitfield the offset
    is a :class:`Bitfield` and the type u64 (i64 when signed).
    """
    from pybpf.btf.types import Array, Composite, Enum, Int, Pointer
    from pybpf.btf.typeinfo import resolve

    st = _kernel_struct(struct)
    found = st.find_member(member) if member else None   # also inside anonymous structs and unions
    if found is not None:
        bit_offset, m = found
        t = resolve(m.type)
        if m.bitfield_size or bit_offset % 8:
            if not isinstance(t, (Int, Enum)):
                raise LookupError(f"struct {struct}.{member} is a bitfield of a type pybpf.lang cannot read")
            signed = bool(getattr(t, "signed", False))
            bits = m.bitfield_size or 8 * t.size
            return Bitfield(bit_offset, bits, t.size, signed), INT_TYPES["i64" if signed else "u64"], m.type
        off = bit_offset // 8
        if isinstance(t, Int) or isinstance(t, Enum):
            signed = bool(getattr(t, "signed", False))
            size = t.size if t.size in (1, 2, 4, 8) else 8
            return off, INT_TYPES[f"{'i' if signed else 'u'}{8 * size}"], m.type
        if isinstance(t, Pointer):
            target = resolve(t.target)
            if isinstance(target, Composite) and target.name:
                return off, KPtr(target.name), m.type
            return off, u64, m.type
        if isinstance(t, Composite) and t.name:
            return off, KPtr(t.name), m.type
        if isinstance(t, Array):
            return off, u64, m.type
        raise LookupError(f"struct {struct}.{member} has a type pybpf.lang cannot read ({type(t).__name__})")
    names = ", ".join(m.name for m in st.members if m.name)
    raise LookupError(f"struct {struct} has no member '{member}' (members: {names[:300]}...)")


class KernelMixin:
    """Member reads of kernel structs, for the FunctionCompiler."""

    def kernel_attr(self, node: ast.Attribute, base: Any) -> Any:
        struct = base.type.name
        try:
            off, t, ktype = kernel_member(struct, node.attr)
        except LookupError as exc:
            raise self.error(node, str(exc)) from None
        except (OSError, ValueError) as exc:
            raise self.error(node, f"the kernel's BTF is needed for struct {struct}: {exc}") from None
        addr = self.owned(base, prefer=3)      # where probe_read_kernel wants its source
        if isinstance(off, Bitfield):
            return self._read_bitfield(struct, node.attr, off, addr, t)
        insn = self.emit(op.ALU64 | op.ADD | op.K, addr.reg, imm=off)
        self.core_relocs.append((insn, struct, node.attr, CoreRelocKind.FIELD_BYTE_OFFSET))
        from pybpf.btf.types import Array, Pointer
        from pybpf.btf.typeinfo import resolve

        member = resolve(ktype)
        if isinstance(t, KPtr) and not isinstance(member, Pointer):
            addr.type = t             # an embedded struct: its address
            return addr
        if isinstance(member, Array):
            addr.type = u64           # an array: its address (for probe_read_kernel_str)
            return addr
        size = t.bits // 8
        slot = self.stack_alloc(8)
        self.call_with(HelperID.probe_read_kernel, [Mem(10, slot, u64), Imm(size, int), addr])
        res = self.alloc(t)
        self.load(res.reg, 10, slot, size)
        if t.signed and size < 8:
            self.normalize(res.reg, t)
        return res

    def _read_bitfield(self, struct: str, member: str, bf: Bitfield, addr: Any, t: Any) -> Any:
        """Read the bytes holding the bitfield into a zeroed u64, then shift its bits into place;
        the offset, size and both shifts carry CO-RE relocations."""
        def relocated(insn: Any, kind: CoreRelocKind) -> None:
            self.core_relocs.append((insn, struct, member, kind))

        offset = self.emit(op.ALU64 | op.ADD | op.K, addr.reg, imm=bf.byte_offset)
        relocated(offset, CoreRelocKind.FIELD_BYTE_OFFSET)
        slot = self.stack_alloc(8)
        self.store_imm(10, slot, 0, 8)
        size = self.alloc(u64)
        relocated(self.emit(op.ALU64 | op.MOV | op.K, size.reg, imm=bf.byte_size), CoreRelocKind.FIELD_BYTE_SIZE)
        self.call_with(HelperID.probe_read_kernel, [Mem(10, slot, u64), size, addr])
        res = self.alloc(t)
        self.load(res.reg, 10, slot, 8)
        relocated(self.emit(op.ALU64 | op.LSH | op.K, res.reg, imm=bf.lshift), CoreRelocKind.FIELD_LSHIFT_U64)
        shift = op.ARSH if bf.signed else op.RSH
        relocated(self.emit(op.ALU64 | shift | op.K, res.reg, imm=bf.rshift), CoreRelocKind.FIELD_RSHIFT_U64)
        return res


# -- CPython stand-in ---------------------------------------------------------------------------------

class _Task:
    """What a program sees of a task, read from /proc (CPython runs)."""

    def __init__(self, pid: int, tid: int | None = None) -> None:
        self._pid = pid
        self._tid = tid if tid is not None else pid

    @property
    def tgid(self) -> Any:
        return INT_TYPES["i32"](self._pid)

    @property
    def pid(self) -> Any:
        return INT_TYPES["i32"](self._tid)

    @property
    def real_parent(self) -> "_Task":
        with open(f"/proc/{self._pid}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        return _Task(ppid)

    parent = real_parent

    @property
    def comm(self) -> bytes:
        with open(f"/proc/{self._pid}/task/{self._tid}/comm", "rb") as f:
            return f.read().rstrip(b"\n")[:15].ljust(16, b"\0")


def current_task() -> Any:
    """The current task (``bpf_get_current_task()``, Linux 4.8); members read with CO-RE."""
    return _Task(os.getpid(), threading.get_native_id())

"""Structs, fixed arrays and pointers in compiled code (a mixin of the FunctionCompiler).

An aggregate value is memory: :class:`Mem` is ``type`` at ``base + off``
where ``base`` is r10 (a stack buffer) or the register of a pointer local
(a ring-buffer reservation).  Integer fields are loaded when read; arrays
and structs stay addresses, which is what helpers taking buffers want.

Translations::

    e = Event()          zero the stack buffer of local e (8 bytes per store)
    e.pid = x            *(u32 *)(r10 - off + 0) = x
    e.comm               r10 - off + 8 (an address), e.g. for get_current_comm(e.comm)
    e.comm[3]            *(u8 *)(r10 - off + 11)          (constant indexes)
    p = events.reserve(Event)   r0 = bpf_ringbuf_reserve(&events, sizeof(Event), 0)
    if not p: return 0          the NULL check the verifier needs
    events.submit(p)            bpf_ringbuf_submit(p, 0)
"""

from __future__ import annotations

import ast
from typing import Any

from pybpf.asm import opcodes as op
from pybpf.lang.emit import Imm, Reg, Tmp, bits_signed
from pybpf.lang.types import ArrayType, Fixed, PtrType, Struct, sizeof

__all__ = ["AggregateMixin", "Mem", "is_aggregate"]


class Mem:
    """``type`` in memory at ``base`` (a register) + ``off``."""

    __slots__ = ("base", "off", "type")

    def __init__(self, base: int, off: int, type: Any) -> None:
        self.base = base
        self.off = off
        self.type = type


def is_aggregate(t: Any) -> bool:
    return isinstance(t, ArrayType) or (isinstance(t, type) and issubclass(t, Struct))


def _is_int(t: Any) -> bool:
    return t is int or t is bool or (isinstance(t, type) and issubclass(t, Fixed))


class AggregateMixin:
    """Needs the Emitter and FunctionCompiler methods (``expr``, ``error``, ``locals``)."""

    def local_mem(self, loc: Any) -> Mem:
        return Mem(10, loc.slot, loc.type)

    def zero_fill(self, mem: Mem) -> None:
        size = sizeof(mem.type)
        off = 0
        while off < size:
            step = 8 if size - off >= 8 and (mem.off + off) % 8 == 0 else (4 if size - off >= 4 else 1)
            self.store_imm(mem.base, mem.off + off, 0, step)
            off += step

    def member(self, base: Any, attr: str, node: ast.AST) -> Mem:
        """The field ``attr`` of a struct value (Mem) or of what a pointer register points at."""
        if isinstance(base, (Reg, Tmp)) and isinstance(base.type, PtrType):
            mem = Mem(self.reg_of(base), 0, base.type.target)
        elif isinstance(base, Mem):
            mem = base
        else:
            raise self.error(node, f"'.{attr}': only Struct values have fields")
        st = mem.type
        if not (isinstance(st, type) and issubclass(st, Struct)):
            raise self.error(node, f"'.{attr}': {getattr(st, '__name__', st)} is not a Struct")
        found = st._fields.get(attr)
        if found is None:
            raise self.error(node, f"{st.__name__} has no field '{attr}' (fields: {', '.join(st._fields)})")
        off, t = found
        return Mem(mem.base, mem.off + off, t)

    def element(self, mem: Mem, index: Any, node: ast.AST) -> Mem:
        t = mem.type
        if not isinstance(t, ArrayType):
            raise self.error(node, f"{getattr(t, '__name__', t)} cannot be indexed")
        if not isinstance(index, Imm):
            return self._variable_element(mem, index, node)
        if not 0 <= index.value < t.count:
            raise self.error(node, f"index {index.value} is outside {t.__name__}")
        return Mem(mem.base, mem.off + index.value * sizeof(t.elem), t.elem)

    def _variable_element(self, mem: Mem, index: Any, node: ast.AST) -> Mem:
        """``a[i]`` where ``i`` is the variable of an enclosing ``for i in range(...)`` whose values
        all index ``a``: the compiler has checked the bounds, and the verifier sees each iteration's
        index.  Anything else could be out of bounds, which CPython raises and BPF cannot."""
        t = mem.type
        sub = getattr(node, "slice", None)
        bounds = self.index_bounds.get(sub.id) if isinstance(sub, ast.Name) else None
        if bounds is None or not (0 <= bounds[0] and bounds[1] < t.count):
            self.release(index)
            raise self.error(node, "an array index must be a constant, or the variable of an enclosing "
                                   f"'for i in range(...)' whose values all fit {t.__name__} (and that the loop "
                                   "does not assign); else use an Array map")
        size = sizeof(t.elem)
        addr = self.alloc(int)
        self.mov_reg(addr.reg, self.reg_of(index))
        self.release(index)
        if size & (size - 1) == 0:
            if size > 1:
                self.emit(op.ALU64 | op.LSH | op.K, addr.reg, imm=size.bit_length() - 1)
        else:
            self.emit(op.ALU64 | op.MUL | op.K, addr.reg, imm=size)
        self.emit(op.ALU64 | op.ADD | op.X, addr.reg, mem.base)
        return Mem(addr.reg, mem.off, t.elem)

    def read_mem(self, mem: Mem) -> Any:
        """An integer field's value (loaded), or the aggregate itself."""
        if not _is_int(mem.type):
            return mem
        bits, signed = bits_signed(mem.type)
        res = self.alloc(mem.type)
        self.load(res.reg, mem.base, mem.off, bits // 8)
        if signed and bits < 64:
            self.normalize(res.reg, mem.type)
        else:
            self.defined(self.code[-1])
        return res

    def write_mem(self, mem: Mem, v: Any, node: ast.AST) -> None:
        t = mem.type
        if _is_int(t):
            if isinstance(v, Mem) or not _is_int(v.type):
                raise self.error(node, f"cannot store {getattr(v.type, '__name__', v.type)} in a "
                                       f"{getattr(t, '__name__', t)} field")
            self.store_as(mem.base, mem.off, v, t)
            return
        if isinstance(v, Mem) and v.type is t:
            self.copy_mem(mem, v)
            return
        raise self.error(node, f"cannot store {getattr(v.type, '__name__', v.type)} in "
                               f"{getattr(t, '__name__', t)}")

    def store_as(self, base: int, off: int, v: Any, t: Any) -> None:
        """Store ``v`` converted to integer type ``t`` at ``base + off``.  A register value is normalised
        (exact modulo 2**64), so its low bytes already are the value wrapped to ``t``'s width: the
        store itself converts, no instruction before it is needed."""
        size = bits_signed(t)[0] // 8
        if isinstance(v, Imm):
            v = self.convert(v, t)
            if -(1 << 31) <= v.value < (1 << 31):
                self.store_imm(base, off, v.value, size)
                return
        self.store(base, off, self.reg_of(v), size)
        self.release(v)

    def copy_mem(self, dst: Mem, src: Mem) -> None:
        size = sizeof(dst.type)
        tmp = self.alloc(int)
        off = 0
        while off < size:
            step = 8 if size - off >= 8 else (4 if size - off >= 4 else (2 if size - off >= 2 else 1))
            self.load(tmp.reg, src.base, src.off + off, step)
            self.store(dst.base, dst.off + off, tmp.reg, step)
            off += step
        self.release(tmp)

    def addr_into(self, reg: int, mem: Mem) -> None:
        self.mov_reg(reg, mem.base)
        if mem.off:
            self.emit(op.ALU64 | op.ADD | op.K, reg, imm=mem.off)

    def lvalue(self, node: ast.AST) -> Mem:
        """The memory an Attribute/Subscript target names."""
        if isinstance(node, ast.Attribute):
            return self.member(self.expr(node.value), node.attr, node)
        if isinstance(node, ast.Subscript):
            base = self.expr(node.value)
            if not isinstance(base, Mem):
                raise self.error(node, f"cannot assign to {ast.unparse(node)!r}")
            return self.element(base, self.expr(node.slice), node)
        raise self.error(node, f"cannot assign to {ast.unparse(node)!r}")

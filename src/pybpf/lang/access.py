"""Map and global-variable access for :class:`~pybpf.lang.codegen.FunctionCompiler`.

Translations (``m`` a hash map of u64 → u64, ``G`` a global)::

    m[k]          key on the stack; r0 = map_lookup_elem(&m, &key); value = r0 ? *r0 : 0
    m[k] = v      map_update_elem(&m, &key, &v, BPF_ANY)
    m[k] += n     p = lookup; if p: lock *p += n
                  else: if map_update_elem(&m, &key, &n, BPF_NOEXIST) != 0:  # another CPU won
                            p = lookup; if p: lock *p += n
    k in m        map_lookup_elem(&m, &key) != NULL
    del m[k]      map_delete_elem(&m, &key)
    m.get(k, d)   p = lookup; p ? *p : d
    G             r = &.data[off] (ld_imm64 map value); *r
    G += n        lock *(&.data[off]) += n        (an atomic add: exact across CPUs)

Per-CPU maps update without atomics; 8- and 16-bit values (which BPF
atomics do not cover) are updated with a plain read-modify-write.
"""

from __future__ import annotations

import ast
import sys
from typing import Any

from pybpf._sys.uapi import HelperID, MapType
from pybpf.asm import opcodes as op
from pybpf.lang.aggregates import Mem, is_aggregate
from pybpf.lang.emit import Imm, Reg, Tmp, bits_signed
from pybpf.lang.maps import MapDecl
from pybpf.lang.types import Fixed, PtrType, sizeof

__all__ = ["AccessMixin"]

# (map type, method) -> AccessMixin method compiling the call
_SPECIAL = {
    (MapType.PERF_EVENT_ARRAY, "output"): "perf_output",
    (MapType.STACK_TRACE, "get_stackid"): "stack_id",
    (MapType.QUEUE, "push"): "queue_push",
    (MapType.QUEUE, "pop"): "queue_pop",
    (MapType.PROG_ARRAY, "tail_call"): "tail_call",
}


class _MapRef:
    """A map's address as a helper argument (ld_imm64 of the map fd)."""

    __slots__ = ("name", "type")

    def __init__(self, name: str) -> None:
        self.name = name
        self.type = int

_ATOMIC = {"+": op.ADD, "|": op.OR, "&": op.AND, "^": op.XOR}
_PERCPU = {MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH}
_ARRAYS = {MapType.ARRAY, MapType.PERCPU_ARRAY}
BPF_ANY, BPF_NOEXIST = 0, 1
_SIZE = {1: op.B, 2: op.H, 4: op.W, 8: op.DW}


def _size(t: Any) -> int:
    return sizeof(t)


class AccessMixin:
    """Needs the Emitter and the FunctionCompiler's ``expr``/``static``/``error``/``unit``."""

    # -- maps ------------------------------------------------------------------------------------

    def _map(self, node: ast.AST) -> tuple[str, MapDecl]:
        obj = self.static(node, None)
        if not isinstance(obj, MapDecl):
            raise self.error(node, f"'{ast.unparse(node)}' is not a map declared at module level "
                                   "(e.g. counts = HashMap(key=u64, value=u64, max_entries=1024))")
        if not obj.keyed:
            raise self.error(node, f"'{ast.unparse(node)}' has no keys: use its output() method")
        return self.unit.map_name(obj, node, self), obj

    def ld_map(self, reg: int, name: str) -> None:
        self.ld_imm64(reg, 0, op.PSEUDO_MAP_FD, name, high=0)

    def _to_stack(self, v: Any, t: Any) -> int:
        """Store ``v`` (converted to ``t``) in a fresh stack buffer; its offset from r10."""
        size = _size(t)
        if is_aggregate(t):
            if not isinstance(v, Mem) or v.type is not t:
                raise self.error(self.src.node, f"expected a {getattr(t, '__name__', t)} value here")
            if v.base == 10:
                return v.off
            slot = self.stack_alloc(size)
            self.copy_mem(Mem(10, slot, t), v)
            return slot
        slot = self.stack_alloc(size)
        self.store_as(10, slot, v, t)
        return slot

    def _key(self, decl: MapDecl, node: ast.AST) -> int:
        v = self.expr(node)
        if is_aggregate(decl.key) != isinstance(v, Mem) or (not isinstance(v, Mem) and not _is_int(v.type)):
            raise self.error(node, f"this map's keys are {getattr(decl.key, '__name__', decl.key)}")
        if decl.map_type in _ARRAYS and not isinstance(v, (Imm, Mem)) and sys.byteorder == "little":
            return self._opaque_index(v)
        return self._to_stack(v, decl.key)

    def _opaque_index(self, v: Any) -> int:
        """An array index computed at run time, stored with an 8-byte store (its register is
        normalised, so the first 4 bytes are the index converted to the u32 key).

        Recent verifiers (Linux 6.18 here) drop the NULL result of an array lookup whose key is a
        constant spilled with exactly the key's size, and mark that constant precise to do so.  After
        a loop (``for ...: slot += 1`` then ``hist[slot] += 1``) every iteration's exit reaches the
        lookup with another precise index, so none is pruned: the lat_exit bench program needed 983
        verified instructions instead of 480.  A wider spill is not taken for a constant: the index
        stays imprecise, the NULL check stays (the code has it anyway), and the exits merge."""
        slot = self.stack_alloc(8)
        self.store(10, slot, self.reg_of(v), 8)
        self.release(v)
        return slot

    def _lookup(self, name: str, key_slot: int) -> Tmp:
        self.spill_live()
        self.ld_map(1, name)
        self.mov_reg(2, 10)
        self.emit(op.ALU64 | op.ADD | op.K, 2, imm=key_slot)
        self.call_helper(HelperID.map_lookup_elem)
        return self.take(0, int)

    def _load_value(self, ptr: Tmp, t: Any, default: Any = None) -> Any:
        """``*ptr`` (0 or ``default`` when ptr is NULL) as a temporary of type ``t``."""
        reg = self.reg_of(ptr)
        bits, signed = bits_signed(t)
        if default is None or (isinstance(default, Imm) and default.value == 0):
            self.emit(op.JMP | op.JEQ | op.K, reg, off=1 if not (signed and bits < 64) else 3)
            self.load(reg, reg, 0, bits // 8)
            if signed and bits < 64:
                self.normalize(reg, t)
            ptr.type = t
            return ptr
        missing, done = self.new_label("miss"), self.new_label("got")
        self.emit(op.JMP | op.JEQ | op.K, reg, reference=missing)
        self.load(reg, reg, 0, bits // 8)
        if signed and bits < 64:
            self.normalize(reg, t)
        self.jump(done)
        self.place(missing)
        self.into(self.convert(default, t), reg)
        self.place(done)
        ptr.type = t
        return ptr

    def subscript_load(self, node: ast.Subscript) -> Any:
        name, decl = self._map(node.value)
        slot = self._key(decl, node.slice)
        ptr = self._lookup(name, slot)
        if is_aggregate(decl.value):
            return self._copy_value(ptr, decl.value)
        return self._load_value(ptr, decl.value)

    def _copy_value(self, ptr: Tmp, t: Any) -> Mem:
        """A copy of the Struct (or array) value ``ptr`` points at on the stack; zeros when NULL."""
        out = Mem(10, self.stack_alloc(_size(t)), t)
        reg = self.reg_of(ptr)
        missing, done = self.new_label("miss"), self.new_label("got")
        self.emit(op.JMP | op.JEQ | op.K, reg, reference=missing)
        self.copy_mem(out, Mem(reg, 0, t))
        self.jump(done)
        self.place(missing)
        self.zero_fill(out)
        self.place(done)
        self.release(ptr)
        return out

    def contains(self, key: ast.AST, container: ast.AST) -> Any:
        name, decl = self._map(container)
        return self._lookup(name, self._key(decl, key))

    def map_call(self, node: ast.Call, decl: MapDecl, method: str) -> Any:
        name = self.unit.map_name(decl, node.func.value, self)
        special = _SPECIAL.get((decl.map_type, method))
        if special is not None:
            return getattr(self, special)(node, name, decl)
        if decl.map_type == MapType.RINGBUF:
            if method == "output":
                return self.ringbuf_output(node, name, decl)
            if method == "reserve":
                return self.ringbuf_reserve(node, name, decl)
            if method in ("submit", "discard"):
                return self.ringbuf_commit(node, method)
        if method == "lookup" and decl.keyed:
            # a pointer to the value (NULL when absent): check it, then read or update fields in place
            if len(node.args) != 1:
                raise self.error(node, "m.lookup(key) takes the key")
            slot = self._key(decl, node.args[0])
            ptr = self._lookup(name, slot)
            ptr.type = PtrType(decl.value)
            return ptr
        if method == "get" and decl.keyed:
            if not 1 <= len(node.args) <= 2:
                raise self.error(node, "m.get(key, default=0)")
            default = self.expr(node.args[1]) if len(node.args) == 2 else Imm(0, decl.value)
            if isinstance(default, Tmp):
                # keep it simple: the default must not be clobbered by the lookup
                self.spill_live()
            slot = self._key(decl, node.args[0])
            ptr = self._lookup(name, slot)
            return self._load_value(ptr, decl.value, default)
        raise self.error(node, f"{type(decl).__name__} has no method '{method}' in a BPF program")

    def ringbuf_output(self, node: ast.Call, name: str, decl: Any) -> Any:
        if len(node.args) != 1:
            raise self.error(node, "events.output(value) takes one value")
        v = self.expr(node.args[0])
        if isinstance(v, Mem):
            t = v.type
        elif _is_int(v.type):
            t = v.type if isinstance(v.type, type) and issubclass(v.type, Fixed) else _i64()
        else:
            raise self.error(node.args[0], "ring buffer records are integers or Struct values")
        self.unit.record_type(decl, t, node, self)
        slot = self._to_stack(v, t)
        self.spill_live()
        self.ld_map(1, name)
        self.mov_reg(2, 10)
        self.emit(op.ALU64 | op.ADD | op.K, 2, imm=slot)
        self.mov_imm(3, _size(t))
        self.mov_imm(4, 0)
        self.call_helper(HelperID.ringbuf_output)
        return self.take(0, _i64())

    def _ctx_arg(self, node: ast.AST) -> int:
        if not (isinstance(node, ast.Name) and node.id == self.ctx_name):
            raise self.error(node, "pass the program's context here (ctx)")
        return self.ctx_reg(node)

    def perf_output(self, node: ast.Call, name: str, decl: Any) -> Any:
        """events.output(v) on a PerfEventArray: perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &v, size)."""
        if len(node.args) != 1:
            raise self.error(node, "events.output(value) takes one value")
        v = self.expr(node.args[0])
        t = v.type if isinstance(v, Mem) else (v.type if isinstance(v.type, type) and issubclass(v.type, Fixed)
                                               else _i64())
        slot = self._to_stack(v, t)
        self.spill_live()
        self.mov_reg(1, self.ctx_reg(node))
        self.ld_map(2, name)
        self.mov_imm(3, 0xFFFFFFFF)
        self.mov_reg(4, 10)
        self.emit(op.ALU64 | op.ADD | op.K, 4, imm=slot)
        self.mov_imm(5, _size(t))
        self.call_helper(HelperID.perf_event_output)
        return self.take(0, _i64())

    def stack_id(self, node: ast.Call, name: str, decl: Any) -> Any:
        """stacks.get_stackid(ctx, flags=0): bpf_get_stackid(ctx, &stacks, flags)."""
        if not 1 <= len(node.args) <= 2:
            raise self.error(node, "stacks.get_stackid(ctx, flags=0)")
        ctx_reg = self._ctx_arg(node.args[0])
        flags = self.expr(node.args[1]) if len(node.args) == 2 else Imm(0, int)
        self.call_with(HelperID.get_stackid, [Reg(ctx_reg, int), _MapRef(name), flags])
        return self.take(0, _i64())

    def queue_push(self, node: ast.Call, name: str, decl: Any) -> Any:
        if len(node.args) != 1:
            raise self.error(node, "q.push(value)")
        slot = self._to_stack(self.expr(node.args[0]), decl.value)
        self.call_with(HelperID.map_push_elem, [_MapRef(name), Mem(10, slot, decl.value), Imm(0, int)])
        return self.take(0, _i64())

    def queue_pop(self, node: ast.Call, name: str, decl: Any) -> Any:
        if node.args:
            raise self.error(node, "q.pop() takes no argument")
        size = _size(decl.value)
        slot = self.stack_alloc(size)
        self.store_imm(10, slot, 0, size)
        self.call_with(HelperID.map_pop_elem, [_MapRef(name), Mem(10, slot, decl.value)])
        return self.read_mem(Mem(10, slot, decl.value))

    def tail_call(self, node: ast.Call, name: str, decl: Any) -> Any:
        """progs.tail_call(ctx, i): bpf_tail_call(ctx, &progs, i); returns only if slot i is empty."""
        if len(node.args) != 2:
            raise self.error(node, "progs.tail_call(ctx, index)")
        ctx_reg = self._ctx_arg(node.args[0])
        index = self.expr(node.args[1])
        self.call_with(HelperID.tail_call, [Reg(ctx_reg, int), _MapRef(name), index])
        return self.take(0, _i64())

    def ringbuf_reserve(self, node: ast.Call, name: str, decl: Any) -> Any:
        t = self.static(node.args[0], None) if len(node.args) == 1 else None
        if not is_aggregate(t) and not (isinstance(t, type) and issubclass(t, Fixed)):
            raise self.error(node, "events.reserve(T) takes the record type, e.g. events.reserve(Event)")
        self.unit.record_type(decl, t, node, self)
        self.spill_live()
        self.ld_map(1, name)
        self.mov_imm(2, _size(t))
        self.mov_imm(3, 0)
        self.call_helper(HelperID.ringbuf_reserve)
        return self.take(0, PtrType(t))

    def ringbuf_commit(self, node: ast.Call, method: str) -> Any:
        if len(node.args) != 1:
            raise self.error(node, f"events.{method}(record) takes the reserved record")
        v = self.expr(node.args[0])
        if not isinstance(v.type, PtrType):
            raise self.error(node.args[0], f"events.{method}() takes what events.reserve() returned")
        self.call_with(HelperID.ringbuf_submit if method == "submit" else HelperID.ringbuf_discard,
                       [v, Imm(0, int)])
        return Imm(0, int)

    def subscript_store(self, target: ast.Subscript, value: ast.AST) -> None:
        name, decl = self._map(target.value)
        v = self.expr(value)
        vslot = self._to_stack(v, decl.value)
        kslot = self._key(decl, target.slice)
        self._update(name, kslot, vslot, BPF_ANY)

    def _update(self, name: str, kslot: int, vslot: int, flags: int) -> None:
        self.spill_live()
        self.ld_map(1, name)
        self.mov_reg(2, 10)
        self.emit(op.ALU64 | op.ADD | op.K, 2, imm=kslot)
        self.mov_reg(3, 10)
        self.emit(op.ALU64 | op.ADD | op.K, 3, imm=vslot)
        self.mov_imm(4, flags)
        self.call_helper(HelperID.map_update_elem)

    def subscript_delete(self, target: ast.Subscript) -> None:
        name, decl = self._map(target.value)
        if decl.map_type in _ARRAYS:
            raise self.error(target, "array map entries cannot be deleted: set them to 0")
        kslot = self._key(decl, target.slice)
        self.ld_map(1, name)
        self.mov_reg(2, 10)
        self.emit(op.ALU64 | op.ADD | op.K, 2, imm=kslot)
        self.call_helper(HelperID.map_delete_elem)

    def subscript_augment(self, target: ast.Subscript, opname: str, value: ast.AST) -> None:
        name, decl = self._map(target.value)
        t = decl.value
        bits = bits_signed(t)[0]
        v = self.convert(self.expr(value), t)
        if opname == "-" and isinstance(v, Imm):
            v, opname = Imm(-v.value, t), "+"
        atomic = opname in _ATOMIC and bits >= 32 and decl.map_type not in _PERCPU
        small = isinstance(v, Imm) and -(1 << 31) <= v.value < (1 << 31)
        vslot = None if small else self._to_stack(v, t)
        kslot = self._key(decl, target.slice)
        ptr = self._lookup(name, kslot)
        insert, done = self.new_label("insert"), self.new_label("done")
        self.emit(op.JMP | op.JEQ | op.K, 0, reference=insert)
        self._modify(opname, t, atomic, v, vslot)
        self.jump(done)
        self.place(insert)
        self.release(ptr)           # NULL here: nothing to keep across the insert's call
        if decl.map_type not in _ARRAYS:      # an array index outside the array: nothing to do
            first = self.stack_alloc(bits // 8)   # what the new entry starts with: 0 op v
            if small:
                from pybpf.lang.types import binop

                self.store_imm(10, first, binop(opname, 0, v.value, t), bits // 8)  # type: ignore[union-attr]
            else:
                zero = Imm(0, t)
                val = Tmp(None, t)
                val.slot = vslot
                self.live.append(val)
                res = self.arith(opname, zero, val) if opname != "+" else val
                self.store(10, first, self.reg_of(res), bits // 8)
                self.release(res)
            self._update(name, kslot, first, BPF_NOEXIST)
            if atomic:   # another CPU inserted the key first: add to its entry
                self.emit(op.JMP | op.JEQ | op.K, 0, reference=done)
                self._lookup(name, kslot)
                self.emit(op.JMP | op.JEQ | op.K, 0, reference=done)
                self._modify(opname, t, atomic, v, vslot)
        self.place(done)
        self.free = list(self.scratch)
        self.live.clear()

    def _modify(self, opname: str, t: Any, atomic: bool, v: Any, vslot: int | None) -> None:
        """``*r0 op= v``: an atomic instruction, or load / operate / store (per-CPU and 8/16-bit values)."""
        bits, signed = bits_signed(t)
        if atomic:
            self._atomic(opname, bits, v, vslot)
            return
        self.live.clear()
        self.free = [r for r in self.scratch if r != 0]
        cur = self.alloc(t)
        self.load(cur.reg, 0, 0, bits // 8)
        if signed and bits < 64:
            self.normalize(cur.reg, t)
        if vslot is None:
            operand: Any = v
        else:
            operand = Tmp(None, t)
            operand.slot = vslot
            self.live.append(operand)
        res = self.arith(opname, cur, operand)
        self.store(0, 0, self.reg_of(res), bits // 8)
        self.release(res)
        self.release(operand)

    def _atomic(self, opname: str, bits: int, v: Any, vslot: int | None) -> None:
        """lock *(r0) op= v, with v a constant (vslot None) or the value at vslot."""
        if vslot is None:
            self.mov_imm(1, v.value)
        else:
            self.load(1, 10, vslot, bits // 8)
        size = op.DW if bits == 64 else op.W
        self.emit(op.STX | size | op.ATOMIC, 0, 1, 0, int(_ATOMIC[opname]))

    # -- globals ----------------------------------------------------------------------------------

    def load_global(self, node: ast.AST, name: str) -> Any:
        section, offset, t = self.unit.global_var(self, name, node)
        res = self.alloc(t)
        self.ld_imm64(res.reg, 0, op.PSEUDO_MAP_VALUE, section, high=offset)
        bits, signed = bits_signed(t)
        self.load(res.reg, res.reg, 0, bits // 8)
        if signed and bits < 64:
            self.normalize(res.reg, t)
        return res

    def store_global(self, node: ast.Name, v: Any) -> None:
        section, offset, t = self.unit.global_var(self, node.id, node)
        if section == ".rodata":
            raise self.error(node, f"'{node.id}' is a Const: it is read-only in the BPF program")
        v = self.convert(v, t)
        ptr = self.alloc(int)
        self.ld_imm64(ptr.reg, 0, op.PSEUDO_MAP_VALUE, section, high=offset)
        size = _size(t)
        if isinstance(v, Imm) and -(1 << 31) <= v.value < (1 << 31):
            self.store_imm(ptr.reg, 0, v.value, size)
        else:
            self.store(ptr.reg, 0, self.reg_of(v), size)
        self.release(v)
        self.release(ptr)

    def augment_global(self, node: ast.Name, opname: str, value: ast.AST) -> None:
        section, offset, t = self.unit.global_var(self, node.id, node)
        if section == ".rodata":
            raise self.error(node, f"'{node.id}' is a Const: it is read-only in the BPF program")
        bits = bits_signed(t)[0]
        v = self.convert(self.expr(value), t)
        if opname == "-" and isinstance(v, Imm):
            v, opname = Imm(-v.value, t), "+"
        ptr = self.alloc(int)
        self.ld_imm64(ptr.reg, 0, op.PSEUDO_MAP_VALUE, section, high=offset)
        if opname in _ATOMIC and bits >= 32:
            r = self.owned(v)
            self.emit(op.STX | (op.DW if bits == 64 else op.W) | op.ATOMIC, ptr.reg, r.reg, 0,
                      int(_ATOMIC[opname]))
            self.release(r)
        else:
            cur = self.alloc(t)
            bits_, signed = bits_signed(t)
            self.load(cur.reg, ptr.reg, 0, bits // 8)
            if signed and bits < 64:
                self.normalize(cur.reg, t)
            res = self.arith(opname, cur, v)
            self.store(self.reg_of(ptr), 0, self.reg_of(res), bits // 8)
            self.release(res)
        self.release(ptr)


def _is_int(t: Any) -> bool:
    return t is int or t is bool or (isinstance(t, type) and issubclass(t, Fixed))


def _i64() -> type:
    from pybpf.lang.types import i64

    return i64

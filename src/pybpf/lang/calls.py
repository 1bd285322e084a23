"""Calls and the program context, for :class:`~pybpf.lang.codegen.FunctionCompiler`.

* ``u32(x)``, ``int(x)``, ``bool(x)``: conversions (wrap to the new width);
* helpers of :mod:`.helpers`: arguments in r1-r5, result in r0 (live
  temporaries are spilled first, buffers passed as address and size);
* ``ctx.cookie`` → ``bpf_get_attach_cookie(ctx)``; ``ctx.field`` and
  ``ctx.arg(n)`` → a load at the field's offset in the context
  (see :mod:`.ctx` for the layouts per program kind);
* calls of other module-level functions → bpf-to-bpf calls (:mod:`.subprogs`);
* ``print(...)`` → a record in the log ring buffer (:mod:`.log`).
"""

from __future__ import annotations

import ast
import types as _pytypes
from typing import Any

from pybpf.asm import opcodes as op
from pybpf.lang.aggregates import Mem
from pybpf.lang.emit import Imm, Tmp, bits_signed
from pybpf.lang.helpers import HELPERS
from pybpf.lang.kernel_types import KPtr
from pybpf.lang.loops import bpf_loop
from pybpf.lang.maps import MapDecl
from pybpf.lang.packet import LOADS, SWAPS
from pybpf.lang.types import Fixed, PtrType, Struct, sizeof, u64

__all__ = ["CallMixin", "is_int_type", "hashable"]


def is_int_type(t: Any) -> bool:
    return t is int or t is bool or (isinstance(t, type) and issubclass(t, Fixed))


def hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


class CallMixin:
    """Needs the Emitter and the FunctionCompiler (``expr``, ``static``, ``error``, ``unit``, ``locals``)."""

    def e_Call(self, node: ast.Call) -> Any:
        func = node.func
        if isinstance(func, ast.Attribute):
            if isinstance(func.value, ast.Name) and func.value.id == self.ctx_name:
                return self.ctx_call(node)
            target = self.static(func.value, None)
            if isinstance(target, MapDecl):
                return self.map_call(node, target, func.attr)
        callee = self.static(func, None)
        if callee is None:
            raise self.error(func, f"unknown function '{ast.unparse(func)}'")
        if callee is print:
            return self.print_call(node)
        if callee is bpf_loop:
            return self.loop_call(node)
        spec = HELPERS.get(callee) if hashable(callee) else None
        if spec is not None:
            return self.helper_call(node, spec)
        if hashable(callee) and (callee in LOADS or callee in SWAPS):
            return self.packet_op(node, callee)
        if isinstance(callee, _pytypes.FunctionType):
            return self.local_call(node, callee)
        if node.keywords:
            raise self.error(node, "keyword arguments are not supported in BPF calls")
        if isinstance(callee, type) and issubclass(callee, Fixed):
            if len(node.args) != 1:
                raise self.error(node, f"{callee.__name__}() takes one value")
            return self.convert(self.expr(node.args[0]), callee)
        if callee is int or callee is bool:
            if len(node.args) != 1:
                raise self.error(node, f"{callee.__name__}() takes one value")
            v = self.expr(node.args[0])
            if callee is bool:
                return self._bool_value(ast.copy_location(
                    ast.Compare(left=node.args[0], ops=[ast.NotEq()], comparators=[ast.Constant(0)]), node))
            return v
        if callee is float:
            raise self.error(node, "BPF has no floating point")
        if isinstance(callee, type) and issubclass(callee, Struct):
            raise self.error(node, f"assign {callee.__name__}(...) to a local first: e = {callee.__name__}(...)")
        raise self.error(func, f"'{ast.unparse(func)}' cannot be called from a BPF program")

    def packet_op(self, node: ast.Call, fn: Any) -> Any:
        """load_u8..u64(addr): one ldx (a constant part of addr is the offset); be16..64(x): a byte swap."""
        if len(node.args) != 1 or node.keywords:
            raise self.error(node, f"{fn.__name__}() takes one value")
        arg = node.args[0]
        if fn in SWAPS:
            t = SWAPS[fn]
            v = self.convert(self.expr(arg), t)
            if isinstance(v, Imm):
                return Imm(int(fn(v.value)), t)
            res = self.owned(v)
            self.emit(op.ALU | op.END | op.TO_BE, res.reg, imm=t.bits)
            res.type = t
            return res
        t = LOADS[fn]
        off = 0
        if isinstance(arg, ast.BinOp) and isinstance(arg.op, (ast.Add, ast.Sub)) \
                and isinstance(arg.right, ast.Constant) and isinstance(arg.right.value, int):
            off = arg.right.value if isinstance(arg.op, ast.Add) else -arg.right.value
            arg = arg.left
        base = self.expr(arg)
        if isinstance(base, (Imm, Mem)) or not is_int_type(base.type):
            raise self.error(node, f"{fn.__name__}() takes an address such as ctx.data + 14")
        if not -(1 << 15) <= off < (1 << 15):
            raise self.error(node, "packet offset does not fit 16 bits")
        res = self.alloc(t)
        self.load(res.reg, self.reg_of(base), off, t.bits // 8)
        self.release(base)
        return res

    def local_call(self, node: ast.Call, fn: Any) -> Any:
        """A bpf-to-bpf call (Linux 4.16): arguments in r1-r5, result in r0."""
        if node.keywords:
            raise self.error(node, "keyword arguments are not supported in BPF calls")
        callee = self.unit.subprog(self, fn, node)
        if len(node.args) != len(callee.param_names):
            raise self.error(node, f"{fn.__name__}() takes {len(callee.param_names)} argument(s)")
        args = []
        for a, pname in zip(node.args, callee.param_names):
            v = self.expr(a)
            if isinstance(v, Mem) or not is_int_type(v.type):
                raise self.error(a, f"{fn.__name__}(): parameter '{pname}' is an integer")
            args.append(self.convert(v, callee.locals[pname].type))
        self.callees.add(callee.name)
        self.call_with(0, args, local=callee.entry_label)
        return self.take(0, callee.return_type)

    def print_call(self, node: ast.Call) -> Any:
        """print(...) → one record [site, args...] in the pybpf_log ring buffer."""
        from pybpf._sys.uapi import HelperID
        from pybpf.lang.log import LOG_MAP

        sep = " "
        for kw in node.keywords:
            if kw.arg == "sep" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                sep = kw.value.value
            elif kw.arg == "end" and isinstance(kw.value, ast.Constant) and kw.value.value == "\n":
                pass
            else:
                raise self.error(kw, "print() in a BPF program takes only sep=\"...\"")
        pieces: list[str | None] = []
        kinds: list[tuple[int, bool]] = []
        values = [a for a in node.args if not (isinstance(a, ast.Constant) and isinstance(a.value, str))]
        buf = self.stack_alloc(8 * (1 + len(values)))
        for a in node.args:
            if isinstance(a, ast.Constant) and isinstance(a.value, str):
                pieces.append(a.value)
                continue
            v = self.expr(a)
            if isinstance(v, Mem) or not is_int_type(v.type):
                raise self.error(a, "print() in a BPF program prints integers and constant strings")
            bits, signed = bits_signed(v.type)
            off = buf + 8 * (1 + len(kinds))
            if isinstance(v, Imm):
                self.mov_imm(0, v.value)
                self.store(10, off, 0, 8)
            else:
                self.store(10, off, self.reg_of(v), 8)
                self.release(v)
            pieces.append(None)
            kinds.append((bits, signed))
        site = self.unit.log_site(tuple(pieces), tuple(kinds), sep, self.src.where(node))
        self.store_imm(10, buf, site, 8)
        self.spill_live()
        self.ld_imm64(1, 0, op.PSEUDO_MAP_FD, LOG_MAP, high=0)
        self.mov_reg(2, 10)
        self.emit(op.ALU64 | op.ADD | op.K, 2, imm=buf)
        self.mov_imm(3, 8 * (1 + len(kinds)))
        self.mov_imm(4, 0)
        self.call_helper(HelperID.ringbuf_output)
        return Imm(0, int)

    def helper_call(self, node: ast.Call, spec: Any) -> Any:
        if len(node.args) != len(spec.args):
            raise self.error(node, f"{ast.unparse(node.func)}() takes {len(spec.args)} argument(s)")
        args: list[Any] = []
        for kind, a in zip(spec.args, node.args):
            v = self.expr(a)
            if kind == "buf":
                if not isinstance(v, Mem):
                    raise self.error(a, f"{ast.unparse(node.func)}() writes into a buffer: give an array or "
                                        "Struct (e.g. a field declared u8[16])")
                args.extend((v, Imm(sizeof(v.type), int)))
            else:
                if isinstance(v, Mem) or not (is_int_type(v.type) or isinstance(v.type, (PtrType, KPtr))):
                    raise self.error(a, f"{ast.unparse(node.func)}() takes an integer here")
                args.append(v)
        self.call_with(spec.helper, args)
        res = self.take(0, spec.type)
        if spec.post == "hi32":
            self.emit(op.ALU64 | op.RSH | op.K, 0, imm=32)
        elif spec.post == "lo32":
            self.emit(op.ALU | op.MOV | op.X, 0, 0)
        return res

    def call_with(self, helper: int, args: list[Any], local: str | None = None) -> None:
        """Move ``args`` into r1.. and call ``helper`` (or the BPF function at label ``local``);
        live temporaries are spilled first."""
        for a in args:
            if isinstance(a, Tmp):
                self.reg_of(a)
        # free the argument registers of temporaries that are not going there
        targets = {i + 1 for i in range(len(args))}
        for t in list(self.live):
            if t.reg in targets and not any(t is a and t.reg == i + 1 for i, a in enumerate(args)):
                self._spill(t)
        for i, a in enumerate(args):
            if isinstance(a, Mem):
                self.addr_into(i + 1, a)
            elif hasattr(a, "name") and not hasattr(a, "reg"):     # a map (access._MapRef)
                self.ld_imm64(i + 1, 0, op.PSEUDO_MAP_FD, a.name, high=0)
            elif isinstance(a, Tmp) and a.reg is None:
                self.load(i + 1, 10, a.slot, 8)     # spilled: straight into its argument register
                self.release(a)
            elif isinstance(a, Imm):
                self.mov_imm(i + 1, a.value)
            else:
                self.mov_reg(i + 1, a.reg)
                self.release(a)
        if local is None:
            self.call_helper(helper)
        else:
            self.spill_live()
            self.emit(op.JMP | op.CALL, 0, op.PSEUDO_CALL, 0, -1, local)

    def ctx_reg(self, node: ast.AST) -> int:
        loc = self.locals.get(self.ctx_name or "")
        if loc is None or loc.reg is None:
            raise self.error(node, "the context is not available here")
        return loc.reg

    def ctx_attr(self, node: ast.Attribute) -> Any:
        attr = node.attr
        if attr == "cookie" and self.kind == "usdt":
            return self.usdt_cookie(node)   # the attach's cookie is the spec's id: the user's is in the spec
        if attr == "cookie":
            from pybpf._sys.uapi import HelperID

            self.spill_live()
            self.mov_reg(1, self.ctx_reg(node))
            self.call_helper(HelperID.get_attach_cookie)
            return self.take(0, u64)
        field = self.unit.ctx_field(self, node, attr)
        if field.count:
            raise self.error(node, f"ctx.{attr} is an array of {field.count}: index it, ctx.{attr}[i]")
        return self._ctx_load(node, field.offset, field.type, field.size)

    def _ctx_load(self, node: ast.AST, offset: int, t: Any, size: int = 0) -> Any:
        bits, signed = bits_signed(t)
        res = self.alloc(t)
        self.load(res.reg, self.ctx_reg(node), offset, size or bits // 8)
        if signed and bits < 64:
            self.normalize(res.reg, t)
        else:
            self.defined(self.code[-1])
        return res

    def ctx_array(self, node: ast.Subscript) -> Any:
        attr = node.value.attr  # type: ignore[attr-defined]
        field = self.unit.ctx_field(self, node.value, attr)
        if not field.count:
            raise self.error(node, f"ctx.{attr} is not an array")
        idx = self.expr(node.slice)
        if not isinstance(idx, Imm):
            raise self.error(node.slice, "context arrays take a constant index")
        if not 0 <= idx.value < field.count:
            raise self.error(node.slice, f"ctx.{attr} has {field.count} elements; index {idx.value} is outside")
        size = bits_signed(field.type)[0] // 8
        return self._ctx_load(node, field.offset + idx.value * size, field.type)

    def ctx_call(self, node: ast.Call) -> Any:
        attr = node.func.attr  # type: ignore[attr-defined]
        if attr == "arg":
            if len(node.args) != 1:
                raise self.error(node, "ctx.arg(n) takes the argument's index")
            n = self.expr(node.args[0])
            if not isinstance(n, Imm):
                raise self.error(node.args[0], "ctx.arg() takes a constant index")
            if self.kind == "usdt":
                return self.usdt_arg(node, n.value)
            field = self.unit.ctx_arg(self, node, n.value)
            return self._ctx_load(node, field.offset, field.type)
        raise self.error(node, f"ctx.{attr}() is not known: use ctx.arg(n), ctx.ret, ctx.cookie or a field")

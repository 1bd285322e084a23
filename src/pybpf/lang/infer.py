"""Types of locals, found before any code is emitted (a fixpoint over the assignments).

A local's type is the type of the values assigned to it: a declared
annotation wins; plain ``int`` values join with a fixed type (``n = 0``
then ``n += counts[k]`` makes ``n`` a u64); two different fixed types are a
CompileError asking for an explicit conversion, so that the compiled code
and CPython compute with the same widths.
"""

from __future__ import annotations

import ast
from typing import Any

from pybpf.errors import CompileError
from pybpf.lang.calls import hashable
from pybpf.lang.helpers import HELPERS
from pybpf.lang.kernel_types import KPtr, kernel_member
from pybpf.lang.maps import MapDecl
from pybpf.lang.packet import LOADS, SWAPS
from pybpf.lang.loops import bpf_loop
from pybpf.lang.types import ArrayType, Fixed, PtrType, Struct, common_type, i32, type_of_value, u64

__all__ = ["InferMixin", "Local"]


class Local:
    """A local variable: its type, and its home (a register r6-r9 or a stack slot)."""

    __slots__ = ("name", "type", "reg", "slot")

    def __init__(self, name: str, type: Any) -> None:
        self.name = name
        self.type = type
        self.reg: int | None = None
        self.slot: int | None = None


def _tname(t: Any) -> str:
    return getattr(t, "__name__", str(t))


class InferMixin:
    """Needs the FunctionCompiler (``static``, ``error``, ``unit``, ``locals``, ``ctx_name``)."""

    def _scan(self, body: list[ast.stmt]) -> None:
        """Find the locals and their types (a fixpoint over the assignments), and count uses."""
        uses: dict[str, int] = {}
        assigns: list[tuple[str, ast.AST | None, Any]] = []   # (name, value node, declared type)
        for node in ast.walk(ast.Module(body=body, type_ignores=[])):
            if isinstance(node, ast.Global):
                self.declared_global.update(node.names)
            elif isinstance(node, ast.Name):
                uses[node.id] = uses.get(node.id, 0) + 1
        for node in ast.walk(ast.Module(body=body, type_ignores=[])):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        assigns.append((t.id, node.value, None))
                    elif isinstance(t, ast.Tuple):
                        raise self.error(t, "tuple assignment is not supported: assign one name at a time")
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                assigns.append((node.target.id, node.value, self._type_expr(node.annotation)))
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                assigns.append((node.target.id, node, None))
            elif isinstance(node, ast.For) and isinstance(node.target, ast.Name):
                assigns.append((node.target.id, node, None))
            elif isinstance(node, ast.NamedExpr):
                assigns.append((node.target.id, node.value, None))
        if self.ctx_name is not None:
            self.locals[self.ctx_name] = Local(self.ctx_name, "ctx")
        for name in self.param_names:
            declared_param = self.locals[name].type
            assigns = [(n, v, declared_param if n == name else d) for n, v, d in assigns]
        declared: dict[str, Any] = {}
        for name, _value, decl in assigns:
            if decl is not None:
                declared[name] = decl
        for _round in range(4):
            changed = False
            for name, value, decl in assigns:
                if name in self.declared_global or name == self.ctx_name:
                    continue
                loc = self.locals.get(name)
                if name in declared:
                    t = declared[name]
                elif isinstance(value, ast.For):
                    t = self._range_type(value)
                elif isinstance(value, ast.AugAssign):
                    t = common_type(loc.type, self.type_of(value.value)) if loc is not None else None
                else:
                    t = self.type_of(value) if value is not None else None
                if t is None:
                    continue
                if loc is None:
                    self.locals[name] = Local(name, t)
                    changed = True
                elif loc.type is not t:
                    joined = self._join(loc.type, t, value, name)
                    if joined is not loc.type:
                        loc.type = joined
                        changed = True
            if not changed:
                break
        self.uses = uses

    def _join(self, a: Any, b: Any, node: Any, name: str) -> Any:
        fa = isinstance(a, type) and issubclass(a, Fixed)
        fb = isinstance(b, type) and issubclass(b, Fixed)
        if fa and fb:
            raise self.error(node, f"'{name}' holds both {a.__name__} and {b.__name__} values: convert one "
                                   f"explicitly, e.g. {a.__name__}(...)")
        if not fa and not fb:
            if a != b:
                raise self.error(node, f"'{name}' holds values of different kinds ({_tname(a)}, {_tname(b)})")
            return a
        return a if fa else b

    def _range_type(self, node: ast.For) -> Any:
        it = node.iter
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range":
            t: Any = int
            for a in it.args:
                t = common_type(t, self.type_of(a))
            return t
        raise self.error(node.iter, "only 'for i in range(...)' loops with constant bounds are supported")

    def type_of(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return int
        if isinstance(node, ast.Name):
            loc = self.locals.get(node.id)
            if loc is not None and node.id not in self.declared_global:
                return loc.type
            v = self.globals.get(node.id)
            if isinstance(v, Fixed):
                return type_of_value(v)
            return int
        if isinstance(node, ast.BinOp):
            return common_type(self.type_of(node.left), self.type_of(node.right))
        if isinstance(node, ast.UnaryOp):
            return int if isinstance(node.op, ast.Not) else self.type_of(node.operand)
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            if isinstance(node, ast.BoolOp):
                t: Any = int
                for v in node.values:
                    t = common_type(t, self.type_of(v))
                return t
            return int
        if isinstance(node, ast.IfExp):
            return common_type(self.type_of(node.body), self.type_of(node.orelse))
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                    and func.value.id == self.ctx_name:
                return u64 if func.attr == "arg" else int
            if isinstance(func, ast.Attribute):
                target = self.static(func.value, None)
                if isinstance(target, MapDecl):
                    if func.attr == "reserve" and node.args:
                        return PtrType(self.static(node.args[0]))
                    if func.attr == "lookup":
                        return PtrType(target.value)
                    return target.value if func.attr == "get" else int
            callee = self.static(func, None)
            if isinstance(callee, type) and issubclass(callee, (Fixed, Struct)) or isinstance(callee, ArrayType):
                return callee
            if callee is bpf_loop:
                return i32
            spec = HELPERS.get(callee) if hashable(callee) else None
            if spec is not None:
                return spec.type
            if hashable(callee) and (callee in LOADS or callee in SWAPS):
                return LOADS.get(callee) or SWAPS[callee]
            sub = getattr(self.unit, "subprogs", {}).get(getattr(callee, "__name__", None))
            if sub is not None and sub.fn is callee:
                return sub.return_type
            if callable(callee) and getattr(callee, "__annotations__", None) and "return" in callee.__annotations__:
                ret = callee.__annotations__["return"]
                if isinstance(ret, str):
                    ret = callee.__globals__.get(ret, int)
                return ret
            return int
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == self.ctx_name:
                if node.attr == "cookie":
                    return u64
                try:
                    return self.unit.ctx_field(self, node, node.attr).type
                except CompileError:
                    return int
            base_t = self.type_of(node.value)
            if isinstance(base_t, KPtr):
                try:
                    return kernel_member(base_t.name, node.attr)[1]
                except (LookupError, OSError, ValueError):
                    return int
            if isinstance(base_t, PtrType):
                base_t = base_t.target
            if isinstance(base_t, type) and issubclass(base_t, Struct) and node.attr in base_t._fields:
                return base_t._fields[node.attr][1]
            return int
        if isinstance(node, ast.Subscript):
            base = node.value
            if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) \
                    and base.value.id == self.ctx_name:
                try:
                    return self.unit.ctx_field(self, base, base.attr).type
                except CompileError:
                    return int
            target = self.static(base, None)
            if isinstance(target, MapDecl):
                return target.value
            base_t = self.type_of(base)
            if isinstance(base_t, ArrayType):
                return base_t.elem
        return int

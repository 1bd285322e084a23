"""Python AST → BPF instructions for one function (statements, expressions, conditions).

The front end checks everything it can before the kernel sees anything:
unknown names, floats, unsupported statements and wrong types raise
:class:`~pybpf.errors.CompileError` with ``file:line:col`` and what to write
instead.  Map and global-variable access is in :mod:`.access`.
"""

from __future__ import annotations

import ast
from typing import Any

from pybpf.asm import opcodes as op
from pybpf.errors import CompileError
from pybpf.lang.access import AccessMixin
from pybpf.lang.aggregates import AggregateMixin, Mem, is_aggregate
from pybpf.lang.calls import CallMixin, hashable, is_int_type
from pybpf.lang.control import ControlMixin
from pybpf.lang.packet import LOADS, SWAPS
from pybpf.lang.infer import InferMixin, Local
from pybpf.lang.kernel_types import KernelMixin, KPtr
from pybpf.lang.emit import Emitter, Imm, Reg, bits_signed
from pybpf.lang.maps import MapDecl
from pybpf.lang.regalloc import linear_scan, live_intervals
from pybpf.lang.types import ArrayType, Fixed, PtrType, Struct, common_type, sizeof, wrap
from pybpf.lang.loops import LoopMixin
from pybpf.lang.usdt_args import UsdtMixin

__all__ = ["FunctionCompiler", "Source"]

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Mod: "%", ast.BitAnd: "&",
           ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>"}
_CMP = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
# comparison -> (unsigned jump, signed jump), and its negation
_JMP = {"==": (op.JEQ, op.JEQ), "!=": (op.JNE, op.JNE), "<": (op.JLT, op.JSLT), "<=": (op.JLE, op.JSLE),
        ">": (op.JGT, op.JSGT), ">=": (op.JGE, op.JSGE)}
_NEG = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_SWAP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_UNSUPPORTED = {
    ast.Try: "exceptions do not exist in BPF: check values with if and return early",
    ast.Raise: "exceptions do not exist in BPF: return an error code instead",
    ast.With: "'with' is not supported in a BPF program",
    ast.ClassDef: "classes cannot be defined inside a BPF program (declare Struct classes at module level)",
    ast.FunctionDef: "nested functions are not supported: define the function at module level",
    ast.Lambda: "lambdas are not supported in a BPF program",
    ast.ListComp: "lists are heap objects, which BPF does not have: use a map or a fixed array",
    ast.List: "lists are heap objects, which BPF does not have: use a map or a fixed array",
    ast.Dict: "dicts are heap objects: declare a HashMap at module level",
    ast.Set: "sets are heap objects: declare a HashMap at module level",
    ast.DictComp: "dicts are heap objects: declare a HashMap at module level",
    ast.SetComp: "sets are heap objects: declare a HashMap at module level",
    ast.GeneratorExp: "generators are not supported in a BPF program",
    ast.Yield: "generators are not supported in a BPF program",
    ast.Await: "async code is not supported in a BPF program",
    ast.JoinedStr: "f-strings build heap strings: use print(\"fmt {}\", value)",
    ast.Import: "imports belong at module level, outside the BPF program",
    ast.ImportFrom: "imports belong at module level, outside the BPF program",
}


class Source:
    """The source of one function: file name, first line, dedented text and its AST."""

    def __init__(self, fn: Any) -> None:
        import inspect
        import textwrap

        try:
            lines, first = inspect.getsourcelines(fn)
        except (OSError, TypeError) as exc:
            raise CompileError(f"cannot read the source of {getattr(fn, '__name__', fn)!r}: {exc}") from None
        self.file = inspect.getsourcefile(fn) or "<unknown>"
        self.first = first
        raw = "".join(lines)
        text = textwrap.dedent(raw)
        self.indent = len(lines[0]) - len(lines[0].lstrip()) if lines else 0
        self.lines = lines
        try:
            tree = ast.parse(text)
        except SyntaxError as exc:
            raise CompileError(f"{self.file}:{first + (exc.lineno or 1) - 1}: {exc.msg}") from None
        node = tree.body[0]
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            raise CompileError(f"{self.file}:{first}: expected a function definition")
        if isinstance(node, ast.AsyncFunctionDef):
            raise CompileError(f"{self.file}:{first}: async functions cannot be BPF programs")
        self.node = node

    def line(self, node: ast.AST) -> int:
        return self.first + getattr(node, "lineno", 1) - 1

    def text(self, node: ast.AST) -> str:
        i = getattr(node, "lineno", 1) - 1
        return self.lines[i].strip() if 0 <= i < len(self.lines) else ""

    def position(self, node: ast.AST) -> tuple[int, int, str, str]:
        """(line, column, text, file) of a statement, for line info."""
        return self.line(node), getattr(node, "col_offset", 0) + self.indent + 1, self.text(node), self.file

    def where(self, node: ast.AST) -> str:
        return f"{self.file}:{self.line(node)}:{getattr(node, 'col_offset', 0) + self.indent + 1}"


class FunctionCompiler(ControlMixin, KernelMixin, UsdtMixin, LoopMixin, CallMixin, InferMixin, AggregateMixin,
                       AccessMixin, Emitter):
    """Compiles one program (``kind``/``target`` from its decorator) into ``self.code``."""

    def __init__(self, unit: Any, fn: Any, kind: str, target: str | None, name: str) -> None:
        Emitter.__init__(self)
        self.unit = unit               # the compile unit: maps, globals, helpers of the object
        self.fn = fn
        self.kind = kind
        self.target = target
        self.name = name
        self.src = Source(fn)
        self.globals = fn.__globals__
        self.declared_global: set[str] = set()
        self.locals: dict[str, Local] = {}
        self.ctx_name: str | None = None
        self.loops: list[tuple[str, str]] = []   # (continue label, break label)
        self.index_bounds: dict[str, tuple[int, int]] = {}   # loop variable -> (lowest, highest value)
        self.param_names: list[str] = []
        self.callees: set[str] = set()
        self.core_relocs: list[tuple[Any, str, str, Any]] = []   # (instruction, struct, member, kind)
        self.return_type: Any = None
        self.label_prefix = name
        self.entry_label = f"{name}:entry"

    # -- errors ---------------------------------------------------------------------------------

    def error(self, node: ast.AST, msg: str) -> CompileError:
        return CompileError(f"{self.src.where(node)}: {msg}")

    # -- the function ---------------------------------------------------------------------------

    def compile(self) -> None:
        fn = self.src.node
        args = fn.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
            raise self.error(fn, "*args, **kwargs and keyword-only parameters are not supported")
        if self.kind == "subprog":
            self._params(fn)
        elif len(args.args) > 1:
            raise self.error(fn, "a BPF program takes one argument, its context: def prog(ctx) -> int")
        elif args.args:
            self.ctx_name = args.args[0].arg
        self._scan(fn.body)
        self._assign_homes()
        self.cur_line = self.src.position(fn)
        self.place(self.entry_label)
        if self.ctx_name is not None and self.locals[self.ctx_name].reg is not None:
            self.mov_reg(self.locals[self.ctx_name].reg, 1)
        for i, name in enumerate(self.param_names):
            self._set_local(self.locals[name], Reg(i + 1, self.locals[name].type))
        self.block(fn.body)
        if not self.code or not self._ends_with_exit():
            self.emit(op.ALU64 | op.MOV | op.K, 0, imm=0)
            self.emit(op.JMP | op.EXIT)
        if self.max_stack > 512:
            raise self.error(fn, f"the program needs {self.max_stack} bytes of stack; BPF allows 512: "
                                 "move buffers into a PerCpuArray map")

    def _params(self, fn: ast.FunctionDef) -> None:
        """A BPF function's parameters (annotated integers, at most 5) and its return type."""
        if len(fn.args.args) > 5:
            raise self.error(fn, "a BPF function takes at most 5 arguments (they travel in r1-r5)")
        if fn.args.defaults:
            raise self.error(fn, "default argument values are not supported in BPF functions")
        for a in fn.args.args:
            if a.annotation is None:
                raise self.error(a, f"annotate parameter '{a.arg}' with its type, e.g. {a.arg}: u64")
            t = self._type_expr(a.annotation)
            if not is_int_type(t):
                raise self.error(a, "BPF function parameters are integers")
            self.locals[a.arg] = Local(a.arg, t)
            self.param_names.append(a.arg)
        if fn.returns is None:
            raise self.error(fn, f"annotate the return type of '{fn.name}', e.g. -> u64")
        self.return_type = self._type_expr(fn.returns)

    def _ends_with_exit(self) -> bool:
        last = self.code[-1]
        return not isinstance(last, str) and last.code == op.JMP | op.EXIT

    # -- locals: homes ------------------------------------------------------------------------

    def _assign_homes(self) -> None:
        scalars = []
        for loc in self.locals.values():
            if loc.name == self.ctx_name and self.uses.get(loc.name, 0) == 0:
                continue
            if is_aggregate(loc.type):
                loc.slot = self.perm_alloc(sizeof(loc.type))
                continue
            if loc.type != "ctx" and not is_int_type(loc.type) and not isinstance(loc.type, (PtrType, KPtr)):
                raise self.error(self.src.node, f"local '{loc.name}' has unsupported type {loc.type!r}")
            scalars.append(loc)
        params = ([self.ctx_name] if self.ctx_name else []) + self.param_names
        spans = live_intervals(self.src.node.body, params)
        regs: tuple[int, ...] = (6, 7, 8, 9)
        if not self._makes_calls():
            # nothing clobbers r3-r5: locals may live there too, r0-r2 stay for temporaries
            regs, self.scratch = (6, 7, 8, 9, 5, 4, 3), (1, 2, 0)
            self.free = list(self.scratch)
        pinned = lambda l: l.type == "ctx" or isinstance(l.type, (PtrType, KPtr))  # noqa: E731
        for loc in linear_scan(scalars, spans, pinned, regs):
            loc.slot = self.perm_alloc(8)

    def _makes_calls(self) -> bool:
        """True unless the body surely calls nothing (helpers, maps, BPF functions, print, ...)."""
        for node in ast.walk(self.src.node):
            if isinstance(node, (ast.Delete, ast.Compare)) and any(isinstance(o, (ast.In, ast.NotIn))
                                                                   for o in getattr(node, "ops", [])):
                return True
            if isinstance(node, ast.Delete):
                return True
            if isinstance(node, ast.Subscript) and isinstance(self.static(node.value, None), MapDecl):
                return True
            if isinstance(node, ast.Attribute) and node.attr == "cookie":
                return True
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == self.ctx_name:
                    if self.kind == "usdt":
                        return True      # ctx.arg(n) reads the spec map and the registers
                    continue
                callee = self.static(f, None)
                if isinstance(callee, type) and issubclass(callee, Fixed):
                    continue
                if hashable(callee) and (callee in LOADS or callee in SWAPS or callee in (int, bool)):
                    continue
                return True
        if any(isinstance(l.type, KPtr) for l in self.locals.values()):
            return True
        return False

    def _type_expr(self, node: ast.AST) -> Any:
        obj = self.static(node)
        if isinstance(obj, type) and (issubclass(obj, (Fixed, Struct)) or obj is int or obj is bool):
            return obj
        if isinstance(obj, ArrayType):
            return obj
        raise self.error(node, f"unknown type annotation {ast.unparse(node)!r}: use u8..u64, i8..i64, int, "
                               "a Struct or an array such as u8[16]")

    # -- static evaluation (names of the module) ---------------------------------------------------

    _MISSING = object()

    def static(self, node: ast.AST, default: Any = _MISSING) -> Any:
        """The Python object a Name/Attribute chain names in the function's globals."""
        if isinstance(node, ast.Name):
            if node.id in self.locals and node.id not in self.declared_global:
                if default is not self._MISSING:
                    return default
                raise self.error(node, f"'{node.id}' is a local variable, not a module-level name")
            if node.id in self.globals:
                return self.globals[node.id]
            import builtins

            if hasattr(builtins, node.id):
                return getattr(builtins, node.id)
        elif isinstance(node, ast.Attribute):
            base = self.static(node.value, None)
            if base is not None and hasattr(base, node.attr):
                return getattr(base, node.attr)
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            base = self.static(node.value, None)
            if isinstance(base, type) and issubclass(base, Fixed):
                return base[node.slice.value]
        if default is not self._MISSING:
            return default
        raise self.error(node, f"unknown name '{ast.unparse(node)}'")

    # -- statements -----------------------------------------------------------------------------

    def block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.stmt(stmt)

    def stmt(self, node: ast.stmt) -> None:
        self.cur_line = self.src.position(node)
        self.stmt_stack = 0
        for t in list(self.live):
            self.release(t)
        self.free = list(self.scratch)
        method = getattr(self, "s_" + type(node).__name__, None)
        if method is None:
            raise self.error(node, _UNSUPPORTED.get(type(node), f"'{type(node).__name__}' statements are not "
                                                                   "supported in a BPF program"))
        method(node)

    def s_Pass(self, node: ast.Pass) -> None:
        pass

    def s_Global(self, node: ast.Global) -> None:
        for name in node.names:
            self.unit.global_var(self, name, node)

    def s_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # a docstring
        self.release(self.expr(node.value))

    def s_Return(self, node: ast.Return) -> None:
        if node.value is None:
            self.mov_imm(0, 0)
        else:
            v = self.expr(node.value)
            if not is_int_type(v.type):
                raise self.error(node, "a BPF program returns an integer")
            if self.return_type is not None:
                v = self.convert(v, self.return_type)
            self.into(v, 0)
        self.emit(op.JMP | op.EXIT)

    def s_Assign(self, node: ast.Assign) -> None:
        if len(node.targets) != 1:
            raise self.error(node, "chained assignment is not supported: assign one target at a time")
        self.assign(node.targets[0], node.value)

    def s_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.assign(node.target, node.value)

    def assign(self, target: ast.AST, value: ast.AST) -> None:
        if isinstance(target, ast.Name):
            if target.id in self.declared_global:
                self.store_global(target, self.expr(value))
                return
            loc = self.locals[target.id]
            if is_aggregate(loc.type):
                self.assign_aggregate(loc, value)
                return
            if loc.reg is not None:
                self.assign_home(loc, value)
            else:
                v = self.convert(self.expr(value), loc.type)
                self.store(10, loc.slot, self.reg_of(v), 8)
                self.release(v)
            return
        if isinstance(target, ast.Subscript) and isinstance(self.static(target.value, None), MapDecl):
            self.subscript_store(target, value)
            return
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            v = self.expr(value)           # the value first, as Python does: then the place it goes
            self.write_mem(self.lvalue(target), v, target)
            return
        raise self.error(target, f"cannot assign to {ast.unparse(target)!r}")

    def assign_home(self, loc: Local, value: ast.AST) -> None:
        """``loc = value`` computed in loc's register itself when the value allows (x = x + 1 is one add)."""
        t = self._eval_into(value, loc.reg, loc.name, loc.type)
        if self.needs_conversion(t, loc.type):
            self.normalize(loc.reg, loc.type)

    def _eval_into(self, node: ast.AST, reg: int, name: str, want: Any) -> Any:
        """Evaluate ``node`` into ``reg`` (the home of local ``name``); the type of the value there."""
        opname = _BINOPS.get(type(node.op)) if isinstance(node, ast.BinOp) else None
        if opname is not None and not any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node.right)) \
                and not isinstance(node.left, ast.Constant):
            lt = self._eval_into(node.left, reg, name, None)
            b = self.expr(node.right)
            if not (is_int_type(lt) and is_int_type(b.type)):
                raise self.error(node, "arithmetic needs integer operands")
            res = self.arith(opname, Reg(reg, lt), b, inplace=True)
            if isinstance(res, Imm):
                self.mov_imm(reg, res.value)
            return res.type
        v = self.expr(node)
        if isinstance(v, Mem):
            raise self.error(node, "a Struct or array cannot be stored in an integer variable")
        if want is not None:
            v = self.convert(v, want)
        self.into(v, reg)
        self.release(v)
        return v.type

    def assign_aggregate(self, loc: Local, value: ast.AST) -> None:
        mem = self.local_mem(loc)
        if isinstance(value, ast.Call) and self.static(value.func, None) is loc.type:
            if value.args:
                raise self.error(value, f"{getattr(loc.type, '__name__', loc.type)}() takes keyword arguments only")
            self.zero_fill(mem)
            for kw in value.keywords:
                if kw.arg is None:
                    raise self.error(kw, "**kwargs is not supported")
                self.write_mem(self.member(mem, kw.arg, kw), self.expr(kw.value), kw)
            return
        v = self.expr(value)
        self.write_mem(mem, v, value)

    def s_AugAssign(self, node: ast.AugAssign) -> None:
        opname = _BINOPS.get(type(node.op))
        if opname is None:
            raise self.error(node, _op_hint(node.op))
        target = node.target
        if isinstance(target, ast.Name) and target.id in self.declared_global:
            self.augment_global(target, opname, node.value)
            return
        if isinstance(target, ast.Subscript) and isinstance(self.static(target.value, None), MapDecl):
            self.subscript_augment(target, opname, node.value)
            return
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            mem = self.lvalue(target)
            cur = self.read_mem(mem)
            if isinstance(cur, Mem):
                raise self.error(target, "augmented assignment needs an integer field")
            self.write_mem(mem, self.arith(opname, cur, self.expr(node.value)), target)
            return
        if isinstance(target, ast.Name):
            loc = self.locals[target.id]
            if loc.reg is not None:
                self.assign_home(loc, ast.copy_location(ast.BinOp(left=target, op=node.op, right=node.value), node))
                return
            cur = self.read_local(loc)
            rhs = self.expr(node.value)
            res = self.convert(self.arith(opname, cur, rhs), loc.type)
            if loc.reg is not None:
                self.into(res, loc.reg)
            else:
                self.store(10, loc.slot, self.reg_of(res), 8)
            self.release(res)
            return
        raise self.error(target, f"cannot assign to {ast.unparse(target)!r}")

    def s_Delete(self, node: ast.Delete) -> None:
        for t in node.targets:
            if not isinstance(t, ast.Subscript):
                raise self.error(t, "only 'del map[key]' is supported")
            self.subscript_delete(t)

    def _set_local(self, loc: Local, v: Any) -> None:
        if loc.reg is not None:
            self.into(v, loc.reg)
        else:
            self.store(10, loc.slot, self.reg_of(v), 8)
        self.release(v)

    # -- conditions -----------------------------------------------------------------------------

    def branch(self, node: ast.AST, label: str, when: bool) -> None:
        """Jump to ``label`` when ``node`` is truthy (``when``) or falsy (not ``when``)."""
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self.branch(node.operand, label, not when)
            return
        if isinstance(node, ast.BoolOp):
            is_and = isinstance(node.op, ast.And)
            if is_and != when:
                # and/jump-if-false or or/jump-if-true: any operand decides
                for v in node.values:
                    self.branch(v, label, when)
            else:
                skip = self.new_label("sc")
                for v in node.values[:-1]:
                    self.branch(v, skip, not when)
                self.branch(node.values[-1], label, when)
                self.place(skip)
            return
        if isinstance(node, ast.Compare):
            if len(node.ops) > 1:
                parts = []
                left = node.left
                for o, right in zip(node.ops, node.comparators):
                    parts.append(ast.copy_location(ast.Compare(left=left, ops=[o], comparators=[right]), node))
                    left = right
                self.branch(ast.copy_location(ast.BoolOp(op=ast.And(), values=parts), node), label, when)
                return
            o = node.ops[0]
            if isinstance(o, (ast.In, ast.NotIn)):
                present = self.contains(node.left, node.comparators[0])
                self.emit(op.JMP | (op.JNE if (isinstance(o, ast.In) == when) else op.JEQ) | op.K,
                          self.reg_of(present), reference=label)
                self.release(present)
                return
            cmp = _CMP.get(type(o))
            if cmp is None:
                raise self.error(node, "'is' compares object identity, which BPF values do not have: use ==")
            a = self.expr(node.left)
            b = self.expr(node.comparators[0])
            self.compare_jump(a, b, cmp if when else _NEG[cmp], label)
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, (bool, int)):
            if bool(node.value) == when:
                self.jump(label)
            return
        v = self.expr(node)
        self.compare_jump(v, Imm(0, v.type), "!=" if when else "==", label)

    def compare_jump(self, a: Any, b: Any, cmp: str, label: str) -> None:
        if isinstance(a.type, (PtrType, KPtr)) and isinstance(b, Imm) and b.value == 0 and cmp in ("==", "!="):
            self.emit(op.JMP | _JMP[cmp][0] | op.K, self.reg_of(a), reference=label)
            self.release(a)
            return
        if not (is_int_type(a.type) and is_int_type(b.type)):
            raise CompileError(f"{self.src.file}:{self.cur_line[0]}: only integers can be compared")
        t = common_type(a.type, b.type)
        if isinstance(a, Imm) and isinstance(b, Imm):
            from pybpf.lang.types import compare

            ta = t if t is not int else None
            va = ta(a.value) if ta else a.value
            vb = ta(b.value) if ta else b.value
            if compare(cmp, va, vb):
                self.jump(label)
            return
        if isinstance(a, Imm):
            a, b, cmp = b, a, _SWAP[cmp]
        a = self.convert(a, t)
        b = self.convert(b, t)
        bits, signed = bits_signed(t)
        code = _JMP[cmp][1 if signed else 0]
        ra = self.reg_of(a)
        if isinstance(b, Imm) and -(1 << 31) <= wrap(b.value, 64, True) < (1 << 31):
            self.emit(op.JMP | code | op.K, ra, 0, 0, wrap(b.value, 64, True), reference=label)
        else:
            if isinstance(b, Imm):
                b = self.owned(b)          # a constant that needs a register: a temporary, released below
            rb = self.reg_of(b)
            self.emit(op.JMP | code | op.X, self.reg_of(a), rb, reference=label)
        self.release(a)
        self.release(b)

    # -- expressions ----------------------------------------------------------------------------

    def expr(self, node: ast.AST) -> Any:
        method = getattr(self, "e_" + type(node).__name__, None)
        if method is None:
            raise self.error(node, _UNSUPPORTED.get(type(node), f"'{type(node).__name__}' expressions are not "
                                                                   "supported in a BPF program"))
        return method(node)

    def e_Constant(self, node: ast.Constant) -> Any:
        v = node.value
        if isinstance(v, bool):
            return Imm(int(v), int)
        if isinstance(v, int):
            return Imm(wrap(v, 64, True) if not 0 <= v < 1 << 64 else v, int)
        if isinstance(v, float):
            raise self.error(node, "BPF has no floating point: use integers (e.g. nanoseconds, per-mille)")
        if v is None:
            raise self.error(node, "None is not a BPF value: use 0 or a flag")
        raise self.error(node, f"{type(v).__name__} constants are not supported here")

    def e_Name(self, node: ast.Name) -> Any:
        name = node.id
        if name in self.locals and name not in self.declared_global:
            loc = self.locals[name]
            if loc.type == "ctx":
                raise self.error(node, f"'{name}' is the program's context: read its fields (ctx.cookie, "
                                       "ctx.arg(0), ...)")
            if is_aggregate(loc.type):
                return self.local_mem(loc)
            return self.read_local(loc)
        if name not in self.globals:
            import builtins

            if name in ("True", "False"):
                return Imm(int(name == "True"), int)
            if hasattr(builtins, name):
                raise self.error(node, f"the builtin '{name}' cannot be used as a value in a BPF program")
            raise self.error(node, f"unknown name '{name}'")
        value = self.globals[name]
        if isinstance(value, Fixed):
            return self.load_global(node, name)
        if isinstance(value, bool) or isinstance(value, int):
            return Imm(int(value), int)   # a plain module constant is folded in
        if isinstance(value, float):
            raise self.error(node, f"'{name}' is a float: BPF has no floating point")
        raise self.error(node, f"'{name}' ({type(value).__name__}) cannot be used as a value in a BPF program")

    def read_local(self, loc: Local) -> Any:
        if loc.reg is not None:
            return Reg(loc.reg, loc.type)
        t = self.alloc(loc.type)
        self.load(t.reg, 10, loc.slot, 8)
        self.defined(self.code[-1])
        return t

    def e_BinOp(self, node: ast.BinOp) -> Any:
        opname = _BINOPS.get(type(node.op))
        if opname is None:
            raise self.error(node, _op_hint(node.op))
        a = self.expr(node.left)
        b = self.expr(node.right)
        if not (is_int_type(a.type) and is_int_type(b.type)):
            raise self.error(node, "arithmetic needs integer operands")
        if opname in ("//", "%") and a.type is int and b.type is int and not (isinstance(b, Imm) and b.value):
            # Untyped ints divide as Python's do, and Python raises ZeroDivisionError where BPF gives 0
            # (or the dividend): a divisor that may be 0 would make the kernel and CPython disagree.
            raise self.error(node, f"'{opname}' of two untyped integers by a value that may be 0 (a comparison, "
                                   "a 'not'): CPython raises ZeroDivisionError where BPF does not; give one "
                                   "side a type, e.g. u64(...)")
        return self.arith(opname, a, b)

    def e_UnaryOp(self, node: ast.UnaryOp) -> Any:
        if isinstance(node.op, ast.Not):
            return self._bool_value(node)
        v = self.expr(node.operand)
        if isinstance(node.op, ast.UAdd):
            return v
        if isinstance(node.op, ast.USub):
            return self.arith("-", Imm(0, v.type), v)
        return self.arith("^", v, Imm(-1 if bits_signed(v.type)[1] else (1 << bits_signed(v.type)[0]) - 1, v.type))

    def e_Compare(self, node: ast.Compare) -> Any:
        return self._bool_value(node)

    def _bool_value(self, node: ast.AST) -> Any:
        """1 or 0 as a value.  Values made on several paths are joined through a stack slot, with
        live temporaries spilled first, so every path reaches the join with the same registers
        and a written slot (the verifier checks both)."""
        self.spill_live()
        slot = self.stack_alloc(8)
        done = self.new_label("bool")
        self.store_imm(10, slot, 1, 8)
        self.branch(node, done, True)
        self.store_imm(10, slot, 0, 8)
        self.place(done)
        res = self.alloc(int)
        self.load(res.reg, 10, slot, 8)
        return res

    def e_BoolOp(self, node: ast.BoolOp) -> Any:
        # Python semantics: the value of the operand that decided, joined through a stack slot
        is_and = isinstance(node.op, ast.And)
        t = self._same_type([self.type_of(v) for v in node.values], node)
        self.spill_live()
        slot = self.stack_alloc(8)
        done = self.new_label("boolop")
        for i, v in enumerate(node.values):
            val = self.convert(self.expr(v), t)
            reg = self.reg_of(val)
            self.store(10, slot, reg, 8)
            if i < len(node.values) - 1:
                self.emit(op.JMP | (op.JEQ if is_and else op.JNE) | op.K, reg, reference=done)
            self.release(val)
        self.place(done)
        res = self.alloc(t)
        self.load(res.reg, 10, slot, 8)
        return res

    def e_IfExp(self, node: ast.IfExp) -> Any:
        t = self._same_type([self.type_of(node.body), self.type_of(node.orelse)], node)
        self.spill_live()
        slot = self.stack_alloc(8)
        other, done = self.new_label("ifexp"), self.new_label("endifexp")
        self.branch(node.test, other, False)
        for value, end in ((node.body, True), (node.orelse, False)):
            v = self.convert(self.expr(value), t)
            self.store(10, slot, self.reg_of(v), 8)
            self.release(v)
            if end:
                self.jump(done)
                self.place(other)
        self.place(done)
        res = self.alloc(t)
        self.load(res.reg, 10, slot, 8)
        return res

    def _same_type(self, types: list[Any], node: ast.AST) -> Any:
        """The one fixed type of the alternatives of and/or/if-else (CPython keeps each value's own type,
        so two different fixed types would compute differently afterwards)."""
        fixed = {t for t in types if isinstance(t, type) and issubclass(t, Fixed)}
        if len(fixed) > 1:
            names = ", ".join(sorted(t.__name__ for t in fixed))
            raise self.error(node, f"the alternatives have different types ({names}): convert them to one type")
        return fixed.pop() if fixed else int

    def e_Attribute(self, node: ast.Attribute) -> Any:
        if isinstance(node.value, ast.Name) and node.value.id == self.ctx_name:
            return self.ctx_attr(node)
        obj = self.static(node, None)
        if isinstance(obj, bool) or isinstance(obj, int):
            return Imm(int(obj), type(obj) if isinstance(obj, Fixed) else int)
        if obj is None:
            base = self.expr(node.value)
            if isinstance(base.type, KPtr):
                return self.kernel_attr(node, base)
            return self.read_mem(self.member(base, node.attr, node))
        raise self.error(node, f"cannot read '{ast.unparse(node)}' in a BPF program")

    def e_Subscript(self, node: ast.Subscript) -> Any:
        base = node.value
        if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id == self.ctx_name:
            return self.ctx_array(node)
        if isinstance(self.static(base, None), MapDecl):
            return self.subscript_load(node)
        mem = self.expr(base)
        if not isinstance(mem, Mem):
            raise self.error(node, f"'{ast.unparse(base)}' cannot be indexed")
        return self.read_mem(self.element(mem, self.expr(node.slice), node))


def _op_hint(o: ast.AST) -> str:
    if isinstance(o, ast.Div):
        return "'/' is float division, which BPF does not have: use '//' (integer division)"
    if isinstance(o, ast.Pow):
        return "'**' is not supported: multiply, or shift for powers of two"
    if isinstance(o, ast.MatMult):
        return "'@' is not supported in a BPF program"
    return f"operator {type(o).__name__} is not supported"

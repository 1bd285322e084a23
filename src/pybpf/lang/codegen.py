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
from pybpf.lang.ctx import Field
from pybpf.lang.emit import Emitter, Imm, Reg, Tmp, bits_signed
from pybpf.lang.helpers import HELPERS
from pybpf.lang.maps import MapDecl
from pybpf.lang.types import Fixed, common_type, wrap

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

    def where(self, node: ast.AST) -> str:
        return f"{self.file}:{self.line(node)}:{getattr(node, 'col_offset', 0) + self.indent + 1}"


class Local:
    __slots__ = ("name", "type", "reg", "slot")

    def __init__(self, name: str, type: Any) -> None:
        self.name = name
        self.type = type
        self.reg: int | None = None
        self.slot: int | None = None


class FunctionCompiler(AccessMixin, Emitter):
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

    # -- errors ---------------------------------------------------------------------------------

    def error(self, node: ast.AST, msg: str) -> CompileError:
        return CompileError(f"{self.src.where(node)}: {msg}")

    # -- the function ---------------------------------------------------------------------------

    def compile(self) -> None:
        fn = self.src.node
        args = fn.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs or len(args.args) > 1:
            raise self.error(fn, "a BPF program takes one argument, its context: def prog(ctx) -> int")
        if args.args:
            self.ctx_name = args.args[0].arg
        self._scan(fn.body)
        self._assign_homes()
        self.cur_line = (self.src.line(fn), self.src.indent + 1, self.src.text(fn))
        if self.ctx_name is not None and self.locals[self.ctx_name].reg is not None:
            self.mov_reg(self.locals[self.ctx_name].reg, 1)
        self.block(fn.body)
        if not self.code or not self._ends_with_exit():
            self.emit(op.ALU64 | op.MOV | op.K, 0, imm=0)
            self.emit(op.JMP | op.EXIT)
        if self.max_stack > 512:
            raise self.error(fn, f"the program needs {self.max_stack} bytes of stack; BPF allows 512: "
                                 "move buffers into a PerCpuArray map")

    def _ends_with_exit(self) -> bool:
        last = self.code[-1]
        return not isinstance(last, str) and last.code == op.JMP | op.EXIT

    # -- locals: names, types, homes --------------------------------------------------------------

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

    def _assign_homes(self) -> None:
        order = sorted((loc for loc in self.locals.values()), key=lambda l: (
            l.name != self.ctx_name, -self.uses.get(l.name, 0)))
        regs = [6, 7, 8, 9]
        for loc in order:
            if loc.name == self.ctx_name and self.uses.get(loc.name, 0) == 0:
                continue
            if loc.type != "ctx" and not _is_int_type(loc.type):
                raise self.error(self.src.node, f"local '{loc.name}' has unsupported type {loc.type!r}")
            if regs:
                loc.reg = regs.pop(0)
            else:
                loc.slot = self.perm_alloc(8)

    def _type_expr(self, node: ast.AST) -> Any:
        obj = self.static(node)
        if isinstance(obj, type) and (issubclass(obj, Fixed) or obj is int or obj is bool):
            return obj
        raise self.error(node, f"unknown type annotation {ast.unparse(node)!r}: use u8..u64, i8..i64 or int")

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
        if default is not self._MISSING:
            return default
        raise self.error(node, f"unknown name '{ast.unparse(node)}'")

    # -- statements -----------------------------------------------------------------------------

    def block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.stmt(stmt)

    def stmt(self, node: ast.stmt) -> None:
        self.cur_line = (self.src.line(node), node.col_offset + self.src.indent + 1, self.src.text(node))
        self.stmt_stack = 0
        for t in list(self.live):
            self.release(t)
        self.free = [r for r in (1, 2, 3, 4, 5, 0)]
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
            if not _is_int_type(v.type):
                raise self.error(node, "a BPF program returns an integer")
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
            if loc.reg is not None:
                v = self.convert(self.expr(value), loc.type)
                self.into(v, loc.reg)
                self.release(v)
            else:
                v = self.convert(self.expr(value), loc.type)
                self.store(10, loc.slot, self.reg_of(v), 8)
                self.release(v)
            return
        if isinstance(target, ast.Subscript):
            self.subscript_store(target, value)
            return
        if isinstance(target, ast.Attribute):
            raise self.error(target, "assigning to attributes is not supported here")
        raise self.error(target, f"cannot assign to {ast.unparse(target)!r}")

    def s_AugAssign(self, node: ast.AugAssign) -> None:
        opname = _BINOPS.get(type(node.op))
        if opname is None:
            raise self.error(node, _op_hint(node.op))
        target = node.target
        if isinstance(target, ast.Name) and target.id in self.declared_global:
            self.augment_global(target, opname, node.value)
            return
        if isinstance(target, ast.Subscript):
            self.subscript_augment(target, opname, node.value)
            return
        if isinstance(target, ast.Name):
            loc = self.locals[target.id]
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

    def s_If(self, node: ast.If) -> None:
        else_label = self.new_label("else")
        self.branch(node.test, else_label, False)
        self.block(node.body)
        if node.orelse:
            end = self.new_label("endif")
            if not self._ends_with_exit():
                self.jump(end)
            self.place(else_label)
            self.block(node.orelse)
            self.place(end)
        else:
            self.place(else_label)

    def s_For(self, node: ast.For) -> None:
        it = node.iter
        if node.orelse:
            raise self.error(node, "for ... else is not supported")
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"
                and 1 <= len(it.args) <= 3 and not it.keywords):
            raise self.error(it, "only 'for i in range(...)' loops with constant bounds are supported")
        if not isinstance(node.target, ast.Name):
            raise self.error(node.target, "the loop variable must be a name")
        loc = self.locals[node.target.id]
        args = [self.expr(a) for a in it.args]
        start, stop, step = (Imm(0, int), args[0], Imm(1, int)) if len(args) == 1 else \
            (args[0], args[1], args[2] if len(args) == 3 else Imm(1, int))
        if not isinstance(stop, Imm) or not isinstance(step, Imm) or step.value == 0:
            raise self.error(it, "range() needs constant bounds and a non-zero constant step so that the "
                                 "verifier can prove the loop ends (use a module-level int constant)")
        self._set_local(loc, self.convert(start, loc.type))
        top, cont, end = self.new_label("for"), self.new_label("next"), self.new_label("endfor")
        self.place(top)
        cmp = "<" if step.value > 0 else ">"
        self.compare_jump(self.read_local(loc), self.convert(stop, loc.type), _NEG[cmp], end)
        self.loops.append((cont, end))
        self.block(node.body)
        self.loops.pop()
        self.place(cont)
        self.cur_line = (self.src.line(node), node.col_offset + self.src.indent + 1, self.src.text(node))
        self._set_local(loc, self.convert(self.arith("+", self.read_local(loc), step), loc.type))
        self.jump(top)
        self.place(end)

    def s_While(self, node: ast.While) -> None:
        if node.orelse:
            raise self.error(node, "while ... else is not supported")
        top, end = self.new_label("while"), self.new_label("endwhile")
        self.place(top)
        self.branch(node.test, end, False)
        self.loops.append((top, end))
        self.block(node.body)
        self.loops.pop()
        self.jump(top)
        self.place(end)

    def s_Break(self, node: ast.Break) -> None:
        if not self.loops:
            raise self.error(node, "'break' outside a loop")
        self.jump(self.loops[-1][1])

    def s_Continue(self, node: ast.Continue) -> None:
        if not self.loops:
            raise self.error(node, "'continue' outside a loop")
        self.jump(self.loops[-1][0])

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
        if not (_is_int_type(a.type) and _is_int_type(b.type)):
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
        return t

    def e_BinOp(self, node: ast.BinOp) -> Any:
        opname = _BINOPS.get(type(node.op))
        if opname is None:
            raise self.error(node, _op_hint(node.op))
        a = self.expr(node.left)
        b = self.expr(node.right)
        if not (_is_int_type(a.type) and _is_int_type(b.type)):
            raise self.error(node, "arithmetic needs integer operands")
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
        res = self.alloc(int)
        done = self.new_label("bool")
        self.mov_imm(res.reg, 1)
        self.branch(node, done, True)
        self.mov_imm(self.reg_of(res), 0)
        self.place(done)
        return res

    def e_BoolOp(self, node: ast.BoolOp) -> Any:
        # Python semantics: the value of the operand that decided
        is_and = isinstance(node.op, ast.And)
        t: Any = int
        for v in node.values:
            t = common_type(t, self.type_of(v))
        res = self.alloc(t)
        done = self.new_label("boolop")
        for i, v in enumerate(node.values):
            val = self.convert(self.expr(v), t)
            self.into(val, self.reg_of(res))
            self.release(val)
            if i < len(node.values) - 1:
                self.emit(op.JMP | (op.JEQ if is_and else op.JNE) | op.K, self.reg_of(res), reference=done)
        self.place(done)
        return res

    def e_IfExp(self, node: ast.IfExp) -> Any:
        t = common_type(self.type_of(node.body), self.type_of(node.orelse))
        res = self.alloc(t)
        other, done = self.new_label("ifexp"), self.new_label("endifexp")
        self.branch(node.test, other, False)
        v = self.convert(self.expr(node.body), t)
        self.into(v, self.reg_of(res))
        self.release(v)
        self.jump(done)
        self.place(other)
        v = self.convert(self.expr(node.orelse), t)
        self.into(v, self.reg_of(res))
        self.release(v)
        self.place(done)
        return res

    def e_Attribute(self, node: ast.Attribute) -> Any:
        if isinstance(node.value, ast.Name) and node.value.id == self.ctx_name:
            return self.ctx_attr(node)
        obj = self.static(node, None)
        if isinstance(obj, bool) or isinstance(obj, int):
            return Imm(int(obj), type(obj) if isinstance(obj, Fixed) else int)
        raise self.error(node, f"cannot read '{ast.unparse(node)}' in a BPF program")

    def e_Subscript(self, node: ast.Subscript) -> Any:
        base = node.value
        if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id == self.ctx_name:
            return self.ctx_array(node)
        return self.subscript_load(node)

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
        spec = HELPERS.get(callee) if _hashable(callee) else None
        if spec is not None:
            return self.helper_call(node, spec)
        if callee is float:
            raise self.error(node, "BPF has no floating point")
        raise self.error(func, f"'{ast.unparse(func)}' cannot be called from a BPF program")

    def helper_call(self, node: ast.Call, spec: Any) -> Any:
        if len(node.args) != spec.nargs:
            raise self.error(node, f"{ast.unparse(node.func)}() takes {spec.nargs} argument(s)")
        args = [self.expr(a) for a in node.args]
        self.call_with(spec.helper, args)
        res = self.take(0, spec.type)
        if spec.post == "hi32":
            self.emit(op.ALU64 | op.RSH | op.K, 0, imm=32)
        elif spec.post == "lo32":
            self.emit(op.ALU | op.MOV | op.X, 0, 0)
        return res

    def call_with(self, helper: int, args: list[Any]) -> None:
        """Move ``args`` into r1.. and call ``helper`` (live temporaries are spilled first)."""
        for i, a in enumerate(args):
            if isinstance(a, Tmp):
                self.reg_of(a)
        # free the argument registers of temporaries that are not going there
        targets = {i + 1 for i in range(len(args))}
        for t in list(self.live):
            if t.reg in targets and not any(t is a and t.reg == i + 1 for i, a in enumerate(args)):
                self._spill(t)
        for i, a in enumerate(args):
            self.into(a, i + 1)
            self.release(a)
        self.call_helper(helper)

    # -- ctx ------------------------------------------------------------------------------------

    def ctx_reg(self, node: ast.AST) -> int:
        loc = self.locals.get(self.ctx_name or "")
        if loc is None or loc.reg is None:
            raise self.error(node, "the context is not available here")
        return loc.reg

    def ctx_attr(self, node: ast.Attribute) -> Any:
        attr = node.attr
        if attr == "cookie":
            from pybpf._sys.uapi import HelperID

            self.spill_live()
            self.mov_reg(1, self.ctx_reg(node))
            self.call_helper(HelperID.get_attach_cookie)
            return self.take(0, _u64())
        field = self.unit.ctx_field(self, node, attr)
        if field.count:
            raise self.error(node, f"ctx.{attr} is an array of {field.count}: index it, ctx.{attr}[i]")
        return self._ctx_load(node, field.offset, field.type)

    def _ctx_load(self, node: ast.AST, offset: int, t: Any) -> Any:
        bits, signed = bits_signed(t)
        res = self.alloc(t)
        self.load(res.reg, self.ctx_reg(node), offset, bits // 8)
        if signed and bits < 64:
            self.normalize(res.reg, t)
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
            field = self.unit.ctx_arg(self, node, n.value)
            return self._ctx_load(node, field.offset, field.type)
        raise self.error(node, f"ctx.{attr}() is not known: use ctx.arg(n), ctx.ret, ctx.cookie or a field")

    # -- types without code (the local-variable pass) -------------------------------------------------

    def type_of(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return int
        if isinstance(node, ast.Name):
            loc = self.locals.get(node.id)
            if loc is not None and node.id not in self.declared_global:
                return loc.type
            v = self.globals.get(node.id)
            if isinstance(v, Fixed):
                from pybpf.lang.types import type_of_value

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
                return _u64() if func.attr == "arg" else int
            if isinstance(func, ast.Attribute):
                target = self.static(func.value, None)
                if isinstance(target, MapDecl):
                    return target.value if func.attr == "get" else int
            callee = self.static(func, None)
            if isinstance(callee, type) and issubclass(callee, Fixed):
                return callee
            spec = HELPERS.get(callee) if _hashable(callee) else None
            if spec is not None:
                return spec.type
            return int
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == self.ctx_name:
                if node.attr == "cookie":
                    return _u64()
                try:
                    return self.unit.ctx_field(self, node, node.attr).type
                except CompileError:
                    return int
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
        return int


def _u64() -> type:
    from pybpf.lang.types import u64

    return u64


def _tname(t: Any) -> str:
    return getattr(t, "__name__", str(t))


def _is_int_type(t: Any) -> bool:
    return t is int or t is bool or (isinstance(t, type) and issubclass(t, Fixed))


def _hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def _op_hint(o: ast.AST) -> str:
    if isinstance(o, ast.Div):
        return "'/' is float division, which BPF does not have: use '//' (integer division)"
    if isinstance(o, ast.Pow):
        return "'**' is not supported: multiply, or shift for powers of two"
    if isinstance(o, ast.MatMult):
        return "'@' is not supported in a BPF program"
    return f"operator {type(o).__name__} is not supported"

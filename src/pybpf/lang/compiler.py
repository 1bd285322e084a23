"""``pybpf.compile()``: decorated Python functions → :class:`~pybpf.object.spec.ObjectSpec`.

The spec is built directly (no ELF in between): programs as instruction
lists with func_info and line_info pointing at the Python source, maps
with BTF key/value types, global variables in ``.data``/``.bss``/``.rodata``
maps described by DATASEC types, and the BTF blob the loader hands to the
kernel.  Loading goes through the same loader as clang objects.

Example::

    spec = pybpf.compile(generic_probe)       # or compile(module), compile(p1, p2, ...)
    with spec.load() as obj:
        obj.programs["generic_probe"].attach_uprobe("/bin/x", "func_a", cookie=1)
"""

from __future__ import annotations

import ast
import types as _pytypes
from typing import Any, Iterable

from pybpf._sys.uapi import ProgType
from pybpf.errors import CompileError
from pybpf.lang import btfgen
from pybpf.lang.codegen import FunctionCompiler
from pybpf.lang.ctx import Field, ctx_fields, pt_regs_layout, tracepoint_fields
from pybpf.lang.maps import MapDecl
from pybpf.lang.programs import BPFProgram
from pybpf.lang.types import Fixed, is_const, type_of_value, u64

__all__ = ["compile_programs", "Unit"]

_U64_ARGS = {ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE, ProgType.TRACING, ProgType.SYSCALL}


class Unit:
    """What the programs of one object share: maps, global variables, the object's name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.maps: dict[str, MapDecl] = {}
        self._map_names: dict[int, str] = {}
        self.globals: dict[str, tuple[str, int, type, Any]] = {}   # name -> (section, offset, type, value)
        self.section_sizes: dict[str, int] = {".data": 0, ".bss": 0, ".rodata": 0}
        self.subprogs: dict[str, Any] = {}      # name -> compiled FunctionCompiler
        self._compiling: set[str] = set()
        self.log_formats: list[Any] = []

    # -- BPF functions and print() -----------------------------------------------------------------

    def subprog(self, fc: Any, fn: Any, node: ast.AST) -> Any:
        """The compiled BPF function ``fn`` (compiled on first use; recursion is an error)."""
        name = fn.__name__
        done = self.subprogs.get(name)
        if done is not None:
            if done.fn is not fn:
                raise fc.error(node, f"two different BPF functions are named '{name}'")
            return done
        if name in self._compiling:
            raise fc.error(node, f"'{name}' calls itself (directly or through other functions): BPF has no "
                                 "recursion; write a loop with a constant bound")
        self._compiling.add(name)
        try:
            sub = FunctionCompiler(self, fn, "subprog", None, name)
            try:
                sub.compile()
            except CompileError as exc:
                raise exc.add_context(f"function '{name}'")
        finally:
            self._compiling.discard(name)
        self.subprogs[name] = sub
        return sub

    def log_site(self, pieces: tuple, kinds: tuple, sep: str, where: str) -> int:
        from pybpf.lang.log import LOG_MAP, LOG_SIZE, LogFormat
        from pybpf.lang.maps import RingBuf

        if LOG_MAP not in self.maps:
            self.maps[LOG_MAP] = RingBuf(LOG_SIZE, name=LOG_MAP)
        self.log_formats.append(LogFormat(pieces, kinds, sep, where))
        return len(self.log_formats) - 1

    # -- maps ------------------------------------------------------------------------------------

    def map_name(self, decl: MapDecl, node: ast.AST, fc: Any) -> str:
        name = self._map_names.get(id(decl))
        if name is not None:
            return name
        name = decl.name
        if name is None:
            if isinstance(node, ast.Name):
                name = node.id
            elif isinstance(node, ast.Attribute):
                name = node.attr
            else:
                name = f"map{len(self.maps)}"
        if name in self.maps and self.maps[name] is not decl:
            raise fc.error(node, f"two different maps are named '{name}': give one name=... explicitly")
        self.maps[name] = decl
        self._map_names[id(decl)] = name
        decl.name = decl.name or name
        return name

    def record_type(self, decl: MapDecl, t: Any, node: ast.AST, fc: Any) -> None:
        """Remember what a ring buffer carries (the user-side reader decodes records with it)."""
        known = getattr(decl, "record", None)
        if known is not None and known is not t:
            raise fc.error(node, f"ring buffer '{decl.name}' already carries {getattr(known, '__name__', known)} "
                                 f"records; use one record type per ring buffer")
        decl.record = t

    # -- global variables --------------------------------------------------------------------------

    def global_var(self, fc: Any, name: str, node: ast.AST) -> tuple[str, int, type]:
        value = fc.globals.get(name)
        if not isinstance(value, Fixed):
            if name in fc.globals:
                raise fc.error(node, f"global '{name}' must hold a pybpf integer to live in BPF global data: "
                                     f"{name} = u64({fc.globals[name]!r}) (or Const(u64, ...) for read-only)")
            raise fc.error(node, f"'global {name}': no module-level variable '{name}' "
                                 f"(declare it, e.g. {name} = u64(0))")
        known = self.globals.get(name)
        if known is not None:
            return known[0], known[1], known[2]
        t = type_of_value(value)
        section = ".rodata" if is_const(value) else (".data" if int(value) else ".bss")
        size = t.bits // 8
        off = (self.section_sizes[section] + size - 1) // size * size
        self.section_sizes[section] = off + size
        self.globals[name] = (section, off, t, value)
        return section, off, t

    # -- ctx ---------------------------------------------------------------------------------------

    def ctx_field(self, fc: Any, node: ast.AST, attr: str) -> Field:
        kind, ptype = fc.kind, _prog_type(fc)
        if ptype == ProgType.TRACEPOINT:
            if not fc.target:
                raise fc.error(node, "ctx fields of a tracepoint need its name: "
                                     "@tracepoint(\"category/name\")")
            try:
                fields = tracepoint_fields(fc.target)
            except OSError as exc:
                raise fc.error(node, f"cannot read the format of tracepoint '{fc.target}': "
                                     f"{exc.strerror or exc}") from None
            except Exception as exc:  # a LinkError from tracefs mounting
                if isinstance(exc, CompileError):
                    raise
                raise fc.error(node, f"cannot read the format of tracepoint '{fc.target}': {exc}") from None
            f = fields.get(attr)
            if f is None:
                known = ", ".join(k for k in fields if not k.startswith("common_"))
                raise fc.error(node, f"tracepoint '{fc.target}' has no field '{attr}' (fields: {known})")
            return f
        if ptype == ProgType.KPROBE:
            regs, _args, ret = pt_regs_layout()
            if attr == "ret":
                return Field(regs[ret], u64)
            if attr in regs:
                return Field(regs[attr], u64)
            raise fc.error(node, f"ctx.{attr}: a {kind} context has ctx.arg(n), ctx.ret, ctx.cookie and the "
                                 f"registers ({', '.join(regs)})")
        fields = ctx_fields(ptype)
        if attr in fields:
            return fields[attr]
        raise fc.error(node, f"a {kind} program's context has no field '{attr}'"
                       + (f" (fields: {', '.join(fields)})" if fields else ""))

    def ctx_arg(self, fc: Any, node: ast.AST, n: int) -> Field:
        ptype = _prog_type(fc)
        if ptype == ProgType.KPROBE and fc.kind != "usdt":
            regs, args, _ret = pt_regs_layout()
            if not 0 <= n < len(args):
                raise fc.error(node, f"ctx.arg({n}): only the first {len(args)} arguments are in registers")
            return Field(regs[args[n]], u64)
        if ptype in _U64_ARGS:
            if not 0 <= n < 12:
                raise fc.error(node, f"ctx.arg({n}): at most 12 arguments")
            return Field(8 * n, u64)
        raise fc.error(node, f"ctx.arg() is for probes and tracing programs, not {fc.kind} programs")


def _prog_type(fc: Any) -> Any:
    from pybpf.object.sections import SECTION_RULES

    rule = SECTION_RULES.get(fc.kind)
    return rule[0] if rule is not None else None


def _collect(items: Iterable[Any]) -> list[BPFProgram]:
    progs: list[BPFProgram] = []
    for item in items:
        if isinstance(item, BPFProgram):
            progs.append(item)
        elif isinstance(item, _pytypes.ModuleType):
            progs.extend(v for v in vars(item).values() if isinstance(v, BPFProgram))
        elif callable(item):
            raise CompileError(f"{getattr(item, '__name__', item)!r} is not a BPF program: decorate it "
                               "(@uprobe, @tracepoint(\"cat/name\"), @xdp, ...)")
        else:
            raise CompileError(f"compile() takes decorated functions or modules, not {type(item).__name__}")
    if not progs:
        raise CompileError("compile(): no BPF programs given")
    seen: set[str] = set()
    for p in progs:
        if p.name in seen:
            raise CompileError(f"two programs are named '{p.name}'")
        seen.add(p.name)
    return progs


def compile_programs(*items: Any, name: str | None = None, license: str = "GPL") -> Any:
    """Compile decorated functions (or every program of a module) into one ObjectSpec."""
    progs = _collect(items)
    obj_name = name or progs[0].name
    unit = Unit(obj_name)
    compiled = []
    for p in progs:  # grows while compiling (tail-call targets)
        fc = FunctionCompiler(unit, p.fn, p.kind, p.target, p.name)
        try:
            fc.compile()
        except RecursionError:
            raise CompileError(f"program '{p.name}': expression too deeply nested") from None
        except CompileError as exc:
            raise exc.add_context(f"program '{p.name}'")
        compiled.append((p, fc))
        # programs placed in a ProgArray are part of the object too
        for decl in list(unit.maps.values()):
            for target in getattr(decl, "programs", {}).values():
                if isinstance(target, BPFProgram) and target not in progs:
                    progs.append(target)
    return btfgen.build_spec(unit, compiled, license)


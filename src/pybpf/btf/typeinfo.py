"""Questions about BTF types: what a type resolves to, its size and alignment, its C name.

These work on the model of :mod:`pybpf.btf.types` (and are importable from
there too): :func:`resolve` skips typedefs and qualifiers, :func:`sizeof` and
:func:`alignof` follow libbpf's rules, :func:`type_name` renders a C
declaration, :func:`essential_name` drops a CO-RE ``___flavor`` suffix and
:func:`shallow_key` describes a type by ids for comparing specs.  Every
function stops on a cyclic chain (possible only in malformed BTF) with an
:class:`~pybpf.errors.ObjectError` (or, for :func:`type_name`, "(cycle)").

Example::

    >>> from pybpf.btf.types import Array, Int, IntEncoding, Member, Pointer, Struct, Typedef
    >>> s32 = Int("int", 4, IntEncoding.SIGNED)
    >>> point = Struct("point", 8, [Member("x", s32, 0), Member("y", s32, 32)])
    >>> sizeof(Array(point, None, 3)), alignof(point)
    (24, 4)
    >>> type_name(Pointer(Typedef("point_t", point)), "p")
    'point_t *p'
    >>> resolve(Typedef("point_t", point)) is point
    True
"""

from __future__ import annotations

from pybpf.errors import ObjectError
from pybpf.btf.types import (
    _MAX_CHAIN, POINTER_SIZE, Array, Composite, Const, Datasec, DeclTag, Enum, Float, Func, FuncProto, Fwd,
    Int, Pointer, Qualifier, Restrict, Struct, Type, Typedef, TypeTag, Union, Var, Void, Volatile,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["resolve", "sizeof", "alignof", "type_name", "essential_name", "shallow_key"]


def resolve(t: Type) -> Type:
    """Skip typedefs, const, volatile, restrict and type tags.

    >>> from pybpf.btf.types import Const, Int, Typedef
    >>> u32 = Int("unsigned int", 4)
    >>> resolve(Const(Typedef("u32", u32))) is u32
    True
    """
    if not isinstance(t, _ALIASES):   # (most types are not an alias)
        return t
    for _ in range(_MAX_CHAIN):
        if not isinstance(t, _ALIASES):
            return t
        t = t.type
    raise ObjectError(f"type chain through typedefs/qualifiers is too long or cyclic (at {t!r})")


_ALIASES = (Typedef, Qualifier)
_SIZED = (Int, Enum, Composite, Float, Datasec)


def sizeof(t: Type) -> int:
    """Size in bytes of a value of type ``t`` (ObjectError for void, functions, fwd).

    >>> from pybpf.btf.types import Array, Int, Pointer
    >>> sizeof(Array(Int("short", 2), None, 10)), sizeof(Pointer(Int("char", 1)))
    (20, 8)
    """
    if isinstance(t, _SIZED):   # (the usual case, without the walk)
        return t.size
    mult = 1
    orig = t
    for _ in range(_MAX_CHAIN):
        if isinstance(t, _SIZED):
            return mult * t.size
        if isinstance(t, Pointer):
            return mult * POINTER_SIZE
        if isinstance(t, Array):
            mult *= t.nelems
            t = t.elem
        elif isinstance(t, (Typedef, Qualifier, Var)):
            t = t.type
        else:
            raise ObjectError(f"{type_name(orig)}: type has no size ({t.kind.name})")
    raise ObjectError(f"{orig!r}: type chain is too long or cyclic")


def alignof(t: Type) -> int:
    """Alignment in bytes, computed the way libbpf's btf__align_of does (packed structs: 1).

    >>> from pybpf.btf.types import Int, Member, Struct
    >>> alignof(Struct("s", 16, [Member("a", Int("char", 1)), Member("b", Int("long", 8), 64)]))
    8
    """
    return _alignof(t, 0)


def _alignof(t: Type, depth: int) -> int:
    if depth > _MAX_CHAIN:
        raise ObjectError(f"{t!r}: type chain is too long or cyclic")
    t = resolve(t)
    if isinstance(t, (Int, Enum, Float)):
        return max(1, min(POINTER_SIZE, t.size))
    if isinstance(t, Pointer):
        return POINTER_SIZE
    if isinstance(t, Array):
        return _alignof(t.elem, depth + 1)
    if isinstance(t, Var):
        return _alignof(t.type, depth + 1)
    if isinstance(t, Composite):
        best = 1
        for m in t.members:
            a = _alignof(m.type, depth + 1)
            if not m.bitfield_size and m.bit_offset % (8 * a):
                return 1        # a member off its natural alignment: packed
            best = max(best, a)
        if t.size % best:
            return 1
        return best
    raise ObjectError(f"{type_name(t)}: type has no alignment ({t.kind.name})")


def essential_name(name: str) -> str:
    """``name`` without a CO-RE flavor suffix: "task_struct___old" -> "task_struct".

    >>> essential_name("task_struct___old"), essential_name("pid")
    ('task_struct', 'pid')
    """
    i = len(name) - 5
    while i >= 0:
        if (name[i] != "_" and name[i + 1:i + 4] == "___" and name[i + 4] != "_"):
            return name[:i + 1]
        i -= 1
    return name


def _base_name(t: Type) -> str:
    if isinstance(t, Void):
        return "void"
    if isinstance(t, Struct):
        return f"struct {t.name or '(anon)'}"
    if isinstance(t, Union):
        return f"union {t.name or '(anon)'}"
    if isinstance(t, Enum):
        return f"enum {t.name or '(anon)'}"
    if isinstance(t, Fwd):
        return f"{'union' if t.is_union else 'struct'} {t.name}"
    if isinstance(t, Datasec):
        return f"SEC(\"{t.name}\")"
    if isinstance(t, DeclTag):
        return f"btf_decl_tag(\"{t.name}\")"
    return t.name or f"({t.kind.name.lower()})"


def type_name(t: Type, name: str = "") -> str:
    """A C declaration of ``name`` with type ``t``; with no name, the C type name.

    >>> type_name(Pointer(Struct("task_struct", 0)))
    'struct task_struct *'

    Never loops: a cyclic chain (only possible in malformed BTF) prints as "(cycle)".
    """
    return _type_name(t, name, 0)


def _type_name(t: Type, name: str, depth: int) -> str:
    if depth > 16:
        return "..."
    decl = name
    quals: list[str] = []
    tags: list[str] = []
    for _ in range(_MAX_CHAIN):
        if isinstance(t, Func):
            decl = t.name if not decl else decl
            t = t.proto
            continue
        if isinstance(t, Var):
            decl = decl or t.name
            t = t.type
            continue
        if isinstance(t, (Const, Volatile, Restrict)):
            quals.append(t.kind.name.lower())
            t = t.type
            continue
        if isinstance(t, TypeTag):
            tags.append(t.name if t.attribute else f"btf_type_tag(\"{t.name}\")")
            t = t.type
            continue
        if isinstance(t, Pointer):
            q = " ".join(quals + [f"__attribute__(({tag}))" for tag in tags])
            decl = "*" + (q + (" " if decl else "") if q else "") + decl
            quals, tags = [], []
            t = t.target
            continue
        if isinstance(t, Array):
            if decl.startswith("*"):
                decl = f"({decl})"
            decl = f"{decl}[{t.nelems}]"
            t = t.elem
            continue
        if isinstance(t, FuncProto):
            if decl.startswith("*"):
                decl = f"({decl})"
            params = []
            for p in t.params:
                pt = p.type
                params.append("..." if isinstance(pt, Void) and not p.name
                              else _type_name(pt, p.name, depth + 1))
            decl = f"{decl}({', '.join(params) or 'void'})"
            t = t.ret
            continue
        base = " ".join([*quals, _base_name(t), *(f"__attribute__(({tag}))" for tag in tags)])
        if not decl:
            return base
        return base + ("" if decl.startswith("[") else " ") + decl
    return f"(cycle) {decl}".rstrip()


def shallow_key(t: Type) -> tuple:
    """A hashable description of ``t`` with references as type ids.

    Two types from specs in the same id order describe the same BTF when their
    keys are equal; used to compare a spec with its re-encoded copy.

    >>> from pybpf.btf.types import Int
    >>> shallow_key(Int("int", 4)) == shallow_key(Int("int", 4))
    True
    """
    key: list[Any] = [int(t.kind), t.name]
    if isinstance(t, Int):
        key += [t.size, int(t.encoding), t.bits, t.offset]
    elif isinstance(t, Array):
        key += [t.elem_id, t.index_type_id, t.nelems]
    elif isinstance(t, Composite):
        key += [t.size, tuple((m.name, m.type_id, m.bit_offset, m.bitfield_size) for m in t.members)]
    elif isinstance(t, Enum):
        key += [t.size, t.signed, tuple(t.values)]
    elif isinstance(t, Fwd):
        key.append(t.is_union)
    elif isinstance(t, Func):
        key += [t.proto_id, int(t.linkage)]
    elif isinstance(t, FuncProto):
        key += [t.ret_id, tuple((p.name, p.type_id) for p in t.params)]
    elif isinstance(t, Var):
        key += [t.type_id, int(t.linkage)]
    elif isinstance(t, Datasec):
        key += [t.size, tuple((v.var_id, v.offset, v.size) for v in t.vars)]
    elif isinstance(t, Float):
        key.append(t.size)
    elif isinstance(t, DeclTag):
        key += [t.type_id, t.component_idx, t.attribute]
    elif isinstance(t, TypeTag):
        key += [t.type_id, t.attribute]
    elif isinstance(t, Pointer):
        key.append(t.target_id)
    elif isinstance(t, (Typedef, Qualifier)):
        key.append(t.type_id)
    return tuple(key)

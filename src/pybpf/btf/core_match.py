"""CO-RE matching: access specs, candidate search and type compatibility.

The relocation engine in :mod:`pybpf.btf.core` asks three questions, all
answered here without touching instructions:

1. *What does the program access?*  :func:`parse_access` turns a relocation's
   root type and access string ("0:1:2") into an :class:`AccessSpec`: the
   raw indexes, the "meaningful" accessors (named members, array indexes and
   enumerators; anonymous struct/union members are walked through but not
   recorded) and the bit offset in the local BTF.
2. *Which target types could it mean?*  :func:`find_candidates` looks the
   root's essential name (``task_struct___old`` -> ``task_struct``) up in the
   target's name index, keeping the types of a compatible kind.  Against the
   running kernel it searches vmlinux first and the modules' BTF only when
   vmlinux has no candidate at all (the order libbpf uses).
3. *Does a candidate fit?*  :func:`match_field` finds each named member by
   name (descending into anonymous members), checks that local and target
   fields have compatible types and rebuilds the spec in the target;
   :func:`match_enumval` finds an enumerator by essential name;
   :func:`types_are_compat` (TYPE_EXISTS, TYPE_SIZE, TYPE_ID_TARGET) and
   :func:`types_match` (TYPE_MATCHES, clang 15 / libbpf 1.1) compare
   whole types.

The rules are the ones libbpf applies (tools/lib/bpf/relo_core.c), so a
program relocates the same way under pybpf as under libbpf.

Example::

    local = parse_access(prog_btf, prog_btf.type_by_id(5), CoreRelocKind.FIELD_BYTE_OFFSET, "0:93")
    for cand in find_candidates(local.root, None):            # None: the running kernel
        target, why = match_field(local, cand)
        print(cand.origin, target.bit_offset // 8 if target else why)
"""

from __future__ import annotations

import os
from _thread import allocate_lock   # threading.Lock itself, without importing threading
import weakref
from collections import namedtuple

from pybpf._record import Record
from pybpf.errors import ObjectError
from pybpf.btf import kernel
from pybpf.btf.reader import CoreRelocKind, Spec
from pybpf.btf.types import (
    Array, Composite, Enum, Float, FuncProto, Fwd, Int, IntEncoding, Pointer, Struct, Type, Union, Void,
)
from pybpf.btf.typeinfo import essential_name, resolve, sizeof, type_name

__all__ = [
    "FIELD_KINDS", "TYPE_KINDS", "ENUMVAL_KINDS", "MAX_SPEC_LEN",
    "Accessor", "AccessSpec", "Candidate", "parse_access", "find_candidates", "clear_candidate_cache",
    "match_field", "match_enumval", "types_are_compat", "types_match", "describe",
]

#: Longest access string (and deepest member search) accepted, as in libbpf.
MAX_SPEC_LEN = 64
# Recursion limit of the whole-type comparisons (libbpf uses 32 as well).
_MAX_DEPTH = 32

FIELD_KINDS = frozenset({
    CoreRelocKind.FIELD_BYTE_OFFSET, CoreRelocKind.FIELD_BYTE_SIZE, CoreRelocKind.FIELD_EXISTS,
    CoreRelocKind.FIELD_SIGNED, CoreRelocKind.FIELD_LSHIFT_U64, CoreRelocKind.FIELD_RSHIFT_U64,
})
TYPE_KINDS = frozenset({
    CoreRelocKind.TYPE_ID_LOCAL, CoreRelocKind.TYPE_ID_TARGET, CoreRelocKind.TYPE_EXISTS,
    CoreRelocKind.TYPE_SIZE, CoreRelocKind.TYPE_MATCHES,
})
ENUMVAL_KINDS = frozenset({CoreRelocKind.ENUMVAL_EXISTS, CoreRelocKind.ENUMVAL_VALUE})


# --------------------------------------------------------------------------- access specs


class Accessor(Record):
    """One meaningful step of an access.

    For a named member, ``type`` is the struct/union holding it and ``index``
    the member's position; for an array index (and the root's ``[n]``),
    ``type`` is the element type and ``name`` is None; for an enumerator,
    ``type`` is the enum and ``name`` the enumerator's name.  Types are
    resolved (no typedefs or qualifiers).

    >>> Accessor(Struct("task_struct", 4, []), 0, "pid").name
    'pid'
    """

    __slots__ = ("type", "index", "name")

    def __init__(self, type: Type, index: int, name: str | None) -> None:
        self.type = type
        self.index = index
        self.name = name


class AccessSpec(Record):
    """A relocation's access in one BTF: root, accessors, raw indexes, bit offset.

    >>> from pybpf.btf import Int, IntEncoding, Member, Struct, encode_btf
    >>> i32 = Int("int", 4, IntEncoding.SIGNED)
    >>> local = Spec.parse(encode_btf([Struct("task_struct", 4, [Member("pid", i32)])]))
    >>> spec = parse_access(local, local.type_by_id(1), CoreRelocKind.FIELD_BYTE_OFFSET, "0:0")
    >>> describe(spec), spec.raw
    ('task_struct.pid', [0, 0])
    """

    __slots__ = ("spec", "root", "kind", "accessors", "raw", "bit_offset")

    def __init__(self, spec: Spec, root: Type, kind: CoreRelocKind, accessors: list[Accessor] | None = None,
                 raw: list[int] | None = None, bit_offset: int = 0) -> None:
        self.spec = spec
        self.root = root
        self.kind = kind
        self.accessors = [] if accessors is None else accessors
        self.raw = [] if raw is None else raw
        self.bit_offset = bit_offset


class Candidate(namedtuple("Candidate", ("origin", "spec", "type"))):
    """A target type that may correspond to a local root type.

    ``origin`` is "vmlinux", a module's name, or "target" for a spec passed by the caller.

    >>> from pybpf.btf import Int, IntEncoding, Member, Struct, encode_btf
    >>> i32 = Int("int", 4, IntEncoding.SIGNED)
    >>> local = Spec.parse(encode_btf([Struct("task_struct", 4, [Member("pid", i32)])]))
    >>> [(c.origin, c.type.name) for c in find_candidates(local.type_by_id(1), None)]
    [('vmlinux', 'task_struct')]
    """

    __slots__ = ()
    origin: str
    spec: Spec
    type: Type


def _kinds_compat(a: Type, b: Type) -> bool:
    """Same BTF kind, where ENUM and ENUM64 count as one."""
    return a.kind == b.kind or (isinstance(a, Enum) and isinstance(b, Enum))


def _is_flex_array(prev: Accessor | None, arr: Array) -> bool:
    """A zero-length array that is the last member of its struct (``char data[]``)."""
    if prev is None or prev.name is None or arr.nelems:
        return False
    holder = prev.type
    return isinstance(holder, Composite) and prev.index == len(holder.members) - 1


def _parse_indexes(access_str: str) -> list[int]:
    if not isinstance(access_str, str):
        raise ObjectError(f"access string must be text, not {type(access_str).__name__}")
    parts = access_str.split(":")
    if not access_str or any(not p.isdigit() or not p.isascii() for p in parts):
        raise ObjectError(f"malformed access string {access_str!r} (want indexes such as \"0:1:2\")")
    if len(parts) > MAX_SPEC_LEN:
        raise ObjectError(f"access string {access_str!r} is longer than {MAX_SPEC_LEN} steps")
    return [int(p) for p in parts]


def parse_access(spec: Spec, root: Type, kind: CoreRelocKind, access_str: str) -> AccessSpec:
    """Build the local :class:`AccessSpec` of a relocation (ObjectError if it is malformed).

    >>> from pybpf.btf import Int, IntEncoding, Member, Struct, encode_btf
    >>> i32 = Int("int", 4, IntEncoding.SIGNED)
    >>> local = Spec.parse(encode_btf([Struct("task_struct", 4, [Member("pid", i32)])]))
    >>> [a.name for a in parse_access(local, local.type_by_id(1), CoreRelocKind.FIELD_EXISTS, "0:0").accessors]
    [None, 'pid']
    """
    out = AccessSpec(spec, root, kind)
    if kind in TYPE_KINDS:
        if access_str != "0":
            raise ObjectError(f"type-based relocation with access string {access_str!r} (want \"0\")")
        return out
    raw = _parse_indexes(access_str)
    out.raw = raw
    t = resolve(root)
    if kind in ENUMVAL_KINDS:
        if not isinstance(t, Enum):
            raise ObjectError(f"enum value relocation on {type_name(t)}, which is not an enum")
        if len(raw) != 1 or raw[0] >= len(t.values):
            raise ObjectError(f"access string {access_str!r} does not name an enumerator of "
                              f"{type_name(t)} ({len(t.values)} values)")
        out.accessors.append(Accessor(t, raw[0], t.values[raw[0]].name))
        return out
    if kind not in FIELD_KINDS:
        raise ObjectError(f"unknown relocation kind {kind!r}")
    out.accessors.append(Accessor(t, raw[0], None))
    out.bit_offset = raw[0] * sizeof(t) * 8
    cur: Type = t
    for step, idx in enumerate(raw[1:], 1):
        t = resolve(cur)
        if isinstance(t, Composite):
            if idx >= len(t.members):
                raise ObjectError(f"access string {access_str!r}: step {step} selects member {idx} "
                                  f"of {type_name(t)}, which has {len(t.members)}")
            m = t.members[idx]
            out.bit_offset += m.bit_offset
            if m.name:
                out.accessors.append(Accessor(t, idx, m.name))
            cur = m.type
        elif isinstance(t, Array):
            elem = resolve(t.elem)
            if not _is_flex_array(out.accessors[-1], t) and idx >= t.nelems:
                raise ObjectError(f"access string {access_str!r}: step {step} indexes element {idx} "
                                  f"of an array of {t.nelems}")
            out.accessors.append(Accessor(elem, idx, None))
            out.bit_offset += idx * sizeof(elem) * 8
            cur = elem
        else:
            raise ObjectError(f"access string {access_str!r}: step {step} indexes into "
                              f"{type_name(t)} ({t.kind.name}), which has neither members nor elements")
    return out


def describe(spec: AccessSpec) -> str:
    """A C-like path of the access: ``task_struct.real_parent``, ``pid_type::PIDTYPE_TGID``, ``struct foo``.

    >>> from pybpf.btf import Int, IntEncoding, Member, Struct, encode_btf
    >>> i32 = Int("int", 4, IntEncoding.SIGNED)
    >>> local = Spec.parse(encode_btf([Struct("task_struct", 4, [Member("pid", i32)])]))
    >>> describe(parse_access(local, local.type_by_id(1), CoreRelocKind.FIELD_BYTE_OFFSET, "0:0"))
    'task_struct.pid'
    """
    root = resolve(spec.root) if spec.kind not in TYPE_KINDS else spec.root
    if spec.kind in TYPE_KINDS:
        return type_name(root)
    name = root.name or f"(anon {type_name(root)})"
    if spec.kind in ENUMVAL_KINDS:
        return f"{name}::{spec.accessors[0].name}"
    text = name
    if spec.raw and spec.raw[0]:
        text += f"[{spec.raw[0]}]"
    for acc in spec.accessors[1:]:
        text += f".{acc.name}" if acc.name is not None else f"[{acc.index}]"
    return text


# --------------------------------------------------------------------------- candidate search

# target Spec -> {(essential name, include_base): [types]}.  Keyed weakly, so a spec
# dropped by kernel.clear_cache() takes its entries with it.
_name_cache: "weakref.WeakKeyDictionary[Spec, dict[tuple[str, bool], list[Type]]]" = weakref.WeakKeyDictionary()
_cache_lock = allocate_lock()


def _by_essential_name(spec: Spec, name: str, include_base: bool) -> list[Type]:
    with _cache_lock:
        per_spec = _name_cache.get(spec)
        if per_spec is None:
            per_spec = _name_cache[spec] = {}
    key = (name, include_base)
    found = per_spec.get(key)
    if found is None:
        found = spec.types_by_essential_name(name, include_base=include_base)
        per_spec[key] = found
    return found


def clear_candidate_cache() -> None:
    """Forget the cached name look-ups (they go away with their spec anyway).

    >>> clear_candidate_cache()      # after kernel_spec() was cleared, or modules came and went
    """
    with _cache_lock:
        _name_cache.clear()


def find_candidates(local: Type, target: Spec | None) -> list[Candidate]:
    """Target types named like ``local`` (flavors ignored) and of a compatible kind.

    ``target=None`` searches the running kernel: vmlinux first, then, only if
    vmlinux has no candidate, the BTF of every loaded module (Linux 5.11).

    >>> from pybpf.btf import Int, IntEncoding, Member, Struct, encode_btf
    >>> i32 = Int("int", 4, IntEncoding.SIGNED)
    >>> local = Spec.parse(encode_btf([Struct("task_struct", 4, [Member("pid", i32)])]))
    >>> [c.origin for c in find_candidates(local.type_by_id(1), None)]     # None: the running kernel
    ['vmlinux']
    """
    name = essential_name(local.name)
    if target is not None:
        return [Candidate("target", target, t) for t in _by_essential_name(target, name, True)
                if t.name and _kinds_compat(local, t)]
    vmlinux = kernel.kernel_spec()
    out = [Candidate("vmlinux", vmlinux, t) for t in _by_essential_name(vmlinux, name, True)
           if t.name and _kinds_compat(local, t)]
    if out:
        return out
    for mod in kernel.module_names():
        try:
            mspec = kernel.module_spec(mod)
        except ObjectError:
            if not os.path.exists(os.path.join(kernel.BTF_DIR, mod)):
                continue        # unloaded while we looked
            raise
        out.extend(Candidate(mod, mspec, t) for t in _by_essential_name(mspec, name, False)
                   if t.name and _kinds_compat(local, t))
    return out


# --------------------------------------------------------------------------- field matching


def _fields_compat(local: Type, targ: Type) -> bool:
    """Whether a local field type may be relocated onto a target field type."""
    for _ in range(_MAX_DEPTH):
        local, targ = resolve(local), resolve(targ)
        if isinstance(local, Composite) and isinstance(targ, Composite):
            return True             # struct vs union is fine: only their members are accessed
        if not _kinds_compat(local, targ):
            return False
        if isinstance(local, (Pointer, Float)):
            return True
        if isinstance(local, (Fwd, Enum)):
            a, b = essential_name(local.name), essential_name(targ.name)
            return not a or not b or a == b
        if isinstance(local, Int):
            # only the old-style bitfield integers (BTF_INT_OFFSET != 0) are refused
            return local.offset == 0 and targ.offset == 0  # type: ignore[attr-defined]
        if isinstance(local, Array):
            local, targ = local.elem, targ.elem  # type: ignore[attr-defined]
            continue
        return False
    raise ObjectError(f"array nesting deeper than {_MAX_DEPTH} levels in {type_name(local)}")


def _match_member(name: str, local_type: Type, holder: Type, out: AccessSpec,
                  why: list[str]) -> Type | None:
    """Find member ``name`` in ``holder`` (descending into anonymous members).

    On success the accessor, raw indexes and bit offset are added to ``out``
    and the member's type is returned; otherwise ``out`` is left as it was.
    """
    holder = resolve(holder)
    if not isinstance(holder, Composite):
        return None
    for i, m in enumerate(holder.members):
        if len(out.raw) >= MAX_SPEC_LEN:
            raise ObjectError(f"member search for {name!r} nests deeper than {MAX_SPEC_LEN} levels")
        out.bit_offset += m.bit_offset
        out.raw.append(i)
        if not m.name:
            found = _match_member(name, local_type, m.type, out, why)
            if found is not None:
                return found
        elif m.name == name:
            if _fields_compat(local_type, m.type):
                out.accessors.append(Accessor(holder, i, name))
                return m.type
            why.append(f"field {name!r} is {type_name(m.type)} in {type_name(holder)}, "
                       f"which does not fit the local {type_name(local_type)}")
            out.bit_offset -= m.bit_offset
            out.raw.pop()
            return None
        out.bit_offset -= m.bit_offset
        out.raw.pop()
    return None


def match_field(local: AccessSpec, cand: Candidate) -> tuple[AccessSpec | None, str]:
    """The target spec of a field access on ``cand``, or (None, why it does not fit).

    >>> from pybpf.btf import Int, IntEncoding, Member, Struct, encode_btf
    >>> i32 = Int("int", 4, IntEncoding.SIGNED)
    >>> local = Spec.parse(encode_btf([Struct("task_struct", 4, [Member("pid", i32)])]))
    >>> spec = parse_access(local, local.type_by_id(1), CoreRelocKind.FIELD_BYTE_OFFSET, "0:0")
    >>> target, why = match_field(spec, find_candidates(local.type_by_id(1), None)[0])
    >>> target.bit_offset % 8, why
    (0, '')
    """
    out = AccessSpec(cand.spec, cand.type, local.kind)
    cur: Type = cand.type
    why: list[str] = []
    for i, acc in enumerate(local.accessors):
        targ = resolve(cur)
        if acc.name is not None:
            local_holder = acc.type
            assert isinstance(local_holder, Composite)
            local_member = local_holder.members[acc.index]
            found = _match_member(acc.name, local_member.type, targ, out, why)
            if found is None:
                if not why:
                    why.append(f"{type_name(targ)} has no field {acc.name!r}")
                return None, why[0]
            cur = found
            continue
        if i > 0:
            if not isinstance(targ, Array):
                return None, f"{type_name(targ)} is not an array"
            prev = out.accessors[-1] if out.accessors else None
            if not _is_flex_array(prev, targ) and acc.index >= targ.nelems:
                return None, f"index {acc.index} is out of range of {type_name(targ)}"
            targ = resolve(targ.elem)
        if len(out.raw) >= MAX_SPEC_LEN:
            raise ObjectError(f"access nests deeper than {MAX_SPEC_LEN} levels")
        out.accessors.append(Accessor(targ, acc.index, None))
        out.raw.append(acc.index)
        out.bit_offset += acc.index * sizeof(targ) * 8
        cur = targ
    return out, ""


def match_enumval(local: AccessSpec, cand: Candidate) -> tuple[AccessSpec | None, str]:
    """The target spec of an enumerator (matched by essential name), or (None, why).

    >>> from pybpf.btf import Enum, encode_btf
    >>> local = Spec.parse(encode_btf([Enum("bpf_map_type", 4, [("BPF_MAP_TYPE_RINGBUF", 0)])]))
    >>> spec = parse_access(local, local.type_by_id(1), CoreRelocKind.ENUMVAL_VALUE, "0")
    >>> target, why = match_enumval(spec, find_candidates(local.type_by_id(1), None)[0])
    >>> target.accessors[0].type.value("BPF_MAP_TYPE_RINGBUF")
    27
    """
    targ = resolve(cand.type)
    if not isinstance(targ, Enum):
        return None, f"{type_name(targ)} is not an enum"
    want = essential_name(local.accessors[0].name or "")
    for i, (name, _value) in enumerate(targ.values):
        if essential_name(name) == want:
            out = AccessSpec(cand.spec, cand.type, local.kind, [Accessor(targ, i, name)], [i])
            return out, ""
    return None, f"{type_name(targ)} has no value {want}"


# --------------------------------------------------------------------------- whole types


def types_are_compat(local: Type, targ: Type, level: int = _MAX_DEPTH) -> bool:
    """Loose compatibility of two types whose names already match (TYPE_EXISTS/SIZE/ID_TARGET).

    Structs, unions, enums and forward declarations match by name only;
    pointers and arrays compare what they point to / hold; integers match
    unless one is an old-style bitfield integer; function prototypes need as
    many parameters, each compatible, and a compatible return type.

    >>> from pybpf.btf import Int, IntEncoding, Pointer
    >>> types_are_compat(Int("int", 4, IntEncoding.SIGNED), Int("long", 8, IntEncoding.SIGNED))
    True
    >>> types_are_compat(Int("int", 4), Pointer(Int("int", 4)))
    False
    """
    if not _kinds_compat(local, targ):
        return False
    for _ in range(_MAX_DEPTH):
        local, targ = resolve(local), resolve(targ)
        if not _kinds_compat(local, targ):
            return False
        if isinstance(local, (Void, Struct, Union, Enum, Fwd)):
            return True
        if isinstance(local, Int):
            return local.offset == 0 and targ.offset == 0  # type: ignore[attr-defined]
        if isinstance(local, Pointer):
            local, targ = local.target, targ.target  # type: ignore[attr-defined]
            continue
        if isinstance(local, Array):
            local, targ = local.elem, targ.elem  # type: ignore[attr-defined]
            continue
        if isinstance(local, FuncProto):
            assert isinstance(targ, FuncProto)
            if len(local.params) != len(targ.params):
                return False
            for lp, tp in zip(local.params, targ.params):
                if level <= 0:
                    raise ObjectError(f"function prototype nesting deeper than {_MAX_DEPTH} levels")
                if not types_are_compat(resolve(lp.type), resolve(tp.type), level - 1):
                    return False
            local, targ = local.ret, targ.ret
            continue
        return False        # floats, functions, variables...: libbpf relocates none of them
    raise ObjectError(f"type chain deeper than {_MAX_DEPTH} levels in {type_name(local)}")


def _names_match(local: str, targ: str) -> bool:
    if not targ:
        return not local
    return essential_name(local) == essential_name(targ)


def _signed(t: Int) -> bool:
    return bool(t.encoding & IntEncoding.SIGNED)


def types_match(local: Type, targ: Type, behind_ptr: bool = False, level: int = _MAX_DEPTH) -> bool:
    """Strict "matches" relation of bpf_core_type_matches() (TYPE_MATCHES).

    Typedefs and qualifiers are skipped; names must match (flavors ignored)
    and kinds agree, except that behind a pointer a struct/union may match a
    forward declaration of the same kind and ENUM may match ENUM64.  Integers
    need the same size and signedness, arrays the same length, enums the
    same size and every local enumerator name present in the target,
    structs/unions every local member present by name with a matching type
    (names and kinds only once behind a pointer), function prototypes the
    same parameter count with matching parameters and return type.

    >>> from pybpf.btf import Int, IntEncoding
    >>> types_match(Int("int", 4, IntEncoding.SIGNED), Int("int", 4, IntEncoding.SIGNED))
    True
    >>> types_match(Int("int", 4, IntEncoding.SIGNED), Int("unsigned int", 4))
    False
    """
    if level <= 0:
        raise ObjectError(f"type nesting deeper than {_MAX_DEPTH} levels in {type_name(local)}")
    for _ in range(_MAX_DEPTH):
        local, targ = resolve(local), resolve(targ)
        if not _names_match(local.name, targ.name):
            return False
        if isinstance(local, Void):
            return isinstance(targ, Void)
        if isinstance(local, Fwd):
            if isinstance(targ, Fwd):
                return local.is_union == targ.is_union
            if behind_ptr:
                return isinstance(targ, Union) if local.is_union else isinstance(targ, Struct)
            return False
        if isinstance(local, Enum):
            if not isinstance(targ, Enum) or local.size != targ.size or len(local.values) > len(targ.values):
                return False
            return all(any(_names_match(ln, tn) for tn, _ in targ.values) for ln, _ in local.values)
        if isinstance(local, Composite):
            if behind_ptr:
                if local.kind == targ.kind:
                    return True
                return isinstance(targ, Fwd) and targ.is_union == isinstance(local, Union)
            if local.kind != targ.kind:
                return False
            assert isinstance(targ, Composite)
            if len(local.members) > len(targ.members):
                return False
            for lm in local.members:
                if not any(_names_match(lm.name, tm.name)
                           and types_match(lm.type, tm.type, behind_ptr, level - 1)
                           for tm in targ.members):
                    return False
            return True
        if isinstance(local, Int):
            return isinstance(targ, Int) and local.size == targ.size and _signed(local) == _signed(targ)
        if isinstance(local, Pointer):
            if not isinstance(targ, Pointer):
                return False
            behind_ptr = True
            local, targ = local.target, targ.target
            continue
        if isinstance(local, Array):
            if not isinstance(targ, Array) or local.nelems != targ.nelems:
                return False
            local, targ = local.elem, targ.elem
            continue
        if isinstance(local, FuncProto):
            if not isinstance(targ, FuncProto) or len(local.params) != len(targ.params):
                return False
            for lp, tp in zip(local.params, targ.params):
                if not types_match(lp.type, tp.type, behind_ptr, level - 1):
                    return False
            local, targ = local.ret, targ.ret
            continue
        return False
    raise ObjectError(f"type chain deeper than {_MAX_DEPTH} levels in {type_name(local)}")

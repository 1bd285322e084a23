"""The BTF type model: one small slotted class per BTF kind (the helpers are in :mod:`.typeinfo`).

A parsed :class:`~pybpf.btf.reader.Spec` hands out these objects; the writer
encodes them back and the loader and the language layer build them by hand.
References between types are ordinary attributes holding other types
(``ptr.target``, ``member.type``, ``array.elem``...).  Types that come from a
parsed spec resolve their references lazily: the spec stores the referenced
type id and decodes the target on first access, so looking at one struct of
vmlinux does not decode the 150,000 others.  The ids stay available without
decoding (``member.type_id``, ``ptr.target_id``...).

Types compare by identity.  :func:`~pybpf.btf.typeinfo.shallow_key` gives a hashable id-based
description for comparing two specs type by type.

Example::

    from pybpf.btf.types import Int, IntEncoding, Pointer, Struct, Member
    from pybpf.btf.typeinfo import sizeof, alignof, type_name

    u32 = Int("unsigned int", 4)
    s32 = Int("int", 4, IntEncoding.SIGNED)
    point = Struct("point", 8, [Member("x", s32, 0), Member("y", s32, 32)])
    assert sizeof(point) == 8 and alignof(point) == 4
    assert type_name(Pointer(point)) == "struct point *"
"""

from __future__ import annotations

import enum
from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping

__all__ = [
    "BTFKind", "IntEncoding", "FuncLinkage", "VarLinkage", "POINTER_SIZE",
    "Type", "Void", "VOID", "Int", "Pointer", "Array", "Composite", "Struct", "Union", "Member",
    "Enum", "Enum64", "EnumValue", "Fwd", "Typedef", "Qualifier", "Volatile", "Const",
    "Restrict", "TypeTag", "Func", "FuncProto", "Param", "Var", "Datasec", "VarSecinfo",
    "Float", "DeclTag",
]

#: Pointers are 8 bytes: BPF is a 64-bit target, and so is every kernel pybpf runs on.
POINTER_SIZE = 8

# Longest typedef/qualifier/array chain followed before declaring the BTF cyclic.
_MAX_CHAIN = 1024


class BTFKind(enum.IntEnum):
    """``BTF_KIND_*`` from include/uapi/linux/btf.h (with the Linux version that added each).

    >>> BTFKind(4).name, int(BTFKind.ENUM64)
    ('STRUCT', 19)
    """

    UNKNOWN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12          # 5.0
    FUNC_PROTO = 13    # 5.0
    VAR = 14           # 5.2
    DATASEC = 15       # 5.2
    FLOAT = 16         # 5.13
    DECL_TAG = 17      # 5.16
    TYPE_TAG = 18      # 5.17
    ENUM64 = 19        # 6.0


class IntEncoding(enum.IntFlag):
    """``BTF_INT_*`` encoding bits of an INT (the kernel accepts at most one).

    >>> Int("char", 1, IntEncoding.SIGNED | IntEncoding.CHAR).is_char
    True
    """

    NONE = 0
    SIGNED = 1
    CHAR = 2
    BOOL = 4


_SIGNED, _CHAR, _BOOL = int(IntEncoding.SIGNED), int(IntEncoding.CHAR), int(IntEncoding.BOOL)


class FuncLinkage(enum.IntEnum):
    """``btf_func_linkage``: stored in the vlen bits of a FUNC.

    >>> Func("main", FuncProto(VOID), FuncLinkage.GLOBAL).linkage.name
    'GLOBAL'
    """

    STATIC = 0
    GLOBAL = 1      # Linux 5.6 (older kernels need sanitize(): GLOBAL -> STATIC)
    EXTERN = 2


class VarLinkage(enum.IntEnum):
    """Linkage of a VAR (``BTF_VAR_STATIC``, ``BTF_VAR_GLOBAL_ALLOCATED``, ``BTF_VAR_GLOBAL_EXTERN``).

    >>> Var("counter", Int("int", 4), VarLinkage.GLOBAL).linkage
    <VarLinkage.GLOBAL: 1>
    """

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


def _ref(slot: str, doc: str) -> property:
    """A property for a reference that may still be a type id of the owner's spec."""

    def get(self: Any) -> "Type":
        value = getattr(self, slot)
        if value.__class__ is int:
            value = self._spec.type_by_id(value)
            setattr(self, slot, value)
        return value

    def set_(self: Any, value: "Type") -> None:
        setattr(self, slot, value)

    return property(get, set_, doc=doc)


def _ref_id(slot: str) -> property:
    """A property giving the type id of a reference without decoding it."""

    def get(self: Any) -> int | None:
        return _raw_id(getattr(self, slot))

    return property(get, doc=f"Type id of {slot[1:]} (None for a type built by hand), without decoding it.")


class Type:
    """Base of every BTF type.

    ``id`` is the type id in the spec the type was parsed from (None for a type
    built by hand), ``name`` is "" for anonymous types, ``kind`` a :class:`BTFKind`.

    >>> t = Int("int", 4); t.kind.name, t.name, t.id
    ('INT', 'int', None)
    """

    __slots__ = ("id", "name", "_spec", "_codec")
    kind: ClassVar[BTFKind] = BTFKind.UNKNOWN

    def __init__(self, name: str = "") -> None:
        # (Subclasses call their base's __init__ by name: on CPython 3.11, super() costs as much
        # as the rest of making a type, and decoding BTF makes many.)
        self.id: int | None = None
        self.name = name
        self._spec: Any = None
        self._codec: Any = None

    def _holders(self) -> list[tuple[Any, str]]:
        """(object, attribute) pairs naming each reference this type holds."""
        return []

    def refs(self) -> list["Type"]:
        """The types this one refers to directly (decoding them if needed)."""
        return [getattr(obj, attr) for obj, attr in self._holders()]

    def ref_ids(self) -> list[int | None]:
        """Ids of the types this one refers to, without decoding them."""
        return [_raw_id(getattr(obj, "_" + attr)) for obj, attr in self._holders()]

    def map_refs(self, fn: Callable[["Type"], "Type"]) -> None:
        """Replace every reference ``r`` held by this type with ``fn(r)``, in place."""
        for obj, attr in self._holders():
            setattr(obj, attr, fn(getattr(obj, attr)))

    def copy(self) -> "Type":
        """A shallow copy: new member/param/var lists, same referenced types."""
        new = object.__new__(type(self))
        for cls in type(self).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if hasattr(self, slot):
                    object.__setattr__(new, slot, getattr(self, slot))
        new._codec = None
        new._copy_lists()
        return new

    def _copy_lists(self) -> None:
        pass

    def __repr__(self) -> str:
        extra = self._repr_extra()
        name = f" {self.name!r}" if self.name else ""
        ident = f" id={self.id}" if self.id is not None else ""
        return f"<{type(self).__name__}{name}{extra}{ident}>"

    def _repr_extra(self) -> str:
        return ""


def _raw_id(value: Any) -> int | None:
    return value if value.__class__ is int else value.id


class Void(Type):
    """The void type: type id 0 in every spec.

    >>> VOID.id, type_name(Pointer(VOID))
    (0, 'void *')
    """

    __slots__ = ()
    kind = BTFKind.UNKNOWN

    def __init__(self) -> None:
        Type.__init__(self, "")
        self.id = 0

    def __repr__(self) -> str:
        return "<Void>"


#: The one void type (id 0), shared by every spec.
VOID = Void()


class Int(Type):
    """An integer: ``Int("unsigned int", 4)``, ``Int("int", 4, IntEncoding.SIGNED)``.

    ``bits`` (default ``8 * size``) and ``offset`` describe old-style BTF bitfields.

    >>> Int("int", 4, IntEncoding.SIGNED).signed
    True
    """

    __slots__ = ("size", "encoding", "bits", "offset")
    kind = BTFKind.INT

    def __init__(self, name: str, size: int, encoding: IntEncoding | int = IntEncoding.NONE,
                 bits: int | None = None, offset: int = 0) -> None:
        Type.__init__(self, name)
        self.size = size
        self.encoding = encoding if encoding.__class__ is IntEncoding else IntEncoding(encoding)
        self.bits = 8 * size if bits is None else bits
        self.offset = offset

    # (The bits are tested on the plain int: IntFlag's own & costs a microsecond.)

    @property
    def signed(self) -> bool:
        """True for a signed integer (the SIGNED encoding bit)."""
        return bool(self.encoding._value_ & _SIGNED)

    @property
    def is_char(self) -> bool:
        """True for C's ``char`` (the CHAR encoding bit, or the name "char" as pahole and clang emit it)."""
        return bool(self.encoding._value_ & _CHAR) or self.name == "char"

    @property
    def is_bool(self) -> bool:
        """True for C's ``_Bool`` (the BOOL encoding bit)."""
        return bool(self.encoding._value_ & _BOOL)

    def _repr_extra(self) -> str:
        return f" size={self.size}" + (" signed" if self.signed else "")


class Pointer(Type):
    """A pointer to ``target`` (VOID for ``void *``).

    >>> type_name(Pointer(Int("char", 1)))
    'char *'
    """

    __slots__ = ("_target",)
    kind = BTFKind.PTR
    target = _ref("_target", "The pointed-to type.")
    target_id = _ref_id("_target")

    def __init__(self, target: Type, name: str = "") -> None:
        Type.__init__(self, name)
        self._target = target

    def _holders(self) -> list[tuple[Any, str]]:
        return [(self, "target")]


class Array(Type):
    """``nelems`` elements of ``elem``; ``index_type`` is an INT (None: the writer adds one).

    >>> a = Array(Int("int", 4), None, 16); a.nelems, sizeof(a), type_name(a, "buf")
    (16, 64, 'int buf[16]')
    """

    __slots__ = ("_elem", "_index_type", "nelems")
    kind = BTFKind.ARRAY
    elem = _ref("_elem", "The element type.")
    elem_id = _ref_id("_elem")
    index_type = _ref("_index_type", "The index type (an INT).")
    index_type_id = _ref_id("_index_type")

    def __init__(self, elem: Type, index_type: Type | None, nelems: int) -> None:
        Type.__init__(self, "")
        self._elem = elem
        self._index_type = index_type
        self.nelems = nelems

    def _holders(self) -> list[tuple[Any, str]]:
        if self._index_type is None:
            return [(self, "elem")]
        return [(self, "elem"), (self, "index_type")]

    def _repr_extra(self) -> str:
        return f" nelems={self.nelems}"


class Member:
    """A struct/union member; ``bit_offset`` from the start of the composite.

    ``bitfield_size`` is 0 for members that are not bitfields.

    >>> Member("y", Int("int", 4), 32).offset
    4
    """

    __slots__ = ("name", "_type", "bit_offset", "bitfield_size", "_spec")
    type = _ref("_type", "The member's type.")
    type_id = _ref_id("_type")

    def __init__(self, name: str, type: Type, bit_offset: int = 0, bitfield_size: int = 0) -> None:
        self.name = name
        self._type = type
        self.bit_offset = bit_offset
        self.bitfield_size = bitfield_size
        self._spec: Any = None

    @property
    def offset(self) -> int:
        """Byte offset (bit_offset // 8)."""
        return self.bit_offset // 8

    def copy(self) -> "Member":
        """A copy referring to the same type."""
        new = Member(self.name, self._type, self.bit_offset, self.bitfield_size)
        new._spec = self._spec
        return new

    def __repr__(self) -> str:
        bf = f" bitfield_size={self.bitfield_size}" if self.bitfield_size else ""
        return f"<Member {self.name!r} type_id={self.type_id} bit_offset={self.bit_offset}{bf}>"


class Composite(Type):
    """Common base of :class:`Struct` and :class:`Union`.

    >>> point = Struct("point", 8, [Member("x", Int("int", 4)), Member("y", Int("int", 4), 32)])
    >>> point.member("y").offset, [m.name for m in point.members]
    (4, ['x', 'y'])
    """

    __slots__ = ("size", "members")

    def __init__(self, name: str, size: int, members: Iterable[Member] = ()) -> None:
        Type.__init__(self, name)
        self.size = size
        self.members: list[Member] = list(members)

    def member(self, name: str) -> Member | None:
        """The member called ``name`` (direct members only), or None."""
        for m in self.members:
            if m.name == name:
                return m
        return None

    def find_member(self, name: str) -> tuple[int, Member] | None:
        """The member called ``name``, looking into anonymous struct/union members too (as C
        does: ``mm->arg_start`` is in an anonymous struct of ``struct mm_struct``): its bit offset
        from the start of this type, and the member; None when there is none.

        >>> u = Union("", 4, [Member("a", Int("int", 4))])
        >>> Struct("s", 8, [Member("x", Int("int", 4)), Member("", u, 32)]).find_member("a")[0]
        32
        """
        for m in self.members:
            if m.name == name:
                return m.bit_offset, m
            if not m.name:
                inner = m.type
                while isinstance(inner, (Typedef, Qualifier)):
                    inner = inner.type
                found = inner.find_member(name) if isinstance(inner, Composite) else None
                if found is not None:
                    return m.bit_offset + found[0], found[1]
        return None

    def _holders(self) -> list[tuple[Any, str]]:
        return [(m, "type") for m in self.members]

    def _copy_lists(self) -> None:
        self.members = [m.copy() for m in self.members]

    def _repr_extra(self) -> str:
        return f" size={self.size} members={len(self.members)}"


class Struct(Composite):
    """A C struct: ``Struct("point", 8, [Member("x", s32, 0), Member("y", s32, 32)])``.

    >>> sizeof(Struct("point", 8, [Member("x", Int("int", 4)), Member("y", Int("int", 4), 32)]))
    8
    """

    __slots__ = ()
    kind = BTFKind.STRUCT


class Union(Composite):
    """A C union; members usually all at bit offset 0: ``Union("u", 8, [Member("i", s32), Member("l", s64)])``.

    >>> type_name(Union("", 8, []))
    'union (anon)'
    """

    __slots__ = ()
    kind = BTFKind.UNION


class EnumValue(namedtuple("EnumValue", ("name", "value"))):
    """One enumerator of an :class:`Enum`: ``EnumValue("RED", 0)``.

    >>> Enum("color", 4, [("RED", 0)]).values[0]
    EnumValue(name='RED', value=0)
    """

    __slots__ = ()
    name: str
    value: int


class Enum(Type):
    """An enum of ``size`` bytes with ``values`` [(name, int)]; ``signed`` is the kind flag.

    >>> Enum("color", 4, [("RED", 0), ("GREEN", 1)]).value("GREEN")
    1
    """

    __slots__ = ("size", "values", "signed")
    kind = BTFKind.ENUM

    def __init__(self, name: str, size: int = 4, values: Iterable[tuple[str, int]] = (),
                 signed: bool = False) -> None:
        Type.__init__(self, name)
        self.size = size
        self.values: list[EnumValue] = [EnumValue(n, v) for n, v in values]
        self.signed = signed

    def value(self, name: str) -> int | None:
        """The value of enumerator ``name``, or None."""
        for n, v in self.values:
            if n == name:
                return v
        return None

    def _copy_lists(self) -> None:
        self.values = list(self.values)

    def _repr_extra(self) -> str:
        return f" size={self.size} values={len(self.values)}"


class Enum64(Enum):
    """An enum with 64-bit values (Linux 6.0).

    >>> Enum64("big", 8, [("HUGE", 1 << 40)]).value("HUGE")
    1099511627776
    """

    __slots__ = ()
    kind = BTFKind.ENUM64

    def __init__(self, name: str, size: int = 8, values: Iterable[tuple[str, int]] = (),
                 signed: bool = False) -> None:
        Enum.__init__(self, name, size, values, signed)


class Fwd(Type):
    """A forward declaration of a struct (or a union when ``is_union``).

    >>> type_name(Fwd("sock"))
    'struct sock'
    """

    __slots__ = ("is_union",)
    kind = BTFKind.FWD

    def __init__(self, name: str, is_union: bool = False) -> None:
        Type.__init__(self, name)
        self.is_union = is_union


class Typedef(Type):
    """``typedef type name``: ``Typedef("u32", Int("unsigned int", 4))``.

    >>> type_name(Typedef("u32", Int("unsigned int", 4)), "x")
    'u32 x'
    """

    __slots__ = ("_type",)
    kind = BTFKind.TYPEDEF
    type = _ref("_type", "The aliased type.")
    type_id = _ref_id("_type")

    def __init__(self, name: str, type: Type) -> None:
        Type.__init__(self, name)
        self._type = type

    def _holders(self) -> list[tuple[Any, str]]:
        return [(self, "type")]


class Qualifier(Type):
    """Base of :class:`Volatile`, :class:`Const`, :class:`Restrict` and :class:`TypeTag`.

    >>> type_name(Const(Int("char", 1)))
    'const char'
    """

    __slots__ = ("_type",)
    type = _ref("_type", "The qualified type.")
    type_id = _ref_id("_type")

    def __init__(self, type: Type, name: str = "") -> None:
        Type.__init__(self, name)
        self._type = type

    def _holders(self) -> list[tuple[Any, str]]:
        return [(self, "type")]


class Volatile(Qualifier):
    """``volatile type``: ``Volatile(s32)``.

    >>> type_name(Volatile(Int("int", 4)))
    'volatile int'
    """

    __slots__ = ()
    kind = BTFKind.VOLATILE


class Const(Qualifier):
    """``const type``: ``Const(Int("char", 1))``.

    >>> type_name(Pointer(Const(Int("char", 1))))
    'const char *'
    """

    __slots__ = ()
    kind = BTFKind.CONST


class Restrict(Qualifier):
    """``type restrict`` (of a pointer): ``Restrict(Pointer(s32))``.

    >>> type_name(Restrict(Pointer(Int("int", 4))), "p")
    'int *restrict p'
    """

    __slots__ = ()
    kind = BTFKind.RESTRICT


class TypeTag(Qualifier):
    """``__attribute__((btf_type_tag("name")))`` on ``type`` (Linux 5.17): ``TypeTag(t, "user")``.

    ``attribute`` is the kind flag (Linux 6.13): the tag is a whole C attribute
    such as ``address_space(1)`` rather than a btf_type_tag string.

    >>> type_name(Pointer(TypeTag(Int("int", 4), "user")))
    'int __attribute__((btf_type_tag("user"))) *'
    """

    __slots__ = ("attribute",)
    kind = BTFKind.TYPE_TAG

    def __init__(self, type: Type, name: str = "", attribute: bool = False) -> None:
        Qualifier.__init__(self, type, name)
        self.attribute = attribute


class Param:
    """A function parameter; iterates as ``(name, type)``. Variadic: name "" and VOID.

    >>> name, t = Param("ctx", Pointer(VOID)); name
    'ctx'
    """

    __slots__ = ("name", "_type", "_spec")
    type = _ref("_type", "The parameter's type.")
    type_id = _ref_id("_type")

    def __init__(self, name: str, type: Type) -> None:
        self.name = name
        self._type = type
        self._spec: Any = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.name, self.type))

    def copy(self) -> "Param":
        """A copy referring to the same type."""
        new = Param(self.name, self._type)
        new._spec = self._spec
        return new

    def __repr__(self) -> str:
        return f"<Param {self.name!r} type_id={self.type_id}>"


class FuncProto(Type):
    """A function signature: ``FuncProto(ret, [("x", int_t), ...])``.

    >>> type_name(FuncProto(Int("int", 4), [("a", Int("long", 8))]), "f")
    'int f(long a)'
    """

    __slots__ = ("_ret", "params")
    kind = BTFKind.FUNC_PROTO
    ret = _ref("_ret", "The return type (VOID for void).")
    ret_id = _ref_id("_ret")

    def __init__(self, ret: Type, params: Iterable[Param | tuple[str, Type]] = ()) -> None:
        Type.__init__(self, "")
        self._ret = ret
        self.params: list[Param] = [p if isinstance(p, Param) else Param(*p) for p in params]

    def _holders(self) -> list[tuple[Any, str]]:
        return [(self, "ret")] + [(p, "type") for p in self.params]

    def _copy_lists(self) -> None:
        self.params = [p.copy() for p in self.params]

    def _repr_extra(self) -> str:
        return f" params={len(self.params)}"


class Func(Type):
    """A function (a BPF program or subprogram, or a kernel function).

    >>> type_name(Func("main", FuncProto(Int("int", 4), [("ctx", Pointer(VOID))])))
    'int main(void *ctx)'
    """

    __slots__ = ("_proto", "linkage")
    kind = BTFKind.FUNC
    proto = _ref("_proto", "The FuncProto.")
    proto_id = _ref_id("_proto")

    def __init__(self, name: str, proto: Type, linkage: FuncLinkage | int = FuncLinkage.STATIC) -> None:
        Type.__init__(self, name)
        self._proto = proto
        self.linkage = linkage if linkage.__class__ is FuncLinkage else FuncLinkage(linkage)

    def _holders(self) -> list[tuple[Any, str]]:
        return [(self, "proto")]


class Var(Type):
    """A global variable (a member of a :class:`Datasec`).

    >>> type_name(Var("counter", Int("int", 4)))
    'int counter'
    """

    __slots__ = ("_type", "linkage")
    kind = BTFKind.VAR
    type = _ref("_type", "The variable's type.")
    type_id = _ref_id("_type")

    def __init__(self, name: str, type: Type, linkage: VarLinkage | int = VarLinkage.STATIC) -> None:
        Type.__init__(self, name)
        self._type = type
        self.linkage = linkage if linkage.__class__ is VarLinkage else VarLinkage(linkage)

    def _holders(self) -> list[tuple[Any, str]]:
        return [(self, "type")]


class VarSecinfo:
    """Where a VAR lives in its section: byte ``offset`` and ``size``.

    >>> VarSecinfo(Var("counter", Int("int", 4)), 0, 4).size
    4
    """

    __slots__ = ("_var", "offset", "size", "_spec")
    var = _ref("_var", "The Var.")
    var_id = _ref_id("_var")

    def __init__(self, var: Type, offset: int, size: int) -> None:
        self._var = var
        self.offset = offset
        self.size = size
        self._spec: Any = None

    def copy(self) -> "VarSecinfo":
        """A copy referring to the same variable."""
        new = VarSecinfo(self._var, self.offset, self.size)
        new._spec = self._spec
        return new

    def __repr__(self) -> str:
        return f"<VarSecinfo var_id={self.var_id} offset={self.offset} size={self.size}>"


class Datasec(Type):
    """An ELF data section (.data, .bss, .rodata, .maps, ...) and the variables in it.

    clang leaves ``size`` and the var offsets 0; the loader fills them from the
    ELF with :meth:`fixup` (or by setting ``size`` and ``vars[i].offset``).

    >>> counter = Var("counter", Int("int", 4), VarLinkage.GLOBAL)
    >>> sec = Datasec(".bss", 4, [VarSecinfo(counter, 0, 4)]); sec.vars[0].var.name
    'counter'
    """

    __slots__ = ("size", "vars")
    kind = BTFKind.DATASEC

    def __init__(self, name: str, size: int = 0, vars: Iterable[VarSecinfo] = ()) -> None:
        Type.__init__(self, name)
        self.size = size
        self.vars: list[VarSecinfo] = list(vars)

    def fixup(self, size: int, offsets: Mapping[str, int]) -> None:
        """Set the section size and each named variable's offset, then sort vars by offset.

        Variables missing from ``offsets`` keep their offset.
        """
        self.size = size
        for vs in self.vars:
            off = offsets.get(vs.var.name)
            if off is not None:
                vs.offset = off
        self.vars.sort(key=lambda vs: vs.offset)

    def _holders(self) -> list[tuple[Any, str]]:
        return [(vs, "var") for vs in self.vars]

    def _copy_lists(self) -> None:
        self.vars = [vs.copy() for vs in self.vars]

    def _repr_extra(self) -> str:
        return f" size={self.size} vars={len(self.vars)}"


class Float(Type):
    """A floating point type of 2, 4, 8, 12 or 16 bytes (Linux 5.13).

    >>> sizeof(Float("double", 8))
    8
    """

    __slots__ = ("size",)
    kind = BTFKind.FLOAT

    def __init__(self, name: str, size: int) -> None:
        Type.__init__(self, name)
        self.size = size


class DeclTag(Type):
    """``btf_decl_tag("name")`` on ``type`` or on its member/param ``component_idx`` (-1: on the type).

    >>> DeclTag("kfunc", Func("f", FuncProto(VOID))).component_idx      # -1: the whole declaration
    -1
    """

    __slots__ = ("_type", "component_idx", "attribute")
    kind = BTFKind.DECL_TAG
    type = _ref("_type", "The tagged struct, union, var, func or typedef.")
    type_id = _ref_id("_type")

    def __init__(self, name: str, type: Type, component_idx: int = -1, attribute: bool = False) -> None:
        Type.__init__(self, name)
        self._type = type
        self.component_idx = component_idx
        self.attribute = attribute      # kind flag (Linux 6.13): a whole C attribute

    def _holders(self) -> list[tuple[Any, str]]:
        return [(self, "type")]

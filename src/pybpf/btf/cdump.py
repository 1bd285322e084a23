"""BTF -> C: write a spec's types as a C header (``vmlinux.h``).

:func:`dump_c` returns every struct, union, enum and typedef of a spec as C
that clang accepts, in an order where each type is complete before it is
embedded.  Types that refer to each other only through pointers get forward
declarations (``struct task_struct;``); anonymous structs, unions and enums
are written inline where they are used; bitfields keep their widths, gaps
that natural alignment would not leave are filled with unnamed bitfields
(``long: 64;``), structs whose members are off their natural alignment are
``__attribute__((packed))``; enums whose size C would not choose get a
``mode`` attribute.  Two different types with one name get ``___2``,
``___3``... suffixes, in order of first use (as libbpf's btf_dump does, so
names match ``bpftool btf dump ... format c``).  With ``vmlinux_h=True`` the
output is wrapped in a header guard and in clang's
``preserve_access_index`` pragma, so every struct access in a program that
includes it is a CO-RE relocation.

Only the type model is used: no system call, no clang.

Example::

    from pybpf.btf.cdump import dump_c
    from pybpf.btf.kernel import kernel_spec

    with open("vmlinux.h", "w") as f:
        f.write(dump_c(kernel_spec()))
"""

from __future__ import annotations

import sys

from pybpf.btf.reader import Spec
from pybpf.btf.typeinfo import sizeof
from pybpf.btf.types import (
    POINTER_SIZE, Array, Composite, Const, Enum, Enum64, Float, FuncProto, Fwd, Int, Pointer,
    Qualifier, Restrict, Struct, Type, Typedef, TypeTag, Union, Volatile,
)
from pybpf.errors import ObjectError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

__all__ = ["dump_c", "VMLINUX_GUARD"]

VMLINUX_GUARD = "__VMLINUX_H__"

_HEAD = """#ifndef {guard}
#define {guard}

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
#endif

"""
_TAIL = """#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

#endif /* {guard} */
"""
# Typedefs the compiler provides: used by name, never defined.
_BUILTIN_TYPEDEFS = frozenset({"__builtin_va_list"})
# Unnamed bitfields that fill a gap, widest first.
_PADS = (("long", 8 * POINTER_SIZE), ("int", 32), ("short", 16), ("char", 8))

_QUALIFIER_WORDS = frozenset({"const", "volatile", "restrict"})
# ordering / emission states
_NEW, _BUSY, _DONE = 0, 1, 2


def dump_c(spec: Spec, ids: Iterable[int] | None = None, *, vmlinux_h: bool = True,
           guard: str = VMLINUX_GUARD) -> str:
    """C declarations of the types ``ids`` (default: all of ``spec``'s own) and what they need.

    ``vmlinux_h`` adds the header guard ``guard`` and the ``preserve_access_index``
    pragma (``#define BPF_NO_PRESERVE_ACCESS_INDEX`` before including turns it off).

    >>> from pybpf.btf.types import Int, Member, Pointer, Struct, Typedef
    >>> from pybpf.btf.writer import encode
    >>> node = Struct("node", 16, [])
    >>> node.members = [Member("next", Pointer(node), 0), Member("val", Int("int", 4), 64)]
    >>> print(dump_c(Spec.parse(encode([Typedef("node_t", node)])), vmlinux_h=False), end="")
    struct node {
    	struct node *next;
    	int val;
    };
    <BLANKLINE>
    typedef struct node node_t;
    <BLANKLINE>
    """
    d = _Dumper(spec)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))      # struct nesting in vmlinux goes deep
    try:
        for tid in (spec.own_ids() if ids is None else ids):
            d.dump(tid)
    finally:
        sys.setrecursionlimit(limit)
    body = "".join(d.out)
    if not vmlinux_h:
        return body
    return _HEAD.format(guard=guard) + body + _TAIL.format(guard=guard)


class _Dumper:
    """libbpf's two passes per root type: order it after what it embeds, then emit it."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.type = spec.type_by_id
        n = len(spec)
        self.order_state = [_NEW] * n
        self.emit_state = [_NEW] * n
        self.fwd_emitted = [False] * n
        self.referenced = [False] * n
        for t in spec.types[1:]:
            for r in t.ref_ids():
                if r is not None and r < n:
                    self.referenced[r] = True
        self.names: dict[int, str] = {}
        self.aligns: dict[int, int] = {}
        self.tag_names: dict[str, int] = {}     # struct/union/enum tags used so far
        self.ident_names: dict[str, int] = {}   # typedef and enumerator names used so far
        self.queue: list[int] = []
        self.out: list[str] = []

    def dump(self, tid: int) -> None:
        self.queue.clear()
        self._order(tid, False)
        for q in self.queue:
            self._emit(q, 0)

    # ------------------------------------------------------------------ pass 1: order

    def _order(self, tid: int, through_ptr: bool) -> bool:
        """Queue ``tid``'s named definitions after those it needs; True if it is a "strong" use."""
        if tid == 0:
            return False
        t = self.type(tid)
        state = self.order_state[tid]
        if state == _DONE:
            return True
        if state == _BUSY:
            if isinstance(t, Composite) and through_ptr and t.name:
                return False        # a loop, broken by a forward declaration
            raise ObjectError(f"BTF: type [{tid}] {t.name!r} contains itself (not through a pointer)")
        if isinstance(t, (Int, Float)):
            self.order_state[tid] = _DONE
            return False
        if isinstance(t, Pointer):
            strong = self._order(t.target_id, True)
            self.order_state[tid] = _DONE
            return strong
        if isinstance(t, Array):
            return self._order(t.elem_id, False)        # even a pointer to an array needs its elements
        if isinstance(t, Composite):
            if through_ptr and t.name:
                return False
            self.order_state[tid] = _BUSY
            for m in t.members:
                self._order(m.type_id, False)
            if t.name:
                self.queue.append(tid)
            self.order_state[tid] = _DONE
            return True
        if isinstance(t, (Enum, Fwd)):
            if t.name or not self.referenced[tid]:
                self.queue.append(tid)
            self.order_state[tid] = _DONE
            return True
        if isinstance(t, Typedef):
            strong = self._order(t.type_id, through_ptr)
            if through_ptr and not strong:
                return False
            self.queue.append(tid)
            self.order_state[tid] = _DONE
            return True
        if isinstance(t, Qualifier):
            return self._order(t.type_id, through_ptr)
        if isinstance(t, FuncProto):
            strong = self._order(t.ret_id, through_ptr)
            for p in t.params:
                strong = self._order(p.type_id, through_ptr) or strong
            return strong
        # FUNC, VAR, DATASEC, DECL_TAG: not C types
        self.order_state[tid] = _DONE
        return False

    # ------------------------------------------------------------------ pass 2: emit

    def _emit(self, tid: int, cont: int) -> None:
        """Write ``tid`` (at top level when ``cont`` is 0), after the forward declarations it needs."""
        if tid == 0 or self.emit_state[tid] == _DONE:
            return
        t = self.type(tid)
        if self.emit_state[tid] == _BUSY:
            # a loop through pointers: declare now, define when the loop unwinds
            if self.fwd_emitted[tid]:
                return
            if isinstance(t, Composite):
                if tid == cont or not t.name:
                    return
                self.out.append(f"{self._tag(tid)};\n\n")
                self.fwd_emitted[tid] = True
            elif isinstance(t, Typedef):
                self._typedef(tid)
                self.fwd_emitted[tid] = True
            return
        top = cont == 0
        if isinstance(t, Enum):
            if top:
                self.out.append(f"{self._enum_def(tid, 0)};\n\n")
            self.emit_state[tid] = _DONE
        elif isinstance(t, Pointer):
            self._emit(t.target_id, cont)
        elif isinstance(t, Qualifier):
            self._emit(t.type_id, cont)
        elif isinstance(t, Array):
            self._emit(t.elem_id, cont)
        elif isinstance(t, Fwd):
            self.out.append(f"{self._tag(tid)};\n\n")
            self.emit_state[tid] = _DONE
        elif isinstance(t, Typedef):
            self.emit_state[tid] = _BUSY
            self._emit(t.type_id, tid)
            if not self.fwd_emitted[tid]:
                self._typedef(tid)
            self.emit_state[tid] = _DONE
        elif isinstance(t, Composite):
            self.emit_state[tid] = _BUSY
            if top or not t.name:
                inner = tid if t.name else cont
                for m in t.members:
                    self._emit(m.type_id, inner)
            elif not self.fwd_emitted[tid] and tid != cont:
                self.out.append(f"{self._tag(tid)};\n\n")
                self.fwd_emitted[tid] = True
            if top:
                self.out.append(f"{self._struct_def(tid, 0)};\n\n")
                self.emit_state[tid] = _DONE
            else:
                self.emit_state[tid] = _NEW
        elif isinstance(t, FuncProto):
            self._emit(t.ret_id, cont)
            for p in t.params:
                self._emit(p.type_id, cont)

    def _typedef(self, tid: int) -> None:
        t = self.type(tid)
        if t.name in _BUILTIN_TYPEDEFS:
            return
        self.out.append(f"typedef {self._decl(t.type_id, self._name(tid), 0)};\n\n")

    # ------------------------------------------------------------------ names

    def _name(self, tid: int) -> str:
        """The C name of a named type: its BTF name, with ``___N`` for the N-th type of that name."""
        name = self.names.get(tid)
        if name is not None:
            return name
        t = self.type(tid)
        name = t.name
        if name and not isinstance(t, Fwd) and not (isinstance(t, Enum) and not t.values):
            name = self._ident(name) if isinstance(t, Typedef) else _numbered(self.tag_names, name)
        self.names[tid] = name
        return name

    def _ident(self, name: str) -> str:
        """A typedef or enumerator name (C's ordinary identifiers), numbered if used already."""
        return _numbered(self.ident_names, name)

    def _tag(self, tid: int) -> str:
        t = self.type(tid)
        if isinstance(t, Fwd):
            keyword = "union" if t.is_union else "struct"
        elif isinstance(t, Union):
            keyword = "union"
        else:
            keyword = "enum" if isinstance(t, Enum) else "struct"
        name = self._name(tid)
        return f"{keyword} {name}" if name else keyword

    # ------------------------------------------------------------------ declarations

    def _decl(self, tid: int, decl: str, lvl: int) -> str:
        """The C declaration of ``decl`` (a declarator: a name, "*p", "a[4]"...) with type ``tid``."""
        if tid == 0:
            return f"void {decl}" if decl else "void"
        t = self.type(tid)
        if isinstance(t, Pointer):
            inner = self.type(self._skip_qualifiers(t.target_id))
            # "char *p", but "char * const p" and "void * (*fn)(void)", as bpftool writes them
            star = "* " if decl[:1] == "(" or decl.split(" ", 1)[0] in _QUALIFIER_WORDS else "*"
            if isinstance(inner, (Array, FuncProto)):
                return self._decl(t.target_id, f"({star}{decl})", lvl)
            return self._decl(t.target_id, star + decl, lvl)
        if isinstance(t, (Const, Volatile, Restrict)):
            q = t.kind.name.lower()
            inner = self.type(self._skip_qualifiers(t.type_id))
            if isinstance(inner, Pointer):     # qualifies the pointer: "char *const p"
                return self._decl(t.type_id, f"{q} {decl}" if decl else q, lvl)
            if isinstance(inner, (Array, FuncProto)):
                # a qualified function means nothing; a qualified array is one of qualified
                # elements, and GCC puts the qualifier on both (GCC bug 8354): keep the element's
                return self._decl(t.type_id, decl, lvl)
            return f"{q} {self._decl(t.type_id, decl, lvl)}"
        if isinstance(t, TypeTag):
            return self._decl(t.type_id, decl, lvl)
        if isinstance(t, Array):
            return self._decl(t.elem_id, f"{decl}[{t.nelems}]", lvl)
        if isinstance(t, FuncProto):
            params = [p.type_id for p in t.params]
            if not params:
                args = "void"
            else:
                parts = ["..." if p == 0 else self._decl(p, "", lvl) for p in params]
                args = ", ".join(parts)
            return self._decl(t.ret_id, f"{decl}({args})", lvl)
        base = self._base(tid, t, lvl)
        return f"{base} {decl}" if decl else base

    def _skip_qualifiers(self, tid: int) -> int:
        while tid:
            t = self.type(tid)
            if not isinstance(t, Qualifier):
                break
            tid = t.type_id
        return tid

    def _base(self, tid: int, t: Type, lvl: int) -> str:
        if isinstance(t, (Int, Float)):
            return t.name
        if isinstance(t, Typedef):
            return self._name(tid)
        if isinstance(t, Composite) and not t.name:
            return self._struct_def(tid, lvl)
        if isinstance(t, Enum) and not t.name:
            return self._enum_def(tid, lvl)
        if isinstance(t, (Composite, Enum, Fwd)):
            return self._tag(tid)
        raise ObjectError(f"BTF: type [{tid}] ({t.kind.name}) cannot be written as a C type")

    # ------------------------------------------------------------------ definitions

    def _struct_def(self, tid: int, lvl: int) -> str:
        t = self.type(tid)
        assert isinstance(t, Composite)
        ind = "\t" * (lvl + 1)
        packed = self._packed(t)
        is_struct = isinstance(t, Struct)
        parts = [f"{self._tag(tid)} {{"]
        off = 0
        prev_bitfield = False
        for m in t.members:
            m_align = 1 if packed else self._align(m.type_id)
            bits = m.bitfield_size
            _pad(parts, ind, off, m.bit_offset, m_align, prev_bitfield and bits != 0)
            line = f"\n{ind}{self._decl(m.type_id, m.name, lvl + 1)}"
            if bits:
                line += f": {bits}"
                off = m.bit_offset + bits
            else:
                off = m.bit_offset + 8 * _size(m.type)
            prev_bitfield = bits != 0
            parts.append(line + ";")
        if is_struct:
            _pad(parts, ind, off, 8 * t.size, self._align(tid), False)
        if t.members or t.size:
            parts.append("\n" + "\t" * lvl + "}")
        else:
            parts.append("}")
        if packed:
            parts.append(" __attribute__((packed))")
        return "".join(parts)

    def _align(self, tid: int) -> int:
        """libbpf's btf__align_of (1 for a packed struct), remembered per type id."""
        a = self.aligns.get(tid)
        if a is None:
            a = self.aligns[tid] = self._compute_align(tid)
        return a

    def _compute_align(self, tid: int) -> int:
        tid = self._resolve(tid)
        t = self.type(tid)
        if isinstance(t, (Int, Enum, Float)):
            return max(1, min(POINTER_SIZE, t.size))
        if isinstance(t, Pointer):
            return POINTER_SIZE
        if isinstance(t, Array):
            return self._align(t.elem_id)
        if isinstance(t, Composite):
            return 1 if self._packed(t) else max((self._align(m.type_id) for m in t.members), default=1)
        return 1

    def _resolve(self, tid: int) -> int:
        """Past typedefs and qualifiers."""
        while tid:
            t = self.type(tid)
            if not isinstance(t, (Typedef, Qualifier)):
                break
            tid = t.type_id
        return tid

    def _packed(self, t: Composite) -> bool:
        """libbpf's rule: a member off its natural alignment, or a size not a multiple of it."""
        best = 1
        for m in t.members:
            a = self._align(m.type_id)
            if not m.bitfield_size and m.bit_offset % (8 * a):
                return True
            best = max(best, a)
        return t.size % best != 0

    def _enum_def(self, tid: int, lvl: int) -> str:
        t = self.type(tid)
        assert isinstance(t, Enum)
        head = self._tag(tid)
        if not t.values:
            return head
        ind = "\t" * (lvl + 1)
        suffix = ("LL" if t.signed else "ULL") if isinstance(t, Enum64) else ""
        lines = [f"\n{ind}{self._ident(n)} = {v}{suffix}," for n, v in t.values]
        text = f"{head} {{{''.join(lines)}\n{chr(9) * lvl}}}"
        # C sizes an enum by its values: force the size BTF says where the values would not give it
        if t.size == 1:
            text += " __attribute__((mode(byte)))"
        elif t.size == 8 and (not isinstance(t, Enum64) or
                              not any((v & 0xFFFFFFFFFFFFFFFF) >> 32 for _, v in t.values)):
            text += " __attribute__((mode(word)))"
        return text


def _numbered(used: dict[str, int], name: str) -> str:
    n = used.get(name, 0) + 1
    used[name] = n
    return f"{name}___{n}" if n > 1 else name


def _size(t: Type) -> int:
    try:
        return max(0, sizeof(t))
    except ObjectError:
        return 0


def _roundup(x: int, to: int) -> int:
    return (x + to - 1) // to * to


def _pad(parts: list[str], ind: str, cur: int, nxt: int, nxt_align: int, in_bitfield: bool) -> None:
    """Unnamed bitfields that move a member from bit ``cur`` to bit ``nxt`` where C would not put it."""
    if cur >= nxt:
        return
    pad_name, pad_bits = _PADS[-1]
    new = cur
    for pad_name, pad_bits in _PADS:
        new = _roundup(cur, pad_bits)
        if new <= nxt:
            break
    if cur < new <= nxt:
        # "<type>: 0" when C would not align the next member there on its own, or when the
        # rest of the gap would fit in the hole before that boundary (C would ignore the pad)
        if in_bitfield or (new == nxt and _roundup(cur, 8 * nxt_align) != new) or \
                (new != nxt and nxt - new <= new - cur):
            parts.append(f"\n{ind}{pad_name}: {new - cur if in_bitfield else 0};")
        cur = new
    while cur != nxt:
        bits = min(nxt - cur, pad_bits)
        if bits == pad_bits:
            parts.append(f"\n{ind}{pad_name}: {pad_bits};")
            cur += bits
            continue
        for name, width in reversed(_PADS):      # the narrowest type that holds the rest
            if width >= bits:
                parts.append(f"\n{ind}{name}: {bits};")
                cur += bits
                break

"""The types of pybpf.lang: fixed-width integers with BPF semantics, fixed arrays, pointers and
``Struct`` classes with C layout, usable in CPython and understood by the compiler.

``u8, u16, u32, u64, i8, i16, i32, i64`` are ``int`` subclasses whose
arithmetic wraps around exactly as the compiled BPF code does, so a probe's
logic gives the same numbers when CPython runs it (unit tests, no kernel)
and when the kernel runs the compiled program.  The rules (docs/lang.md):

* the result type of ``a OP b`` is the wider operand type; at equal width
  unsigned wins (C's usual conversions); a plain Python ``int`` takes the
  type of the other operand;
* the result wraps around to its width (two's complement for signed types);
* ``//`` and ``%`` truncate toward zero (C, BPF ``sdiv``/``smod``) for
  signed types; ``x // 0 == 0`` and ``x % 0 == x``, as the BPF ISA defines;
* types of 32 bits or fewer compute in 32-bit registers, so a shift count
  is taken modulo 32 for them and modulo 64 for 64-bit types;
* comparisons compare in the common type (``u64(1) > i64(-1)`` is false,
  since -1 becomes 2**64-1, as in C) and give 1 or 0.

Example::

    >>> u8(200) + 100
    u8(44)
    >>> i32(-7) // 2, i32(-7) % 2
    (i32(-3), i32(-1))
    >>> u64(1) > i64(-1)
    0

A ``Struct`` subclass lays its annotated fields out as a C compiler does
(each field aligned to its size, the struct to its largest field)::

    class Event(Struct):
        pid: u32
        ppid: u32
        ts: u64
        comm: u8[16]

In a BPF program ``e = Event()`` is a zeroed stack buffer, ``e.pid = x``
stores, ``e.comm`` is the array's address (for helpers such as
``get_current_comm(e.comm)``), ``events.output(e)`` copies it into a ring
buffer.  In CPython it is an ordinary object with zeroed fields
(``bytearray`` for ``u8`` arrays), and :meth:`Struct.btf` is its BTF type
for the user side (ring buffer readers decode records with it).
:class:`BTFTypes` gives every type its BTF (the compiler's and the readers').
"""

from __future__ import annotations

from typing import Any

from pybpf.btf import types as bt

__all__ = ["Fixed", "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "INT_TYPES", "Const",
           "wrap", "common_type", "binop", "compare", "is_const",
           "Struct", "ArrayType", "PtrType", "sizeof", "alignof", "array_of", "BTFTypes"]


def wrap(value: int, bits: int, signed: bool) -> int:
    """``value`` reduced to ``bits`` bits, two's complement when ``signed``."""
    value &= (1 << bits) - 1
    if signed and value >> (bits - 1):
        value -= 1 << bits
    return value


class Fixed(int):
    """Base of the fixed-width integer types; ``bits`` and ``signed`` say which one."""

    bits = 64
    signed = False
    __slots__ = ()

    def __new__(cls, value: Any = 0) -> "Fixed":
        if isinstance(value, float):
            raise TypeError(f"{cls.__name__}(): BPF has no floating point; give an int")
        return int.__new__(cls, wrap(int(value), cls.bits, cls.signed))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self)})"

    def __class_getitem__(cls, count: int) -> Any:
        """``u8[16]``: a fixed array type (struct fields, local buffers)."""
        return array_of(cls, count)

    __str__ = int.__repr__

    def __format__(self, spec: str) -> str:
        return format(int(self), spec)

    # -- arithmetic ---------------------------------------------------------------------

    def _op(self, other: Any, op: str, reflected: bool = False) -> Any:
        if not isinstance(other, int):
            return NotImplemented
        a, b = (other, self) if reflected else (self, other)
        t = common_type(type(a), type(b))
        return t(binop(op, int(a), int(b), t))

    def __add__(self, o): return self._op(o, "+")
    def __radd__(self, o): return self._op(o, "+", True)
    def __sub__(self, o): return self._op(o, "-")
    def __rsub__(self, o): return self._op(o, "-", True)
    def __mul__(self, o): return self._op(o, "*")
    def __rmul__(self, o): return self._op(o, "*", True)
    def __floordiv__(self, o): return self._op(o, "//")
    def __rfloordiv__(self, o): return self._op(o, "//", True)
    def __mod__(self, o): return self._op(o, "%")
    def __rmod__(self, o): return self._op(o, "%", True)
    def __and__(self, o): return self._op(o, "&")
    def __rand__(self, o): return self._op(o, "&", True)
    def __or__(self, o): return self._op(o, "|")
    def __ror__(self, o): return self._op(o, "|", True)
    def __xor__(self, o): return self._op(o, "^")
    def __rxor__(self, o): return self._op(o, "^", True)
    def __lshift__(self, o): return self._op(o, "<<")
    def __rlshift__(self, o): return self._op(o, "<<", True)
    def __rshift__(self, o): return self._op(o, ">>")
    def __rrshift__(self, o): return self._op(o, ">>", True)

    def __truediv__(self, o):
        raise TypeError("BPF has no floating point: use // for integer division")

    __rtruediv__ = __truediv__

    def __neg__(self): return type(self)(-int(self))
    def __pos__(self): return self
    def __invert__(self): return type(self)(~int(self))
    def __abs__(self): return type(self)(abs(int(self)))

    # -- comparisons in the common type -------------------------------------------------

    def _cmp(self, other: Any, op: str) -> Any:
        # 1/0 rather than True/False: a plain int keeps arithmetic on the result in the Fixed
        # types (True << u8(x) would be bool's own shift), as compiled code computes it
        if not isinstance(other, int):
            return NotImplemented
        return int(compare(op, self, other))

    def __eq__(self, o): return self._cmp(o, "==")
    def __ne__(self, o): return self._cmp(o, "!=")
    def __lt__(self, o): return self._cmp(o, "<")
    def __le__(self, o): return self._cmp(o, "<=")
    def __gt__(self, o): return self._cmp(o, ">")
    def __ge__(self, o): return self._cmp(o, ">=")

    __hash__ = int.__hash__


def _make(name: str, bits: int, signed: bool) -> type:
    doc = f"{'Signed' if signed else 'Unsigned'} {bits}-bit integer (C ``{'' if signed else 'u'}int{bits}_t``)."
    return type(name, (Fixed,), {"bits": bits, "signed": signed, "__slots__": (), "__doc__": doc})


u8 = _make("u8", 8, False)
u16 = _make("u16", 16, False)
u32 = _make("u32", 32, False)
u64 = _make("u64", 64, False)
i8 = _make("i8", 8, True)
i16 = _make("i16", 16, True)
i32 = _make("i32", 32, True)
i64 = _make("i64", 64, True)
INT_TYPES: dict[str, type] = {t.__name__: t for t in (u8, u16, u32, u64, i8, i16, i32, i64)}


def common_type(a: type, b: type) -> type:
    """The type of ``a OP b``: Fixed types win over plain int; wider wins; at equal width, unsigned."""
    fa, fb = _is_fixed(a), _is_fixed(b)
    if not fa:
        return b if fb else int
    if not fb:
        return a
    if a.bits != b.bits:
        return a if a.bits > b.bits else b
    return b if a.signed else a


def _is_fixed(t: type) -> bool:
    return isinstance(t, type) and issubclass(t, Fixed)


def _plain(t: type) -> tuple[int, bool]:
    """(bits, signed) of a type; plain ints (and bools) compute as i64."""
    if _is_fixed(t):
        return t.bits, t.signed
    return 64, True


def binop(op: str, a: int, b: int, t: type) -> int:
    """``a op b`` in type ``t`` (both already values of their own types), wrapped to ``t``."""
    bits, signed = _plain(t)
    a, b = wrap(a, bits, signed), wrap(b, bits, signed)
    if op == "+":
        r = a + b
    elif op == "-":
        r = a - b
    elif op == "*":
        r = a * b
    elif op in ("//", "%"):
        if b == 0:
            r = 0 if op == "//" else a
        else:
            q = abs(a) // abs(b)
            if (a < 0) != (b < 0):
                q = -q
            r = q if op == "//" else a - q * b
    elif op == "&":
        r = a & b
    elif op == "|":
        r = a | b
    elif op == "^":
        r = a ^ b
    elif op in ("<<", ">>"):
        count = b & (31 if bits <= 32 else 63)
        r = a << count if op == "<<" else a >> count
    else:  # pragma: no cover - the callers pass only the operators above
        raise ValueError(op)
    return wrap(r, bits, signed)


def compare(op: str, a: int, b: int) -> bool:
    """``a op b`` compared in their common type."""
    bits, signed = _plain(common_type(type(a), type(b)))
    x, y = wrap(int(a), bits, signed), wrap(int(b), bits, signed)
    if op == "==":
        return x == y
    if op == "!=":
        return x != y
    if op == "<":
        return x < y
    if op == "<=":
        return x <= y
    if op == ">":
        return x > y
    return x >= y


_CONST_CLASSES: dict[type, type] = {}


def Const(t: type, value: int = 0) -> Any:
    """A read-only global (``.rodata``), settable before load through ``spec.variables``.

    In CPython it is a value of type ``t``; compiled, reads come from the
    frozen ``.rodata`` map, so the verifier can prune code it disables.

    >>> LIMIT = Const(u64, 100)
    >>> LIMIT + 1, is_const(LIMIT)
    (u64(101), True)
    """
    if not _is_fixed(t):
        raise TypeError(f"Const(): the type must be one of {', '.join(INT_TYPES)}, not {t!r}")
    cls = _CONST_CLASSES.get(t)
    if cls is None:
        cls = _CONST_CLASSES[t] = type(t.__name__, (t,), {"__slots__": (), "_const": True})
    return cls(value)


def is_const(value: Any) -> bool:
    """True for a value made by :func:`Const`."""
    return getattr(type(value), "_const", False)


def type_of_value(value: Any) -> type:
    """The declared type of a global's value (the Fixed type, not its Const subclass)."""
    t = type(value)
    return t.__mro__[1] if is_const(value) else t


# -- aggregates: fixed arrays, pointers, Structs ------------------------------------------------------

class ArrayType:
    """``elem[count]``: a fixed array (``u8[16]``), made by indexing an integer type."""

    __slots__ = ("elem", "count")
    _cache: dict[tuple[Any, int], "ArrayType"] = {}

    def __new__(cls, elem: Any, count: int) -> "ArrayType":
        key = (elem, count)
        found = cls._cache.get(key)
        if found is None:
            found = object.__new__(cls)
            found.elem = elem
            found.count = count
            cls._cache[key] = found
        return found

    @property
    def size(self) -> int:
        return sizeof(self.elem) * self.count

    @property
    def __name__(self) -> str:   # messages
        return f"{getattr(self.elem, '__name__', self.elem)}[{self.count}]"

    def __repr__(self) -> str:
        return self.__name__

    def __call__(self) -> Any:
        """A zeroed array value (CPython): a bytearray for u8, else a list."""
        if self.elem.bits == 8 and not self.elem.signed:
            return bytearray(self.count)
        return [self.elem(0) for _ in range(self.count)]


def array_of(elem: Any, count: Any) -> ArrayType:
    if not isinstance(count, int) or count <= 0:
        raise TypeError(f"array length must be a positive int, not {count!r}")
    if not (isinstance(elem, type) and issubclass(elem, (Fixed, Struct))):
        raise TypeError(f"arrays hold integers or Structs, not {elem!r}")
    return ArrayType(elem, count)


class PtrType:
    """A pointer to ``target`` (what ``RingBuf.reserve(T)`` returns; may be NULL until checked)."""

    __slots__ = ("target",)
    _cache: dict[Any, "PtrType"] = {}

    def __new__(cls, target: Any) -> "PtrType":
        found = cls._cache.get(target)
        if found is None:
            found = object.__new__(cls)
            found.target = target
            cls._cache[target] = found
        return found

    @property
    def __name__(self) -> str:
        return f"{getattr(self.target, '__name__', self.target)}*"


def sizeof(t: Any) -> int:
    if isinstance(t, type) and issubclass(t, Fixed):
        return t.bits // 8
    if isinstance(t, ArrayType):
        return t.size
    if isinstance(t, type) and issubclass(t, Struct):
        return t._size
    if isinstance(t, PtrType):
        return 8
    raise TypeError(f"no size for {t!r}")


def alignof(t: Any) -> int:
    if isinstance(t, type) and issubclass(t, Fixed):
        return t.bits // 8
    if isinstance(t, ArrayType):
        return alignof(t.elem)
    if isinstance(t, type) and issubclass(t, Struct):
        return t._align
    return 8


class Struct:
    """Base of record types with C layout; fields come from the class annotations."""

    _fields: dict[str, tuple[int, Any]] = {}
    _size = 0
    _align = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        import sys

        ns = vars(sys.modules[cls.__module__]) if cls.__module__ in sys.modules else {}
        fields: dict[str, tuple[int, Any]] = {}
        off = 0
        align = 1
        for name, ann in cls.__dict__.get("__annotations__", {}).items():
            t = eval(ann, dict(ns), dict(vars(cls))) if isinstance(ann, str) else ann
            try:
                a, s = alignof(t), sizeof(t)
            except TypeError:
                raise TypeError(f"{cls.__name__}.{name}: fields are integers (u8..i64), arrays (u8[16]) or "
                                f"Structs, not {t!r}") from None
            off = (off + a - 1) // a * a
            fields[name] = (off, t)
            off += s
            align = max(align, a)
        cls._fields = fields
        cls._align = align
        cls._size = (off + align - 1) // align * align
        cls._btf = None

    def __init__(self, **values: Any) -> None:
        for name, (_off, t) in self._fields.items():
            setattr(self, name, t() if not isinstance(t, type) or not issubclass(t, Fixed) else t(0))
        for k, v in values.items():
            if k not in self._fields:
                raise AttributeError(f"{type(self).__name__} has no field {k!r}")
            setattr(self, k, v)

    def __setattr__(self, name: str, value: Any) -> None:
        # an integer field holds its own type: storing converts (wraps) as the kernel's store does
        field = self._fields.get(name)
        if field is not None and isinstance(value, int) and isinstance(field[1], type) and issubclass(field[1], Fixed):
            value = field[1](value)
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields)
        return f"{type(self).__name__}({inner})"

    @classmethod
    def btf(cls) -> Any:
        """The BTF type of this struct (for ``RingBufReader(m, record=Event.btf())``)."""
        if cls._btf is None:
            cls._btf = BTFTypes().of(cls)
        return cls._btf


class BTFTypes:
    """The BTF type of each pybpf.lang type, one object per type, so each is written once."""

    def __init__(self) -> None:
        self.ints: dict[Any, bt.Type] = {}
        self.int32 = bt.Int("int", 4, bt.IntEncoding.SIGNED)
        self.void_ptr = bt.Pointer(bt.VOID)

    def of(self, t: Any) -> bt.Type:
        if isinstance(t, type) and issubclass(t, Fixed):
            found = self.ints.get(t)
            if found is None:
                found = self.ints[t] = bt.Int(t.__name__, t.bits // 8,
                                              bt.IntEncoding.SIGNED if t.signed else bt.IntEncoding.NONE)
            return found
        found = self.ints.get(t)
        if found is not None:
            return found
        if isinstance(t, ArrayType):
            found = bt.Array(self.of(t.elem), None, t.count)
        elif isinstance(t, PtrType):
            found = bt.Pointer(self.of(t.target))
        elif isinstance(t, type) and issubclass(t, Struct):
            found = bt.Struct(t.__name__, t._size)
            self.ints[t] = found
            found.members = [bt.Member(name, self.of(ft), 8 * off) for name, (off, ft) in t._fields.items()]
            return found
        else:
            raise TypeError(f"no BTF for {t!r}")
        self.ints[t] = found
        return found

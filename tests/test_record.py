"""pybpf._record: the plain-data base classes of the library core (no root, no kernel)."""

from __future__ import annotations

import copy
import pickle

import pytest

from pybpf._record import FrozenRecord, Record


class Point(Record):
    __slots__ = ("x", "y", "_cache")

    def __init__(self, x: int, y: int = 0) -> None:
        self.x, self.y, self._cache = x, y, None


class Point3(Point):
    __slots__ = ("z",)

    def __init__(self, x: int, y: int = 0, z: int = 0) -> None:
        super().__init__(x, y)
        self.z = z


class Pair(FrozenRecord):
    __slots__ = ("a", "b")

    def __init__(self, a: int, b: object = None) -> None:
        super().__init__(a=a, b=b)


def test_fields_are_the_public_slots_base_first():
    assert Point._fields == ("x", "y") and Point3._fields == ("x", "y", "z")
    assert repr(Point3(1, 2, 3)) == "Point3(x=1, y=2, z=3)"


def test_equality_needs_the_same_class_and_fields_and_ignores_private_slots():
    p, q = Point(1, 2), Point(1, 2)
    q._cache = "something"
    assert p == q and p != Point(1, 3) and Point(1, 2) != Point3(1, 2)
    with pytest.raises(TypeError):
        hash(p)                      # mutable: not hashable


def test_replace_and_asdict():
    p = Point3(1, 2, 3)
    assert p._replace(y=9) == Point3(1, 9, 3) and p.y == 2
    assert p._asdict() == {"x": 1, "y": 2, "z": 3}
    with pytest.raises(TypeError, match="no field w"):
        p._replace(w=1)


def test_frozen_records_are_read_only_hashable_and_pickle():
    p = Pair(1, "x")
    with pytest.raises(AttributeError, match="read-only"):
        p.a = 2
    with pytest.raises(AttributeError, match="read-only"):
        del p.b
    assert hash(p) == hash(Pair(1, "x")) and {p: 1}[Pair(1, "x")] == 1
    assert pickle.loads(pickle.dumps(p)) == p and copy.deepcopy(p) == p and copy.copy(p) == p
    assert p._replace(b="y") == Pair(1, "y")
    with pytest.raises(AttributeError):
        FrozenRecord.__init__(Pair.__new__(Pair), a=1, c=2)    # a name that is not a field

"""Parse .BTF.ext sections: func_info, line_info and CO-RE relocations, as objects.

The loader keeps these records packed (:mod:`pybpf.object.btf_ext`); this
module gives them as named tuples, for tools, tests and the writer's
:func:`~pybpf.btf.writer.encode_ext`.  Every malformed input raises
:class:`~pybpf.errors.ObjectError` naming what is wrong and the byte offset.

Example::

    from pybpf.btf.reader import Spec
    from pybpf.btf.ext import ExtInfo

    prog = Spec.parse(btf_bytes)
    ext = ExtInfo.parse(btf_ext_bytes, prog)
    for rec in ext.core_relos["raw_tp/sys_enter"]:
        print(rec.insn_off // 8, rec.kind.name, rec.access_str)
"""

from __future__ import annotations

import enum
import struct
from collections import namedtuple

from pybpf.btf.layout import blob_order
from pybpf.errors import ObjectError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pybpf.btf.reader import Spec

__all__ = ["ExtInfo", "FuncInfo", "LineInfo", "CoreRelo", "CoreRelocKind"]

_EXT_HEADER_LEN = 24          # without the CO-RE part (added in Linux 5.5 / LLVM 10)
_EXT_HEADER_LEN_CORE = 32


class CoreRelocKind(enum.IntEnum):
    """``enum bpf_core_relo_kind`` (CO-RE relocation kinds).

    >>> CoreRelocKind(0).name
    'FIELD_BYTE_OFFSET'
    """

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12


class FuncInfo(namedtuple("FuncInfo", ("insn_off", "type_id"))):
    """``bpf_func_info``: the function (FUNC ``type_id``) starting at byte ``insn_off`` of its section.

    >>> FuncInfo(insn_off=0, type_id=5).insn_off // 8     # instruction index
    0
    """

    __slots__ = ()
    insn_off: int
    type_id: int


class LineInfo(namedtuple("LineInfo", ("insn_off", "file_name", "line_text", "line_num", "col"))):
    """``bpf_line_info``: source position of the instruction at byte ``insn_off``.

    >>> LineInfo(16, "prog.bpf.c", "return 0;", 12, 5).line_num
    12
    """

    __slots__ = ()
    insn_off: int
    file_name: str
    line_text: str
    line_num: int
    col: int


class CoreRelo(namedtuple("CoreRelo", ("insn_off", "type_id", "access_str", "kind"))):
    """``bpf_core_relo``: instruction at byte ``insn_off`` needs ``kind`` for ``type_id``/``access_str``.

    >>> CoreRelo(8, 3, "0:1", CoreRelocKind.FIELD_BYTE_OFFSET).access_str
    '0:1'
    """

    __slots__ = ()
    insn_off: int
    type_id: int
    access_str: str
    kind: CoreRelocKind


class ExtInfo:
    """A parsed .BTF.ext section.

    ``func_info``, ``line_info`` and ``core_relos`` map an ELF section name
    ("tracepoint/syscalls/sys_enter_getpid", ".text") to its records.  Every
    ``insn_off`` is in **bytes** from the start of that section, as in the
    file (the kernel's BPF_PROG_LOAD wants instruction indexes: divide by 8).

    >>> ext = ExtInfo.parse(btf_ext_section, spec)          # doctest: +SKIP
    >>> [r.line_num for r in ext.line_info[".text"]][:3]    # doctest: +SKIP
    [10, 11, 13]
    """

    func_info: dict[str, list[FuncInfo]]
    line_info: dict[str, list[LineInfo]]
    core_relos: dict[str, list[CoreRelo]]

    def __init__(self, func_info: dict[str, list[FuncInfo]] | None = None,
                 line_info: dict[str, list[LineInfo]] | None = None,
                 core_relos: dict[str, list[CoreRelo]] | None = None) -> None:
        self.func_info = func_info or {}
        self.line_info = line_info or {}
        self.core_relos = core_relos or {}

    def __repr__(self) -> str:
        n = lambda d: sum(len(v) for v in d.values())  # noqa: E731
        return (f"<ExtInfo func_info={n(self.func_info)} line_info={n(self.line_info)} "
                f"core_relos={n(self.core_relos)}>")

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, spec: "Spec") -> "ExtInfo":
        """Parse .BTF.ext ``data`` whose strings and type ids refer to ``spec``."""
        data = bytes(data)
        order, hdr_len = blob_order(data, "BTF.ext", _EXT_HEADER_LEN)
        fi_off, fi_len, li_off, li_len = struct.unpack_from(order + "IIII", data, 8)
        cr_off = cr_len = 0
        if hdr_len >= _EXT_HEADER_LEN_CORE:
            cr_off, cr_len = struct.unpack_from(order + "II", data, 24)
        self = cls()
        reader = _ExtReader(data, order, hdr_len, spec)
        self.func_info = reader.section("func_info", fi_off, fi_len, 8, reader.func_info)
        self.line_info = reader.section("line_info", li_off, li_len, 16, reader.line_info)
        self.core_relos = reader.section("core_relo", cr_off, cr_len, 16, reader.core_relo)
        return self


class _ExtReader:
    def __init__(self, data: bytes, order: str, hdr_len: int, spec: "Spec") -> None:
        self.data = data
        self.order = order
        self.hdr_len = hdr_len
        self.spec = spec
        self.u32 = struct.Struct(order + "I")
        self.rec4 = struct.Struct(order + "IIII")

    def string(self, off: int, at: int, what: str) -> str:
        try:
            return self.spec.strings[off]
        except ObjectError:
            raise ObjectError(f"BTF.ext: {what} string offset {off} out of range at byte {at}") from None

    def type_id(self, tid: int, at: int, what: str) -> int:
        if not 0 <= tid < len(self.spec):
            raise ObjectError(f"BTF.ext: {what} type id {tid} out of range at byte {at}")
        return tid

    def func_info(self, at: int) -> FuncInfo:
        insn_off, tid = struct.unpack_from(self.order + "II", self.data, at)
        return FuncInfo(insn_off, self.type_id(tid, at + 4, "func_info"))

    def line_info(self, at: int) -> LineInfo:
        insn_off, file_off, line_off, line_col = self.rec4.unpack_from(self.data, at)
        return LineInfo(insn_off, self.string(file_off, at + 4, "line_info file name"),
                        self.string(line_off, at + 8, "line_info line"),
                        line_col >> 10, line_col & 0x3FF)

    def core_relo(self, at: int) -> CoreRelo:
        insn_off, tid, access_off, kind = self.rec4.unpack_from(self.data, at)
        try:
            k = CoreRelocKind(kind)
        except ValueError:
            raise ObjectError(f"BTF.ext: unknown CO-RE relocation kind {kind} at byte {at + 12}") from None
        return CoreRelo(insn_off, self.type_id(tid, at + 4, "core_relo"),
                        self.string(access_off, at + 8, "core_relo access"), k)

    def section(self, what: str, off: int, length: int, min_rec: int, read) -> dict:
        out: dict[str, list] = {}
        if length == 0:
            return out
        start = self.hdr_len + off
        end = start + length
        if end > len(self.data):
            raise ObjectError(f"BTF.ext: {what} [{off}, +{length}) runs past the end of the "
                              f"{len(self.data)}-byte section at byte {self.hdr_len}")
        if length < 4:
            raise ObjectError(f"BTF.ext: {what} truncated at byte {start}")
        rec_size = self.u32.unpack_from(self.data, start)[0]
        if rec_size < min_rec or rec_size % 4:
            raise ObjectError(f"BTF.ext: {what} record size {rec_size} invalid at byte {start}")
        pos = start + 4
        while pos < end:
            if pos + 8 > end:
                raise ObjectError(f"BTF.ext: {what} section header truncated at byte {pos}")
            name_off, num = struct.unpack_from(self.order + "II", self.data, pos)
            name = self.string(name_off, pos, f"{what} section name")
            recs_end = pos + 8 + num * rec_size
            if recs_end > end:
                raise ObjectError(f"BTF.ext: {what} of section {name!r}: {num} records of "
                                  f"{rec_size} bytes run past the end at byte {pos + 4}")
            out.setdefault(name, []).extend(read(at) for at in range(pos + 8, recs_end, rec_size))
            pos = recs_end
        return out

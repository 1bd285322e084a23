"""``.BTF.ext`` kept packed: func_info and line_info records as arrays of u32.

The loader needs these records twice: to move them along with the
functions it links into each program, and in the kernel's layout for
BPF_PROG_LOAD.  Decoding every record into an object (and every line into
two strings) only to pack it again costs more than the rest of the parse, so
here each ELF section's records stay a flat ``array("I")`` sorted by
``insn_off``: func_info as ``(insn_off, type_id)`` pairs, line_info as
``(insn_off, file_name_off, line_off, line_col)`` quads (string offsets into
the object's ``.BTF`` strings, which the kernel blob keeps).  CO-RE
relocations, rare and needed as objects by :mod:`pybpf.btf.core`, are decoded.

The checks are those of :class:`pybpf.btf.reader.ExtInfo`: every malformed
input is an :class:`~pybpf.errors.ObjectError` naming the byte offset.

Example::

    ext = RawExtInfo.parse(elf.section_by_name(".BTF.ext").data, btf)
    recs = ext.line.get("xdp")       # RecordIndex or None
    recs.words[:4 * recs.offs.count(0)]   # the line records of the section's first instruction
"""

from __future__ import annotations

import struct
import sys
from array import array

from pybpf.btf.layout import blob_order
from pybpf.errors import ObjectError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable
    from pybpf.btf.reader import Spec

__all__ = ["RawExtInfo", "RecordIndex"]

_U32 = "I" if array("I").itemsize == 4 else "L"
_HEADER_LEN = 24
_HEADER_LEN_CORE = 32
_HDR = struct.Struct("<IIII")
_SECTION_HEADER = {order: struct.Struct(order + "II") for order in "<>"}   # name_off, num_info


class RecordIndex:
    """The records of one ELF section: ``width`` u32 words each, sorted by their first word (``offs``:
    those words, as a list to bisect; :func:`pybpf.object.linker.assign` cuts out each function's)."""

    __slots__ = ("words", "offs", "width")

    def __init__(self, words: array, width: int) -> None:
        offs = words[0::width].tolist()
        if offs != sorted(offs):
            order = sorted(range(len(offs)), key=offs.__getitem__)   # stable, like sorted(key=insn_off)
            out = array(words.typecode)
            for i in order:
                out.extend(words[width * i:width * i + width])
            words = out
            offs = [offs[i] for i in order]
        self.words = words
        self.offs = offs
        self.width = width


class RawExtInfo:
    """func_info/line_info by ELF section name (:class:`RecordIndex`), CO-RE relocations as lists."""

    __slots__ = ("func", "line", "core")

    def __init__(self) -> None:
        self.func: dict[str, RecordIndex] = {}
        self.line: dict[str, RecordIndex] = {}
        self.core: dict[str, list] = {}

    @classmethod
    def parse(cls, data: bytes, spec: "Spec") -> "RawExtInfo":
        """Parse .BTF.ext ``data`` whose strings and type ids refer to ``spec``."""
        order, hdr_len = blob_order(data, "BTF.ext", _HEADER_LEN)
        fi_off, fi_len, li_off, li_len = struct.unpack_from(order + "IIII", data, 8)
        cr_off = cr_len = 0
        if hdr_len >= _HEADER_LEN_CORE:
            cr_off, cr_len = struct.unpack_from(order + "II", data, 24)
        self = cls()
        r = _Reader(data, order, hdr_len, spec)
        if fi_len:
            for name, words in r.sections("func_info", fi_off, fi_len, 8):
                self.func[name] = RecordIndex(words, 2)
        if li_len:
            for name, words in r.sections("line_info", li_off, li_len, 16):
                self.line[name] = RecordIndex(words, 4)
        if cr_len:
            for name, words in r.sections("core_relo", cr_off, cr_len, 16):
                self.core[name] = r.core_relos(words)
        return self


class _Reader:
    def __init__(self, data: bytes, order: str, hdr_len: int, spec: "Spec") -> None:
        self.data = data
        self.order = order
        self.hdr_len = hdr_len
        self.spec = spec
        self.swap = (order == "<") != (sys.byteorder == "little")

    def string(self, off: int, at: int, what: str) -> str:
        try:
            return self.spec.strings[off]
        except ObjectError:
            raise ObjectError(f"BTF.ext: {what} string offset {off} out of range at byte {at}") from None

    def sections(self, what: str, off: int, length: int, min_rec: int) -> list[tuple[str, array]]:
        """(section name, records) in file order, each checked; a name seen twice gets its records
        appended."""
        out: dict[str, array] = {}
        data = self.data
        start = self.hdr_len + off
        end = start + length
        if end > len(data):
            raise ObjectError(f"BTF.ext: {what} [{off}, +{length}) runs past the end of the "
                              f"{len(data)}-byte section at byte {self.hdr_len}")
        if length < 4:
            raise ObjectError(f"BTF.ext: {what} truncated at byte {start}")
        rec_size = struct.unpack_from(self.order + "I", data, start)[0]
        if rec_size < min_rec or rec_size % 4:
            raise ObjectError(f"BTF.ext: {what} record size {rec_size} invalid at byte {start}")
        width = min_rec // 4
        stride = rec_size // 4
        check = self.check_func_info if what == "func_info" else \
            self.check_line_info if what == "line_info" else self.check_core_relo
        strings = self.spec.strings
        header = _SECTION_HEADER[self.order]
        pos = start + 4
        while pos < end:
            if pos + 8 > end:
                raise ObjectError(f"BTF.ext: {what} section header truncated at byte {pos}")
            name_off, num = header.unpack_from(data, pos)
            try:
                name = strings[name_off]
            except ObjectError:
                raise ObjectError(f"BTF.ext: {what} section name string offset {name_off} out of range "
                                  f"at byte {pos}") from None
            recs_end = pos + 8 + num * rec_size
            if recs_end > end:
                raise ObjectError(f"BTF.ext: {what} of section {name!r}: {num} records of "
                                  f"{rec_size} bytes run past the end at byte {pos + 4}")
            words = array(_U32, data[pos + 8:recs_end])
            if self.swap:
                words.byteswap()
            if stride != width:
                packed = array(_U32, bytes(4 * width * num))
                for k in range(width):
                    packed[k::width] = words[k::stride]
                words = packed
            # where record i starts in the file, for messages
            check(words, pos + 8, rec_size)
            have = out.get(name)
            if have is None:
                out[name] = words
            else:
                have.extend(words)
            pos = recs_end
        return list(out.items())

    def _bad_record(self, words: array, width: int, field: int, limit: int, at: int, rec_size: int,
                    message: Callable[[int, int], str]) -> ObjectError:
        for i in range(0, len(words), width):
            if words[i + field] >= limit:
                return ObjectError(message(words[i + field], at + (i // width) * rec_size + 4 * field))
        return ObjectError(message(-1, at))  # pragma: no cover - only called when one is bad

    def check_func_info(self, words: array, at: int, rec_size: int) -> None:
        n = len(self.spec)
        if words and max(words[1::2]) >= n:
            raise self._bad_record(words, 2, 1, n, at, rec_size,
                                   lambda tid, where: f"BTF.ext: func_info type id {tid} out of range at byte {where}")

    def check_line_info(self, words: array, at: int, rec_size: int) -> None:
        if not words:
            return
        strings = self.spec.strings
        if strings.base is not None:  # pragma: no cover - an object's BTF is never split
            for i in range(0, len(words), 4):
                self.string(words[i + 1], at + (i // 4) * rec_size + 4, "line_info file name")
                self.string(words[i + 2], at + (i // 4) * rec_size + 8, "line_info line")
            return
        limit = max(len(strings), 1)
        for field, what in ((1, "line_info file name"), (2, "line_info line")):
            if max(words[field::4]) >= limit:
                raise self._bad_record(
                    words, 4, field, limit, at, rec_size,
                    lambda off, where: f"BTF.ext: {what} string offset {off} out of range at byte {where}")

    def check_core_relo(self, words: array, at: int, rec_size: int) -> None:
        from pybpf.btf.reader import CoreRelocKind

        n = len(self.spec)
        for i in range(0, len(words), 4):
            where = at + (i // 4) * rec_size
            tid, access_off, kind = words[i + 1], words[i + 2], words[i + 3]
            if kind not in CoreRelocKind._value2member_map_:
                raise ObjectError(f"BTF.ext: unknown CO-RE relocation kind {kind} at byte {where + 12}")
            if tid >= n:
                raise ObjectError(f"BTF.ext: core_relo type id {tid} out of range at byte {where + 4}")
            self.string(access_off, where + 8, "core_relo access")

    def core_relos(self, words: array) -> list[Any]:
        from pybpf.btf.reader import CoreRelo, CoreRelocKind

        strings = self.spec.strings
        recs = [CoreRelo(words[i], words[i + 1], strings[words[i + 2]], CoreRelocKind(words[i + 3]))
                for i in range(0, len(words), 4)]
        recs.sort(key=lambda r: r.insn_off)
        return recs

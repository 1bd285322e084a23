"""CO-RE (compile once, run everywhere): relocate a program to the running kernel's types.

clang records, for every instruction that depends on a kernel type's layout,
a ``bpf_core_relo`` in .BTF.ext: which instruction, which local type, which
access ("0:95:3" = member 95, then element 3) and what is wanted (a field's
offset, size, signedness, bitfield shifts, whether it exists; a type's id,
size, existence; an enumerator's value or existence).  The compiler wrote
the local answer into the instruction; :func:`apply_relocations` finds the
same thing in the target BTF (the kernel's, by default) and rewrites the
instruction with the target's answer:

- ALU/ALU64 with an immediate (``r1 = 1268``): ``imm``;
- LDX/ST/STX (``r1 = *(u32 *)(r2 + 1268)``): ``off``, and for a field
  offset the access size too when the kernel field is wider or narrower and
  resizing is safe (pointers, unsigned integers);
- ``ld_imm64``: the 64-bit constant.

The instruction must hold the local value first (checked, except where the
value is legitimately unpredictable: bitfield offsets and type ids).

When the target has no match, the *exists* relocations (FIELD_EXISTS,
TYPE_EXISTS, ENUMVAL_EXISTS) and the other type-based ones (TYPE_SIZE,
TYPE_ID_TARGET, TYPE_MATCHES) produce 0, as C code expects.  Everything else
*poisons* the instruction: it becomes a call to helper ``0xbad2310``, so the
program still loads if that path is dead code (guarded by an exists check),
and the verifier reports ``invalid func unknown#195896080`` at that
instruction if it is reachable.  :func:`explain_poison` turns that index
back into a sentence for the verifier error.  Malformed relocations raise
:class:`~pybpf.errors.ObjectError` naming the section and the byte offset.

Kernel BTF needs Linux 5.4 (module BTF 5.11); TYPE_MATCHES is libbpf 1.1 /
clang 15 (no kernel support needed: it is resolved here).

Example::

    from pybpf.btf.core import apply_relocations, explain_poison
    results = apply_relocations(insns, ext.core_relos[sec], prog_btf, section=sec)
    for r in results:
        print(r)           # "#0 insn 2 FIELD_BYTE_OFFSET task_struct.real_parent: 1280 -> 1296 (vmlinux)"
    ...
    hint = explain_poison(verifier_error.insn_index, results)
    # "CO-RE relocation failed: field task_struct___old.no_such_field not found in kernel BTF"
"""

from __future__ import annotations

from pybpf._record import Record
from pybpf.asm.instruction import Instruction
from pybpf.btf.core_match import (
    ENUMVAL_KINDS, FIELD_KINDS, TYPE_KINDS, AccessSpec, Candidate, describe, find_candidates,
    match_enumval, match_field, parse_access, types_are_compat, types_match,
)
from pybpf.btf.reader import CoreRelo, CoreRelocKind, Spec
from pybpf.btf.types import Array, Composite, Enum, Int, IntEncoding, Pointer, Type
from pybpf.btf.typeinfo import essential_name, resolve, sizeof, type_name
from pybpf.errors import BPFError, ObjectError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

__all__ = ["CoreResult", "apply_relocations", "explain_poison", "is_poison", "POISON_HELPER_ID"]

#: Helper id written into poisoned instructions ("bad relo"); the verifier
#: reports "invalid func unknown#195896080" if such an instruction is reachable.
POISON_HELPER_ID = 0xBAD2310

_CALL = 0x85            # JMP | CALL
_LD_IMM64 = 0x18        # LD | DW | IMM
_ALU, _ALU64, _LD, _LDX, _ST, _STX = 0x04, 0x07, 0x00, 0x01, 0x02, 0x03
_SIZE_BITS = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}
_SIZE_BYTES = {v: k for k, v in _SIZE_BITS.items()}
_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF


class CoreResult(Record):
    """What one relocation did.

    ``index`` is the relocation's position in ``relos``; ``insn`` its slot in
    the section (``insn_off // 8``) and ``slots`` how many slots were
    rewritten (2 for ``ld_imm64``).  ``local_value`` is what the compiler
    wrote into the instruction, ``value`` what it holds now (None when
    poisoned).
    ``target`` names where the match was found ("vmlinux", a module, or
    "target" for a spec given by the caller; None when nothing matched) and
    ``target_type_id`` the matched root type's id there.  ``reason`` says
    why nothing matched (set for poisoned instructions and for zeros produced
    because the thing does not exist).

    >>> results = apply_relocations(insns, ext.core_relos[sec], local_spec, section=sec)  # doctest: +SKIP
    >>> print(results[0])                                                                 # doctest: +SKIP
    #0 insn 0 FIELD_BYTE_OFFSET task_struct.pid: 0 -> 1264 (vmlinux)
    """

    __slots__ = ("index", "insn", "kind", "type_id", "access_str", "description", "local_value", "value",
                 "poisoned", "target", "target_type_id", "reason", "section", "slots")

    def __init__(self, index: int, insn: int, kind: CoreRelocKind, type_id: int, access_str: str,
                 description: str, local_value: int, value: int | None, poisoned: bool = False,
                 target: str | None = None, target_type_id: int | None = None, reason: str | None = None,
                 section: str = "", slots: int = 1) -> None:
        self.index = index
        self.insn = insn
        self.kind = kind
        self.type_id = type_id
        self.access_str = access_str
        self.description = description
        self.local_value = local_value
        self.value = value
        self.poisoned = poisoned
        self.target = target
        self.target_type_id = target_type_id
        self.reason = reason
        self.section = section
        self.slots = slots

    def __str__(self) -> str:
        new = "poisoned" if self.poisoned else str(self.value)
        where = f" ({self.target})" if self.target else ""
        why = f" [{self.reason}]" if self.reason else ""
        return (f"#{self.index} insn {self.insn} {self.kind.name} {self.description}: "
                f"{self.local_value} -> {new}{where}{why}")


class _Field(Record):
    """A field relocation's value in one BTF, with the access size of the field: ``size`` is the
    memory access size for BYTE_OFFSET on a plain field (else 0) and ``type`` the field's
    resolved type when ``size`` is set."""

    __slots__ = ("value", "size", "type", "validate")

    def __init__(self, value: int, size: int = 0, type: Type | None = None, validate: bool = True) -> None:
        self.value = value
        self.size = size
        self.type = type
        self.validate = validate


class _Poison(Exception):
    """The relocation cannot be satisfied: poison the instruction."""


class _Outcome(Record):
    """What one relocation resolves to: the local (``orig``) and target (``new``) values."""

    __slots__ = ("orig", "new", "validate", "poison", "memsz_fail", "orig_size", "new_size", "bit_offset",
                 "cand", "reason")

    def __init__(self, orig: int, new: int, validate: bool = True, poison: bool = False,
                 memsz_fail: bool = False, orig_size: int = 0, new_size: int = 0, bit_offset: int = 0,
                 cand: Candidate | None = None, reason: str | None = None) -> None:
        self.orig = orig
        self.new = new
        self.validate = validate
        self.poison = poison
        self.memsz_fail = memsz_fail
        self.orig_size = orig_size
        self.new_size = new_size
        self.bit_offset = bit_offset
        self.cand = cand
        self.reason = reason


# --------------------------------------------------------------------------- values


def _field_value(kind: CoreRelocKind, spec: AccessSpec | None, for_local: bool) -> _Field:
    if kind == CoreRelocKind.FIELD_EXISTS:
        return _Field(1 if spec is not None else 0)
    if spec is None:
        raise _Poison()
    acc = spec.accessors[-1]
    if acc.name is None:
        # the last step is an array index (or the root itself): the element is the field
        if kind == CoreRelocKind.FIELD_BYTE_OFFSET:
            elem = resolve(acc.type)
            while isinstance(elem, Array):
                elem = resolve(elem.elem)
            return _Field(spec.bit_offset // 8, sizeof(elem), acc.type)
        if kind == CoreRelocKind.FIELD_BYTE_SIZE:
            return _Field(sizeof(acc.type))
        raise ObjectError(f"{kind.name} cannot be applied to an array element")
    holder = acc.type
    assert isinstance(holder, Composite)
    member = holder.members[acc.index]
    mt = resolve(member.type)
    bit_off, bit_sz = spec.bit_offset, member.bitfield_size
    bitfield = bit_sz > 0
    if bitfield:
        if not isinstance(mt, (Int, Enum)):
            raise ObjectError(f"bitfield {member.name!r} has type {type_name(mt)}, not an integer")
        byte_sz = mt.size
        byte_off = bit_off // 8 // byte_sz * byte_sz
        # the smallest load that covers the whole bitfield
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                where = "local" if for_local else "target"
                raise ObjectError(f"bitfield {member.name!r} ({where}) cannot be read with one 64-bit load")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        byte_sz = sizeof(mt)
        byte_off = bit_off // 8
        bit_sz = byte_sz * 8
    out = _Field(0, validate=not bitfield)      # the compiler's bitfield choices are its own
    if kind == CoreRelocKind.FIELD_BYTE_OFFSET:
        out.value = byte_off
        if not bitfield:
            elem = mt
            while isinstance(elem, Array):
                elem = resolve(elem.elem)
            out.size, out.type = sizeof(elem), mt
    elif kind == CoreRelocKind.FIELD_BYTE_SIZE:
        out.value = byte_sz
    elif kind == CoreRelocKind.FIELD_SIGNED:
        out.value = int((isinstance(mt, Enum) and mt.signed)
                        or (isinstance(mt, Int) and bool(mt.encoding & IntEncoding.SIGNED)))
        out.validate = True
    elif kind == CoreRelocKind.FIELD_LSHIFT_U64:
        out.value = 64 - (bit_off + bit_sz - byte_off * 8)      # little-endian layout
    elif kind == CoreRelocKind.FIELD_RSHIFT_U64:
        out.value = 64 - bit_sz
        out.validate = True
    return out


def _resizable(orig: Type | None, new: Type | None) -> bool:
    """Whether a load/store may change size: pointers, or unsigned integers on both sides."""
    if isinstance(orig, Pointer) and isinstance(new, Pointer):
        return True
    return (isinstance(orig, Int) and isinstance(new, Int)
            and orig.encoding != IntEncoding.SIGNED and new.encoding != IntEncoding.SIGNED)


def _type_value(kind: CoreRelocKind, root: Type | None) -> int:
    if root is None:
        return 0
    if kind == CoreRelocKind.TYPE_ID_TARGET:
        return root.id or 0
    if kind == CoreRelocKind.TYPE_SIZE:
        return sizeof(root)
    return 1        # TYPE_EXISTS, TYPE_MATCHES


def _enum_value(kind: CoreRelocKind, spec: AccessSpec | None) -> int:
    if kind == CoreRelocKind.ENUMVAL_EXISTS:
        return 1 if spec is not None else 0
    if spec is None:
        raise _Poison()
    acc = spec.accessors[0]
    assert isinstance(acc.type, Enum)
    return acc.type.values[acc.index].value


def _outcome(local: AccessSpec, targ: AccessSpec | None) -> _Outcome:
    """Local and target values of one relocation (targ None: no candidate matched)."""
    kind = local.kind
    if kind in FIELD_KINDS:
        lf = _field_value(kind, local, True)
        try:
            tf = _field_value(kind, targ, False)
        except _Poison:
            return _Outcome(lf.value, 0, poison=True)
        out = _Outcome(lf.value, tf.value, lf.validate, orig_size=lf.size, new_size=tf.size)
        if lf.size != tf.size and not _resizable(lf.type, tf.type):
            out.memsz_fail = True       # only matters for loads and stores
        return out
    if kind in TYPE_KINDS:
        orig = _type_value(kind, local.root)
        new = _type_value(kind, targ.root if targ is not None else None)
        return _Outcome(orig, new, validate=kind != CoreRelocKind.TYPE_ID_TARGET)
    try:
        return _Outcome(_enum_value(kind, local), _enum_value(kind, targ))
    except _Poison:
        return _Outcome(_enum_value(kind, local), 0, poison=True)


def _resolve(local: AccessSpec, target: Spec | None, label: str) -> _Outcome:
    """Search and match the candidates, and check that all matches agree."""
    kind = local.kind
    if kind == CoreRelocKind.TYPE_ID_LOCAL:
        tid = local.root.id or 0
        return _Outcome(tid, tid, validate=False)       # ids may change when BTF is re-encoded
    root = local.root
    if not root.name:
        raise ObjectError(f"{kind.name} relocation on an anonymous type ({type_name(root)}) "
                          "is not supported: give the type a name")
    cands = find_candidates(root, target)
    best: _Outcome | None = None
    why = ""
    for cand in cands:
        if kind in TYPE_KINDS:
            fits = (types_match(root, cand.type) if kind == CoreRelocKind.TYPE_MATCHES
                    else types_are_compat(root, cand.type))
            spec = AccessSpec(cand.spec, cand.type, kind) if fits else None
            reason = "" if fits else f"{type_name(cand.type)} differs"
        elif kind in ENUMVAL_KINDS:
            spec, reason = match_enumval(local, cand)
        else:
            spec, reason = match_field(local, cand)
        if spec is None:
            why = why or reason
            continue
        res = _outcome(local, spec)
        res.cand, res.bit_offset = cand, spec.bit_offset
        if best is None:
            best = res
        elif spec.bit_offset != best.bit_offset:
            raise ObjectError(f"ambiguous: {_cand_text(best.cand)} puts it at bit {best.bit_offset}, "
                              f"{_cand_text(cand)} at bit {spec.bit_offset}")
        elif res.poison != best.poison or res.new != best.new:
            raise ObjectError(f"ambiguous: {_cand_text(best.cand)} gives {best.new}, "
                              f"{_cand_text(cand)} gives {res.new}")
    if best is not None:
        return best
    res = _outcome(local, None)
    res.reason = _missing(local, cands, why, label)
    return res


def _cand_text(cand: Candidate | None) -> str:
    if cand is None:
        return "?"
    return f"{type_name(cand.type)} [{cand.type.id}] in {cand.origin}"


def _missing(local: AccessSpec, cands: list[Candidate], why: str, label: str) -> str:
    """Why nothing in the target matched, for CoreResult.reason and the verifier hint."""
    kind = local.kind
    what = describe(local)
    root = local.root
    nothing = f"no {_kind_word(root)} named {essential_name(root.name)}"
    if kind in TYPE_KINDS:
        if not cands:
            return f"{what} not found in {label} ({nothing})"
        return f"{what} does not match {type_name(cands[0].type)} in {label}"
    if kind in ENUMVAL_KINDS:
        if not cands:
            return f"enum value {what} not found in {label} ({nothing})"
        return f"enum value {what} not found in {label}"
    if not cands:
        return f"field {what} not found in {label} ({nothing})"
    if why and "does not fit" in why:
        return f"field {what} has an incompatible type in {label}: {why}"
    return f"field {what} not found in {label}"


def _kind_word(t: Type) -> str:
    if isinstance(t, Enum):
        return "enum"
    return t.kind.name.lower().replace("_", " ")


# --------------------------------------------------------------------------- patching


def is_poison(insn: Instruction) -> bool:
    """Whether ``insn`` is an instruction poisoned by a failed CO-RE relocation.

    >>> from pybpf.asm import builder as b
    >>> is_poison(b.call_helper(POISON_HELPER_ID)), is_poison(b.exit_())
    (True, False)
    """
    return insn.code == _CALL and insn.src == 0 and insn.imm == POISON_HELPER_ID


def _poison(insn: Instruction) -> None:
    insn.code, insn.dst, insn.src, insn.off, insn.imm = _CALL, 0, 0, 0, POISON_HELPER_ID


def _s32(v: int) -> int:
    v &= _M32
    return v - (1 << 32) if v & 0x80000000 else v


def _check(insns: list[Instruction], slot: int, res: _Outcome) -> bool:
    """Validate the instruction against the local value; True if it must be poisoned."""
    insn = insns[slot]
    if res.poison:
        return True
    cls = insn.code & 0x07
    if cls in (_ALU, _ALU64):
        if insn.code & 0x08:
            raise ObjectError(f"instruction {slot} (opcode {insn.code:#04x}) takes a register, "
                              "not an immediate, and cannot be relocated")
        if res.validate and (insn.imm & _M32) != (res.orig & _M32):
            raise ObjectError(f"instruction {slot} holds immediate {insn.imm}, expected the local "
                              f"value {res.orig}")
        if not -(1 << 31) <= res.new <= _M32:
            raise ObjectError(f"value {res.new} does not fit the 32-bit immediate of instruction {slot}")
        return False
    if cls in (_LDX, _ST, _STX):
        if res.validate and insn.off != res.orig:
            raise ObjectError(f"instruction {slot} accesses offset {insn.off}, expected the local "
                              f"value {res.orig}")
        if not 0 <= res.new <= 0x7FFF:
            raise ObjectError(f"offset {res.new} does not fit the 16-bit offset of instruction {slot}")
        if res.memsz_fail:
            return True
        if res.new_size != res.orig_size:
            have = _SIZE_BYTES[insn.code & 0x18]
            if have != res.orig_size:
                raise ObjectError(f"instruction {slot} accesses {have} bytes, expected the local "
                                  f"field size {res.orig_size}")
            if res.new_size not in _SIZE_BITS:
                raise ObjectError(f"instruction {slot} would need a {res.new_size}-byte access")
        return False
    if cls == _LD:
        nxt = insns[slot + 1] if slot + 1 < len(insns) else None
        if (insn.code != _LD_IMM64 or insn.src or insn.off or nxt is None or nxt.code
                or nxt.dst or nxt.src or nxt.off):
            raise ObjectError(f"instruction {slot} is not a plain 64-bit immediate load (ld_imm64)")
        value = (insn.imm & _M32) | (nxt.imm & _M32) << 32
        if res.validate and value != res.orig & _M64:
            raise ObjectError(f"instruction {slot} loads {value:#x}, expected the local value {res.orig:#x}")
        return False
    raise ObjectError(f"instruction {slot} (opcode {insn.code:#04x}) cannot carry a CO-RE relocation")


def _insn_value(insns: list[Instruction], slot: int) -> int:
    """The value the compiler wrote into the relocatable field of the instruction."""
    insn = insns[slot]
    cls = insn.code & 0x07
    if cls in (_LDX, _ST, _STX):
        return insn.off
    if insn.code == _LD_IMM64 and slot + 1 < len(insns):
        return (insn.imm & _M32) | (insns[slot + 1].imm & _M32) << 32
    return insn.imm


def _patch(insns: list[Instruction], slot: int, res: _Outcome, poison: bool) -> int:
    """Rewrite the instruction; return the number of slots touched."""
    insn = insns[slot]
    if poison:
        if insn.code == _LD_IMM64 and slot + 1 < len(insns):
            _poison(insns[slot + 1])    # else the verifier complains of "unknown opcode 00"
            _poison(insn)
            return 2
        _poison(insn)
        return 1
    cls = insn.code & 0x07
    if cls in (_ALU, _ALU64):
        insn.imm = _s32(res.new)
    elif cls in (_LDX, _ST, _STX):
        insn.off = res.new
        if res.new_size != res.orig_size:
            insn.code = (insn.code & ~0x18) | _SIZE_BITS[res.new_size]
    else:
        value = res.new & _M64
        insn.imm, insns[slot + 1].imm = _s32(value), _s32(value >> 32)
        return 2
    return 1


# --------------------------------------------------------------------------- API


def apply_relocations(insns: list[Instruction], relos: Sequence[CoreRelo], local: Spec,
                      target: Spec | None = None, *, section: str = "") -> list[CoreResult]:
    """Apply ``relos`` (one section's CO-RE records) to ``insns`` in place.

    ``insns`` are the section's instruction slots, ``local`` the object's
    BTF, ``target`` the BTF to relocate against (None: the running kernel's,
    vmlinux then module BTF).  Returns one :class:`CoreResult` per
    relocation, in order.  Raises :class:`~pybpf.errors.ObjectError` for a
    malformed or ambiguous relocation; then no instruction is changed.

    >>> from pybpf.asm import builder as b, opcodes as op
    >>> from pybpf.btf import BTFKind, CoreRelo, Int, IntEncoding, Member, Struct, encode_btf, kernel_spec
    >>> local = Spec.parse(encode_btf([Struct("task_struct", 4, [Member("pid", Int("int", 4, IntEncoding.SIGNED))])]))
    >>> insns = [b.ldx_mem(op.W, 0, 1, 0), b.exit_()]             # r0 = task->pid
    >>> [r] = apply_relocations(insns, [CoreRelo(0, 1, "0:0", CoreRelocKind.FIELD_BYTE_OFFSET)], local)
    >>> insns[0].off == kernel_spec().find("task_struct", BTFKind.STRUCT).member("pid").offset == r.value
    True
    """
    label = "kernel BTF" if target is None else "target BTF"
    plans: list[tuple[int, _Outcome, bool, CoreResult]] = []
    for index, relo in enumerate(relos):
        where = f"section {section!r}: CO-RE relocation #{index} at byte offset {relo.insn_off}"
        try:
            kind = CoreRelocKind(relo.kind)
        except ValueError:
            raise ObjectError(f"{where}: unknown relocation kind {relo.kind!r}") from None
        try:
            if relo.insn_off < 0 or relo.insn_off % 8:
                raise ObjectError("offset is not a multiple of the 8-byte instruction size")
            slot = relo.insn_off // 8
            if slot >= len(insns):
                raise ObjectError(f"instruction {slot} is past the end of the section "
                                  f"({len(insns)} instructions)")
            root = local.type_by_id(relo.type_id)
            spec = parse_access(local, root, kind, relo.access_str)
            desc = describe(spec)
        except ObjectError as err:
            raise err.add_context(f"{where} ({kind.name} [{relo.type_id}] {relo.access_str!r})") from None
        try:
            res = _resolve(spec, target, label)
            poison = _check(insns, slot, res)
        except BPFError as err:
            raise err.add_context(f"{where} ({kind.name} {desc})") from None
        if poison and not res.poison and res.memsz_fail:
            have = _SIZE_BYTES[insns[slot].code & 0x18]
            res.reason = (f"field {desc} is {res.new_size} bytes in {label} but accessed as {have}: "
                          "only unsigned integers and pointers can be resized")
        result = CoreResult(
            index=index, insn=slot, kind=kind, type_id=relo.type_id, access_str=relo.access_str,
            description=desc, local_value=_insn_value(insns, slot), value=None if poison else res.new,
            poisoned=poison, target=res.cand.origin if res.cand else None,
            target_type_id=res.cand.type.id if res.cand else None,
            reason=res.reason, section=section,
        )
        plans.append((slot, res, poison, result))
    for slot, res, poison, result in plans:
        result.slots = _patch(insns, slot, res, poison)
    return [p[3] for p in plans]


def explain_poison(insn_index: int, results: Sequence[CoreResult]) -> str | None:
    """The reason instruction ``insn_index`` was poisoned, for a verifier hint, or None.

    ``insn_index`` counts slots in the section the results came from; a
    loader that places the section at slot ``base`` of the final program
    passes ``verifier_index - base``.

    >>> explain_poison(0, results)            # doctest: +SKIP
    'CO-RE relocation failed: field task_struct.no_such_field not found in kernel BTF'
    """
    for r in results:
        if r.poisoned and r.insn <= insn_index < r.insn + r.slots:
            return f"CO-RE relocation failed: {r.reason or r.description + ' could not be relocated'}"
    return None

"""struct_ops: kernel structs of function pointers implemented by BPF programs (Linux 5.6).

A C object declares the struct in a ``SEC(".struct_ops")`` or
``SEC(".struct_ops.link")`` variable and the programs in
``SEC("struct_ops/...")`` sections::

    SEC(".struct_ops.link")
    struct tcp_congestion_ops cc = {
        .ssthresh = (void *)my_ssthresh,      /* a relocation names the program */
        .name = "pybpf_cc",                   /* data: the section's bytes */
    };

Parsing (no system calls): each variable becomes a STRUCT_OPS
:class:`~pybpf.object.spec.MapSpec` whose ``struct_ops``
(:class:`~pybpf.object.spec.StructOpsSpec`) holds the bytes in the object's
layout and, from the section's relocations, which program goes in which
function-pointer member.

Loading (:func:`plan`, then :class:`~pybpf.object.struct_ops_map.StructOpsMap`): the kernel knows a
struct ``S`` as a struct_ops type when its BTF has the wrapper
``struct bpf_struct_ops_S { struct bpf_struct_ops_common_value common; S data; }``.
Each program is loaded with ``attach_btf_id`` = the id of ``S`` and
``expected_attach_type`` = the index of its member in ``S``; the map is
created with ``btf_vmlinux_value_type_id`` = the wrapper's id, a u32 key and
the wrapper's size as value size (plus BPF_F_LINK for ``.struct_ops.link``,
Linux 6.4).  Its value is the wrapper in the *kernel's* layout: data members
copied by name from the object's layout (the kernel's struct may have more
members, in another order), function pointers holding program fds.

Registering: :func:`pybpf.links.struct_ops.attach_struct_ops` writes the
value (once: the kernel takes a struct_ops value only once) and, for a
``.struct_ops.link`` map, creates the BPF link; for a plain ``.struct_ops``
map the update itself registers and deleting key 0 unregisters.

Struct_ops types of kernel modules (Linux 6.9, ``value_type_btf_obj_fd``)
are not supported yet: only vmlinux types.

Example::

    obj = pybpf.load("cc.bpf.o")
    with obj.maps["cc"].attach():          # tcp_available_congestion_control lists it
        ...
"""

from __future__ import annotations

import struct

from pybpf._record import Record
from pybpf._sys.flags import MapFlag
from pybpf._sys.uapi import MapType
from pybpf.btf.types import BTFKind, Datasec, FuncProto, Pointer, Struct, Var
from pybpf.btf.typeinfo import essential_name, resolve, sizeof
from pybpf.errors import BPFError, NotSupportedError, ObjectError, context
from pybpf.object.elffile import R_BPF_64_ABS64, STT_NOTYPE, STT_OBJECT, STT_SECTION, ElfFile, Section
from pybpf.object.parts import STRUCT_OPS_SECTIONS, MapSpec, ProgramSpec, StructOpsSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
    from pybpf.btf.reader import Spec
    from pybpf.object.spec import ObjectSpec

__all__ = ["parse_struct_ops", "assign_programs", "KernelValue", "plan", "plan_object"]

#: the sections libbpf reads struct_ops variables from: (name, registered through a link)
WRAPPER_PREFIX = "bpf_struct_ops_"


def _is_func_pointer(t: Any) -> bool:
    r = resolve(t)
    return isinstance(r, Pointer) and isinstance(resolve(r.target), FuncProto)


# ------------------------------------------------------------------------------ parsing


def parse_struct_ops(elf: ElfFile, sec: Section, btf: "Spec | None", datasec: Any = None) -> dict[str, MapSpec]:
    """One STRUCT_OPS MapSpec per variable of a ``.struct_ops``/``.struct_ops.link`` section."""
    where = f"section '{sec.name}'"
    if btf is None:
        raise ObjectError(f"{where}: struct_ops variables need BTF (build with clang -g)")
    if datasec is None:
        datasec = btf.find(sec.name, BTFKind.DATASEC)
    if not isinstance(datasec, Datasec):
        raise ObjectError(f"{where}: no DATASEC in the BTF describes it")
    syms = {s.name: s for s in elf.symbols_in(sec.index) if s.name and s.type in (STT_OBJECT, STT_NOTYPE)}
    data = sec.data
    link = STRUCT_OPS_SECTIONS[sec.name]
    out: dict[str, MapSpec] = {}
    for vs in datasec.vars:
        var = vs.var
        if not isinstance(var, Var):
            raise ObjectError(f"{where}: DATASEC member {var.name!r} is a {var.kind.name}, not a VAR")
        name = var.name
        t = resolve(var.type)
        if not isinstance(t, Struct):
            raise ObjectError(f"{where}: struct_ops variable '{name}' is a {t.kind.name}, not a struct")
        sym = syms.get(name)
        offset = sym.value if sym is not None else vs.offset
        if offset + t.size > len(data):
            raise ObjectError(f"{where}: struct_ops variable '{name}' at offset {offset} (+{t.size}) is past the "
                              f"end of the section ({len(data)} bytes)")
        if name in out:
            raise ObjectError(f"{where}: struct_ops variable '{name}' is defined twice")
        ops = StructOpsSpec(t, bytes(data[offset:offset + t.size]), {}, link)
        out[name] = MapSpec(name=name, type=MapType.STRUCT_OPS, key_size=4, value_size=t.size, max_entries=1,
                            flags=int(MapFlag.LINK) if link else 0, value_type=t, section=sec.name,
                            kernel_name=name, offset=offset, struct_ops=ops)
    return out


def assign_programs(elf: ElfFile, sec: Section, maps: dict[str, MapSpec], program_at: dict[tuple[int, int], str],
                    programs: dict[str, ProgramSpec]) -> None:
    """Fill ``StructOpsSpec.programs`` from the section's relocations (one per function pointer)."""
    from pybpf._sys.uapi import ProgType

    owners = sorted((m.offset, m) for m in maps.values() if m.section == sec.name and m.struct_ops is not None)
    data = sec.data
    for rel in elf.relocations_for(sec.index):
        where = f"section '{sec.name}': relocation at offset {rel.offset}"
        owner = None
        for off, m in owners:
            if off <= rel.offset < off + m.value_size:
                owner = m
        if owner is None:
            raise ObjectError(f"{where}: not inside any struct_ops variable")
        ops = owner.struct_ops
        assert ops is not None
        rel_off = rel.offset - owner.offset
        member = next((m for m in resolve(ops.type).members if m.offset == rel_off and not m.bitfield_size), None)
        ctx = f"struct_ops map '{owner.name}'"
        if member is None:
            raise ObjectError(f"{ctx}: relocation at offset {rel_off} of struct {ops.type_name} is not at a member")
        ctx += f": member '{member.name}'"
        if not _is_func_pointer(member.type):
            raise ObjectError(f"{ctx}: only function pointers can refer to programs (this member is not one)")
        if rel.type != R_BPF_64_ABS64:
            raise ObjectError(f"{ctx}: unexpected relocation type {rel.type} (expected R_BPF_64_ABS64)")
        if rel.symbol >= len(elf.symbols) or rel_off + 8 > len(ops.data):
            raise ObjectError(f"{ctx}: malformed relocation")
        sym = elf.symbols[rel.symbol]
        addend = struct.unpack_from("<q", data, rel.offset)[0]
        target = sym.value + (addend if sym.type == STT_SECTION else 0)
        prog = program_at.get((sym.shndx, target))
        if prog is None:
            raise ObjectError(f"{ctx}: '{sym.name}' is not a program (struct_ops members take "
                              "SEC(\"struct_ops/...\") programs)")
        ps = programs[prog]
        if ps.type != ProgType.STRUCT_OPS:
            raise ObjectError(f"{ctx}: program '{prog}' is in section '{ps.section}', not a struct_ops program "
                              "(use SEC(\"struct_ops/...\"))")
        ops.programs[member.name] = prog
        ops.data = ops.data[:rel_off] + bytes(8) + ops.data[rel_off + 8:]


# ------------------------------------------------------------------------------ the kernel's layout


class KernelValue(Record):
    """A struct_ops map's value in the kernel's layout, but for the program fds.

    ``slots`` are ``(byte offset in the value, member, program name)``;
    ``members`` gives each program its member index (its expected attach type).
    """

    __slots__ = ("struct_name", "struct_id", "wrapper_id", "value_size", "template", "slots", "members")

    def __init__(self, struct_name: str, struct_id: int, wrapper_id: int, value_size: int, template: bytes,
                 slots: list[tuple[int, str, str]] | None = None, members: dict[str, int] | None = None) -> None:
        self.struct_name = struct_name
        self.struct_id = struct_id
        self.wrapper_id = wrapper_id
        self.value_size = value_size
        self.template = template
        self.slots = [] if slots is None else slots
        self.members = {} if members is None else members


def plan(ms: MapSpec, kernel: "Spec | None" = None) -> KernelValue:
    """Translate ``ms.struct_ops`` to the running kernel's layout (ObjectError naming the member)."""
    ops = ms.struct_ops
    if ops is None:
        raise ObjectError(f"map '{ms.name}' is not a struct_ops map")
    if kernel is None:
        from pybpf.btf.kernel import kernel_spec

        kernel = kernel_spec()
    name = essential_name(ops.type_name)
    wrapper = kernel.find(WRAPPER_PREFIX + name, BTFKind.STRUCT)
    kstruct = kernel.find(name, BTFKind.STRUCT)
    if not isinstance(wrapper, Struct) or not isinstance(kstruct, Struct):
        if kernel.find("bpf_struct_ops_common_value", BTFKind.STRUCT) is None:
            raise NotSupportedError("struct_ops", "5.6", "the kernel's BTF has no struct_ops types")
        raise ObjectError(_unknown_type(name, kstruct is not None))
    data_member = next((m for m in wrapper.members if resolve(m.type) is kstruct
                        or getattr(resolve(m.type), "id", None) == kstruct.id), None)
    if data_member is None:
        raise ObjectError(f"struct {WRAPPER_PREFIX}{name} in the kernel's BTF has no member of type struct {name}")
    base = data_member.offset
    value = bytearray(wrapper.size)
    out = KernelValue(name, int(kstruct.id or 0), int(wrapper.id or 0), wrapper.size, b"")
    kindex = {m.name: i for i, m in enumerate(kstruct.members)}
    local = resolve(ops.type)
    for m in local.members:
        with context(f"member '{m.name}'"):
            km = kstruct.members[kindex[m.name]] if m.name in kindex else None
            prog = ops.programs.get(m.name)
            if prog is not None:
                if km is None:
                    raise ObjectError(f"not in the kernel's struct {name} ({_close(m.name, kindex)})")
                if not _is_func_pointer(km.type):
                    raise ObjectError(f"program '{prog}' is given for it, but it is not a function pointer in the "
                                      f"kernel's struct {name}")
                out.slots.append((base + km.offset, m.name, prog))
                index = kindex[m.name]
                if out.members.setdefault(prog, index) != index:
                    raise ObjectError(f"program '{prog}' is used for two members of struct {name}; each member "
                                      "needs a program of its own")
                continue
            if _is_func_pointer(m.type):
                continue  # NULL: the kernel leaves the operation out
            if m.bitfield_size:
                lo, hi = m.bit_offset // 8, (m.bit_offset + m.bitfield_size + 7) // 8
                if any(ops.data[lo:hi]):
                    raise ObjectError("bitfield members are not supported in struct_ops values")
                continue
            size = sizeof(m.type)
            raw = ops.data[m.offset:m.offset + size]
            if not any(raw):
                continue  # zero: what the kernel's value starts with anyway
            if km is None:
                raise ObjectError(f"set to a non-zero value, but the kernel's struct {name} has no such member "
                                  f"({_close(m.name, kindex)})")
            if _is_func_pointer(km.type):
                raise ObjectError(f"a function pointer in the kernel's struct {name}: give it a "
                                  "SEC(\"struct_ops/...\") program, not data")
            if km.bitfield_size:
                raise ObjectError(f"a bitfield in the kernel's struct {name}: not supported")
            ksize = sizeof(km.type)
            if ksize != size:
                raise ObjectError(f"{size} bytes in the object, {ksize} bytes in the kernel's struct {name}")
            at = base + km.offset
            value[at:at + size] = raw
    out.template = bytes(value)
    return out


def plan_object(spec: "ObjectSpec", names: list[str], explicit: bool, notes: list[str]
                ) -> tuple[dict[str, KernelValue], dict[str, tuple[int, int]], list[str]]:
    """Plan every struct_ops map of ``spec`` for a load of the programs ``names``.

    Returns (map name -> :class:`KernelValue`, program -> (struct id, member
    index), the programs to load).  struct_ops programs that no map uses
    are left out with a note (as libbpf does), or refused when ``explicit``
    (asked for by name).
    """
    from pybpf._sys.uapi import ProgType

    plans: dict[str, KernelValue] = {}
    targets: dict[str, tuple[int, int]] = {}
    owner: dict[str, str] = {}
    for name, ms in spec.maps.items():
        if ms.struct_ops is None:
            continue
        with context(f"struct_ops map '{name}'"):
            kv = plans[name] = plan(ms)
            for prog, index in kv.members.items():
                if prog not in spec.programs:
                    raise ObjectError(f"program '{prog}' does not exist")
                new = (kv.struct_id, index)
                if targets.setdefault(prog, new) != new:
                    raise ObjectError(f"program '{prog}' is also used by struct_ops map '{owner[prog]}' for "
                                      "another struct or member; a program serves one member of one struct")
                owner.setdefault(prog, name)
    kept = []
    for n in names:
        if spec.programs[n].type == ProgType.STRUCT_OPS and n not in targets:
            if explicit:
                raise ObjectError(f"program '{n}': struct_ops program not used by any struct_ops map "
                                  "(put it in a SEC(\".struct_ops\") struct)")
            notes.append(f"program '{n}' not loaded: struct_ops program not used by any struct_ops map")
            continue
        kept.append(n)
    return plans, targets, kept


def _close(member: str, kernel_members: dict[str, int]) -> str:
    import difflib

    close = difflib.get_close_matches(member, list(kernel_members), n=3, cutoff=0.6)
    if close:
        return "did you mean " + ", ".join(repr(c) for c in close) + "?"
    return "its members: " + ", ".join(kernel_members)


def _unknown_type(name: str, exists: bool) -> str:
    if exists:
        return (f"struct {name} is not a struct_ops type of this kernel (its BTF has no "
                f"struct {WRAPPER_PREFIX}{name})")
    try:
        from pybpf.btf.kernel import find_in_kernel

        found = find_in_kernel(WRAPPER_PREFIX + name, BTFKind.STRUCT)
    except BPFError:
        found = []
    if found:
        return (f"struct {name} is a struct_ops type of a kernel module; pybpf supports struct_ops types of "
                "vmlinux only")
    return f"struct {name} is not in the kernel's BTF (struct_ops needs a kernel struct such as tcp_congestion_ops)"

"""Last steps on a function's code: small peephole clean-ups, then labels → jump offsets.

Peephole rules (each keeps the program's meaning):

* a jump to the label right after it is dropped;
* a jump to an unconditional jump goes straight to that jump's target;
* code after an ``exit`` or ``ja`` up to the next label is unreachable and dropped;
* ``if c goto A; goto B; A:`` becomes ``if !c goto B; A:``.
"""

from __future__ import annotations

from typing import Any

from pybpf.asm import opcodes as op
from pybpf.asm.instruction import Instruction

__all__ = ["finalize"]

_JA = op.JMP | op.JA
_EXIT = op.JMP | op.EXIT
_INVERSE = {op.JEQ: op.JNE, op.JNE: op.JEQ, op.JGT: op.JLE, op.JLE: op.JGT, op.JGE: op.JLT, op.JLT: op.JGE,
            op.JSGT: op.JSLE, op.JSLE: op.JSGT, op.JSGE: op.JSLT, op.JSLT: op.JSGE}


def _invert_skips(code: list[Any]) -> bool:
    """``jcc A; ja B; A:`` -> ``j!cc B; A:``.  True if something changed."""
    changed = False
    i = 0
    while i + 2 < len(code):
        a, b = code[i], code[i + 1]
        if isinstance(a, Instruction) and isinstance(b, Instruction) and _is_jump(a) and a.code != _JA \
                and b.code == _JA and b.reference is not None and (a.code & 0xF0) in _INVERSE:
            j = i + 2
            labels = set()
            while j < len(code) and isinstance(code[j], str):
                labels.add(code[j])
                j += 1
            if a.reference in labels:
                a.code = (a.code & ~0xF0) | _INVERSE[a.code & 0xF0]
                a.reference = b.reference
                del code[i + 1]
                changed = True
                continue
        i += 1
    return changed


def _is_call(insn: Instruction) -> bool:
    """A bpf-to-bpf call, or the address of a BPF function (ld_imm64, BPF_PSEUDO_FUNC: bpf_loop's callback);
    both hold the distance from the next instruction to the function in ``imm``."""
    if insn.reference is None:
        return False
    return (insn.code == op.JMP | op.CALL and insn.src == op.PSEUDO_CALL) or \
        (insn.code == op.LD | op.DW | op.IMM and insn.src == op.PSEUDO_FUNC)


def _is_jump(insn: Instruction) -> bool:
    cls = insn.code & 0x07
    return cls in (op.JMP, op.JMP32) and insn.code not in (op.JMP | op.CALL, _EXIT) and insn.reference is not None


def _peephole(code: list[Any], lines: list[Any]) -> tuple[list[Any], list[Any]]:
    # label -> label of the ja it points at (jump threading)
    changed = True
    code, lines = list(code), list(lines)
    while changed:
        changed = False
        first_after: dict[str, Any] = {}
        pending: list[str] = []
        for item in code:
            if isinstance(item, str):
                pending.append(item)
            else:
                for lab in pending:
                    first_after[lab] = item
                pending = []
        for item in code:
            if isinstance(item, Instruction) and _is_jump(item):
                seen = set()
                tgt = first_after.get(item.reference)
                while tgt is not None and tgt.code == _JA and tgt.reference not in seen \
                        and tgt.reference is not None and tgt is not item:
                    seen.add(tgt.reference)
                    item.reference = tgt.reference
                    tgt = first_after.get(item.reference)
                    changed = True
        out: list[Any] = []
        out_lines: list[Any] = []
        dead = False
        n = len(code)
        for i, item in enumerate(code):
            if isinstance(item, str):
                dead = False
                out.append(item)
                out_lines.append(lines[i])
                continue
            if dead:
                changed = True
                continue
            if item.code == _JA and item.reference is not None:
                # jump to a label that follows directly (only labels in between)?
                j = i + 1
                labels = set()
                while j < n and isinstance(code[j], str):
                    labels.add(code[j])
                    j += 1
                if item.reference in labels:
                    changed = True
                    continue
            out.append(item)
            out_lines.append(lines[i])
            if item.code in (_JA, _EXIT) and not (item.code == _JA and item.reference is None):
                dead = True
        pairs = list(zip(out, out_lines))
        items = [p[0] for p in pairs]
        if _invert_skips(items):
            changed = True
            keep = {id(x) for x in items}
            pairs = [p for p in pairs if id(p[0]) in keep]
            out, out_lines = [p[0] for p in pairs], [p[1] for p in pairs]
        # drop labels nobody jumps to
        used = {x.reference for x in out if isinstance(x, Instruction) and (_is_jump(x) or _is_call(x))}
        code, lines = [], []
        for item, line in zip(out, out_lines):
            if isinstance(item, str) and item not in used:
                changed = True      # the code after it may now be unreachable: another round
                continue
            code.append(item)
            lines.append(line)
    return code, lines


def finalize(code: list[Any], lines: list[Any]) -> tuple[list[Instruction], list[Any], dict[str, int]]:
    """Instructions with jump and call offsets resolved, the source line of each, and the labels."""
    code, lines = _peephole(code, lines)
    insns: list[Instruction] = []
    insn_lines: list[Any] = []
    labels: dict[str, int] = {}
    for item, line in zip(code, lines):
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)
            insn_lines.append(line)
    for i, insn in enumerate(insns):
        if _is_jump(insn):
            target = labels[insn.reference]  # type: ignore[index]
            insn.off = target - (i + 1)
            insn.reference = None
        elif _is_call(insn):
            insn.imm = labels[insn.reference] - (i + 1)  # type: ignore[index]
    return insns, insn_lines, labels

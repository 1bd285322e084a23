"""Reading the kernel verifier's log: what failed, where, and what to do about it.

The verifier explains a rejection in a log of a few lines to hundreds of
megabytes.  :func:`analyze` pulls out the part a person needs first:

* ``summary``: the instruction the verifier stopped at and its complaint,
  ``"6: (61) r0 = *(u32 *)(r0 +0): R0 invalid mem access 'map_value_or_null'"``;
* ``source_line``: the C or Python line of that instruction, from the
  ``"; <code> @ <file>:<line>"`` annotations the kernel prints when the
  program was loaded with BTF line info (Linux 5.0+; older kernels print the
  code without ``@ file:line``), else from a caller's ``line_table`` or the instructions'
  ``source`` metadata;
* ``hint``: advice for the messages people meet most often;
* ``insn_index``: the index (8-byte slot) of the failing instruction.

:func:`verifier_error` wraps the result in a :class:`pybpf.VerifierError`.
Nothing here calls the kernel.

Example::

    >>> log = '''0: R1=ctx() R10=fp0
    ... 0: (b7) r1 = 0                        ; R1=0
    ... 1: (61) r0 = *(u32 *)(r1 +0)
    ... R1 invalid mem access 'scalar'
    ... processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
    ... '''
    >>> analyze(log).summary
    "1: (61) r0 = *(u32 *)(r1 +0): R1 invalid mem access 'scalar'"
"""

from __future__ import annotations

import re
from collections import namedtuple

from pybpf.errors import VerifierError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Mapping, Sequence

    _HintRule = Callable[["re.Match[str]", str], "str | None"]

__all__ = ["Analysis", "analyze", "hint_for", "verifier_error", "STACK_LIMIT"]

STACK_LIMIT = 512
"""Bytes of stack a BPF program (all frames of one call chain together) may use."""

_MAX_MESSAGE_LINES = 3


class Analysis(namedtuple("Analysis", ("summary", "source_line", "hint", "insn_index"))):
    __slots__ = ()
    summary: str
    source_line: str | None
    hint: str | None
    insn_index: int | None


# "12: (61) r1 = *(u32 *)(r0 +0)" possibly followed by "   ; R1_w=..." (state, 6.x).
_INSN_LINE = re.compile(r"^(\d+): \(([0-9a-f]{2})\) (.*?)(?:\s+; .*)?$")
# "; return *p; @ prog.bpf.c:12", or "; return *p;" from older kernels.
_SOURCE_LINE = re.compile(r"^; (.*?)(?: @ (\S+):(\d+))?\s*$")
# Lines that describe state or statistics rather than the error.
_NOISE = re.compile(
    r"^(?:"
    r"processed \d+ insns|verification time|stack depth|max_states_per_insn|"
    r"\d+: R\d|\d+: frame\d|from \d+ to \d+:|(?:cur|old) state:|"
    r"\s*R\d+(?:_[rwD]+)?=|\s*fp-?\d+=|\s*frame\d+:|caller:|callee:|"
    r"mark_precise|last_idx|regs=|parent |func#\d+ @\d+|Live regs before insn|"
    r"propagating|Global function \S+ returns|Validating \S+ func|Func#\d+|"
    r"-- END PROG LOAD LOG --|; "
    r")"
)
_WHOLE_PROGRAM = re.compile(r"combined stack size|too many subprograms|calls are nested too deep")
_INSN_REF = re.compile(r"\b(?:insn|at insn|from insn) (\d+)\b")


def analyze(
    log: str,
    insns: Sequence[object] | None = None,
    line_table: Mapping[int, str] | None = None,
) -> Analysis:
    """Find the failing instruction, the kernel's message, the source line and a hint.

    ``insns`` (Instruction objects) are used to name the failing instruction
    when the log does not (errors found before the verifier walks the code)
    and for their ``source`` metadata; ``line_table`` maps instruction index
    to a source line and is used when the log has no line annotations.
    """
    lines = log.splitlines()
    # The statistics at the end ("processed N insns ...") are not the error.
    end = len(lines)
    while end and (not lines[end - 1].strip() or _NOISE.match(lines[end - 1])):
        end -= 1

    last_insn = None  # (line number, index, text)
    for pos in range(end - 1, -1, -1):
        m = _INSN_LINE.match(lines[pos])
        if m:
            last_insn = (pos, int(m.group(1)), f"{m.group(1)}: ({m.group(2)}) {m.group(3)}")
            break

    start = last_insn[0] + 1 if last_insn else 0
    message_lines = [ln.strip() for ln in lines[start:end] if ln.strip() and not _NOISE.match(ln)]
    if not message_lines and last_insn is None:
        # A log of state only: take the last thing said.
        message_lines = [ln.strip() for ln in lines[:end] if ln.strip()][-1:]
    message = "; ".join(message_lines[:_MAX_MESSAGE_LINES])

    if last_insn is not None and _WHOLE_PROGRAM.search(message):
        # Checked over the whole call graph (after the walk on kernels before 6.7):
        # the last instruction printed is not the culprit.
        last_insn = None
    insn_index = last_insn[1] if last_insn else None
    insn_text = last_insn[2] if last_insn else None
    if insn_index is None:
        m = _INSN_REF.search(message)
        if m:
            insn_index = int(m.group(1))
            insn_text = _describe_insn(insns, insn_index)

    if insn_text and message:
        summary = f"{insn_text}: {message}"
    else:
        summary = message or insn_text or "(the kernel gave no reason)"

    source_line = _source_from_log(lines, last_insn[0] if last_insn else end)
    if source_line is None and insn_index is not None:
        source_line = _source_from_table(insn_index, insns, line_table)

    return Analysis(summary, source_line, hint_for(message, insn_text or ""), insn_index)


def verifier_error(
    log: str,
    *,
    errno: int,
    insns: Sequence[object] | None = None,
    line_table: Mapping[int, str] | None = None,
    op: str = "load",
) -> VerifierError:
    """A :class:`VerifierError` for a rejected program, message ``"<op>: verifier rejected ..."``."""
    result = analyze(log, insns, line_table)
    return VerifierError(
        f"{op}: verifier rejected the program: {result.summary}",
        errno=errno, log=log, summary=result.summary, source_line=result.source_line,
        hint=result.hint, insn_index=result.insn_index,
    )


def has_verifier_message(log: str) -> bool:
    """True if ``log`` says more than the closing statistics."""
    return any(ln.strip() and not _NOISE.match(ln) for ln in log.splitlines())


# -- source lines -----------------------------------------------------------------------

def _source_from_log(lines: Sequence[str], before: int) -> str | None:
    for pos in range(min(before, len(lines)) - 1, -1, -1):
        line = lines[pos]
        if not line.startswith("; "):
            continue
        m = _SOURCE_LINE.match(line)
        if not m:
            continue
        code, path, lineno = m.groups()
        code = code.strip()
        return f"{path}:{lineno}: {code}" if path else code
    return None


def _source_from_table(index: int, insns: Sequence[object] | None, line_table: Mapping[int, str] | None) -> str | None:
    if line_table:
        text = line_table.get(index)
        if text is None:
            # Instructions without an entry belong to the closest line before them.
            earlier = [i for i in line_table if i <= index]
            if earlier:
                text = line_table[max(earlier)]
        if text is not None:
            return str(text)
    if insns is not None and 0 <= index < len(insns):
        for i in range(index, -1, -1):
            source = getattr(insns[i], "source", None)
            if source is not None:
                return str(source)
    return None


def _describe_insn(insns: Sequence[object] | None, index: int) -> str | None:
    """``"3: (7b) *(u64 *)(r1 +0) = r2"`` for ``insns[index]``, as the verifier would print it."""
    if insns is None or not 0 <= index < len(insns):
        return None
    insn = insns[index]
    code = getattr(insn, "code", None)
    if not isinstance(code, int):
        return None
    try:
        from pybpf.asm.disasm import format_instruction

        nxt = insns[index + 1] if index + 1 < len(insns) else None
        return format_instruction(insn, index, nxt)  # type: ignore[arg-type]
    except Exception:  # the disassembler is optional here; the opcode is still worth showing
        return f"{index}: ({code & 0xFF:02x})"


# -- hints ------------------------------------------------------------------------------



def _stack_hint(m: "re.Match[str]", insn: str) -> str | None:
    if int(m.group(1)) <= STACK_LIMIT:
        return None
    return (f"BPF programs get {STACK_LIMIT} bytes of stack; this access is {m.group(1)} bytes below "
            "the frame pointer. Keep big buffers and structs in a per-CPU array map used as "
            "scratch space instead of on the stack")


def _helper_type_hint(m: "re.Match[str]", insn: str) -> str | None:
    helper = m.group(1)
    if helper.startswith("bpf_get_attach_cookie"):
        return ("bpf_get_attach_cookie() is only available to kprobe/uprobe, tracepoint, perf_event, "
                "raw or BTF tracepoint, fentry/fexit and LSM programs, from Linux 5.15 and 6.0 for "
                "fentry/LSM; this program type has no attach cookie")
    return (f"{helper} is not available to this program type: use a program type that may call it, "
            "or a helper that this type allows")


def _cookie_arg_hint(m: "re.Match[str]", insn: str) -> str | None:
    if "bpf_get_attach_cookie" in insn:
        return ("invalid argument for bpf_get_attach_cookie(): pass the program's own context, "
                "the ctx argument that arrives in R1, saved before any helper call clobbers R1")
    return (f"R{m.group(1)} holds a {m.group(2)} where the helper expects {m.group(3)}: "
            "check the arguments passed in R1-R5, which every helper call clobbers")


def _read_ok_hint(m: "re.Match[str]", insn: str) -> str | None:
    if m.group(1) == "0" and "exit" in insn:
        return ("the program returns without setting R0: every path must put the return value "
                "in r0 before exit")
    return (f"R{m.group(1)} is read before anything was written to it on some path: set it "
            "first; every call clobbers R1-R5 and leaves its result in R0")


_GLOBAL_DATA_ADVICE = (
    "Keep state that changes in a map, or in writable global data: .data and .bss globals, "
    "which the loader turns into array maps. .rodata and const globals are read-only to the program")

_HINTS: list[tuple[re.Pattern[str], _HintRule | str]] = [
    (re.compile(r"only read from bpf_\w+ is supported"),
     "the program writes through a pointer to a map object itself, not to a map value: a "
     "mutable global such as a Rust `static mut` was referenced as a map instead of being "
     "relocated into a global-data map. " + _GLOBAL_DATA_ADVICE),
    (re.compile(r"write into map forbidden"),
     "this map is read-only to BPF programs, made with BPF_F_RDONLY_PROG as .rodata and const "
     "globals are. " + _GLOBAL_DATA_ADVICE),
    (re.compile(r"infinite loop detected|back-edge from insn"),
     "the verifier cannot prove this loop ends: give it a constant bound it can see, checking "
     "the counter against a constant in the loop condition, or use bpf_loop() from Linux 5.17 "
     "or the bpf_for() open-coded iterators from Linux 6.4"),
    (re.compile(r"BPF program is too large|The sequence of \d+ jumps is too complex"),
     "the verifier gave up after exploring 1,000,000 instructions: usually a loop whose bound it "
     "cannot see, so make the bound a small constant or use bpf_loop(); or too many branch "
     "combinations, so split the work with bpf-to-bpf calls or tail calls"),
    (re.compile(r"invalid mem access '(\w*_or_null)'|R\d+ \w*_or_null"),
     "the pointer may be NULL (a map lookup or similar helper returns NULL when it finds "
     "nothing): compare it with NULL and return early before dereferencing it"),
    (re.compile(r"invalid mem access '(scalar|inv)'"),
     "the register holds a plain number, not a pointer the verifier knows: the program "
     "dereferences an integer, such as a value computed or read from memory. Read kernel "
     "memory with bpf_probe_read_kernel() or BPF_CORE_READ, and keep pointers in registers "
     "the verifier can track"),
    (re.compile(r"invalid access to packet|offset is outside of the packet"),
     "packet access without a bounds check: compare data + offset + size with data_end and "
     "return if it is past the end, before touching the bytes"),
    (re.compile(r"invalid mem access"),
     "the register does not point to memory this program may access here; the register state "
     "printed before the failing instruction shows what the verifier thinks it is"),
    (re.compile(r"combined stack size of \d+ calls is (\d+)"),
     f"the functions of one call chain together use more than {STACK_LIMIT} bytes of stack: "
     "shrink their locals, or keep big buffers in a per-CPU array map"),
    (re.compile(r"invalid (?:variable-offset )?(?:indirect )?(?:read|write|access)? ?(?:from |to )?stack\b.*?off=-(\d+)"),
     _stack_hint),
    (re.compile(r"invalid func unknown#(\d+)"),
     "no helper with this id exists in this kernel: the helper is newer than the kernel, or "
     "the call's id is wrong"),
    (re.compile(r"unknown func (\S+)"),
     "this kernel does not know the helper or kfunc: it was added in a newer kernel, or is "
     "not available in this build"),
    (re.compile(r"program of this type cannot use helper (\S+)"), _helper_type_hint),
    (re.compile(r"cannot call GPL-restricted function"),
     "this helper is GPL-only: load the program with a GPL-compatible license, such as "
     "license='GPL' or 'Dual MIT/GPL'"),
    (re.compile(r"R(\d+) !read_ok"), _read_ok_hint),
    (re.compile(r"R(\d+) type=(\S+) expected=(.+)"), _cookie_arg_hint),
    (re.compile(r"unbounded memory access|min value is negative|"
                r"(?:min|max) value is outside of the (?:allowed memory range|array range)"),
     "the offset is not provably in range: make the index unsigned and check it against the "
     "size with an explicit if right before using it"),
    (re.compile(r"Unreleased reference"),
     "a reference taken by a helper such as bpf_ringbuf_reserve or bpf_sk_lookup_tcp must be "
     "released, by bpf_ringbuf_submit/discard or bpf_sk_release, on every path before exit"),
    (re.compile(r"At program exit the register R0 has"),
     "this program type allows only the return values shown: return one of them on every path"),
    (re.compile(r"invalid bpf_context access"),
     "this program type cannot access this context field this way: a wrong field or size, "
     "or a write to a read-only field"),
    (re.compile(r"unreachable insn"),
     "instructions that no path reaches are rejected: remove the dead code"),
    (re.compile(r"jump out of range"),
     "a jump lands outside the program: offsets count 8-byte slots and ld_imm64 takes two"),
    (re.compile(r"last insn is not an exit or jmp"),
     "the program must end with exit (or a jump back)"),
]


def hint_for(message: str, insn_text: str = "") -> str | None:
    """Advice for a verifier message (and the failing instruction's text), or None."""
    for pattern, rule in _HINTS:
        m = pattern.search(message)
        if not m:
            continue
        hint = rule if isinstance(rule, str) else rule(m, insn_text)
        if hint:
            return hint
    return None

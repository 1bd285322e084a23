"""pybpf.asm: BPF instructions -- opcodes, encoding, a builder and a disassembler.

This layer only turns instructions into bytes and text and back; it makes no
system calls.  One :class:`Instruction` is one 8-byte slot, so a 64-bit
immediate load is two of them and slot indices match the verifier's.

Example::

    >>> from pybpf.asm import builder as b, opcodes as op, encode_all, decode_all, disassemble
    >>> prog = b.assemble([
    ...     b.mov64_imm(op.R0, 0),
    ...     b.jmp_imm(op.JNE, op.R1, 7, "out"),
    ...     b.mov64_imm(op.R0, 1),
    ...     b.label("out"),
    ...     b.exit_(),
    ... ])
    >>> decode_all(encode_all(prog)) == prog
    True
    >>> print(disassemble(prog))
    0: (b7) r0 = 0
    1: (55) if r1 != 0x7 goto pc+1
    2: (b7) r0 = 1
    3: (95) exit
"""

from pybpf._lazy import lazy_exports

# Each name is imported from its module on first use: loading an object needs the
# instructions, not the builder or the disassembler.
__getattr__, __dir__ = lazy_exports(globals(), {
    "instruction": "Instruction INSN_SIZE decode_all encode_all imm64 set_imm64",
    "disasm": "disassemble format_instruction instruction_text",
    "builder": """Label label assemble mov64_imm mov64_reg mov32_imm mov32_reg movsx64_reg movsx32_reg
                  alu64_imm alu64_reg alu32_imm alu32_reg neg64 neg32 endian bswap ld_imm64 ld_map_fd
                  ld_map_value ld_func ldx_mem ldx_memsx stx_mem st_mem atomic_op jmp_imm jmp_reg
                  jmp32_imm jmp32_reg ja gotol may_goto call_helper call_kfunc call_local exit_""",
})

__all__ = [
    "Instruction", "INSN_SIZE", "decode_all", "encode_all", "imm64", "set_imm64",
    "disassemble", "format_instruction", "instruction_text", "opcodes", "builder",
    "Label", "label", "assemble",
    "mov64_imm", "mov64_reg", "mov32_imm", "mov32_reg", "movsx64_reg", "movsx32_reg",
    "alu64_imm", "alu64_reg", "alu32_imm", "alu32_reg", "neg64", "neg32", "endian", "bswap",
    "ld_imm64", "ld_map_fd", "ld_map_value", "ld_func",
    "ldx_mem", "ldx_memsx", "stx_mem", "st_mem", "atomic_op",
    "jmp_imm", "jmp_reg", "jmp32_imm", "jmp32_reg", "ja", "gotol", "may_goto",
    "call_helper", "call_kfunc", "call_local", "exit_",
]

"""``bpf_loop(n, fn)``: a loop the kernel runs, for counts a verified loop cannot reach.

A ``for i in range(...)`` loop is walked by the verifier once per iteration, so
its bound is limited by the verifier's budget (one million instructions).
``bpf_loop`` (Linux 5.17) calls a BPF function ``fn(i)`` for ``i`` in
``0 .. n-1`` (``n`` up to 8,388,608) and the verifier checks ``fn`` once.
``fn`` returns 0 to go on or 1 to stop (the verifier insists on those two
values); ``bpf_loop`` returns how many times it called ``fn``, or a negative
errno (``-E2BIG`` for a count above the limit), as an ``i32``: the verifier
inlines the helper (Linux 5.19) and its inlined code sets the error with a 32-bit
move, so only the low 32 bits of the result are meaningful on those kernels.  ``fn`` shares state with the
program through maps and globals::

    TOTAL = u64(0)

    def add(i: u64) -> int:
        global TOTAL
        TOTAL += i
        return 0

    @syscall
    def sum_up(ctx) -> int:
        bpf_loop(1000, add)      # TOTAL += 0 + 1 + ... + 999
        return 0

The call compiles to ``bpf_loop(n, &fn, NULL, 0)``: ``&fn`` is an ``ld_imm64``
of the function (BPF_PSEUDO_FUNC) and ``fn`` is compiled as a BPF function.
In CPython it runs the loop itself, with the same result.
"""

from __future__ import annotations

import errno as _errno
import types as _pytypes

from pybpf._sys.uapi import HelperID
from pybpf.asm import opcodes as op
from pybpf.lang.types import i32, u32, u64

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ast
    from typing import Any, Callable

__all__ = ["bpf_loop", "LoopMixin", "MAX_LOOPS"]

MAX_LOOPS = 1 << 23                 # BPF_MAX_LOOPS (kernel/bpf/bpf_iter.c)


def bpf_loop(n: int, fn: Callable[[Any], Any]) -> Any:
    """Call ``fn(i)`` for ``i`` in ``0 .. n-1`` until it returns 1; how many calls were made
    (``-E2BIG`` when ``n`` is over :data:`MAX_LOOPS`).  Linux 5.17."""
    n = int(u32(n))
    if n > MAX_LOOPS:
        return i32(-_errno.E2BIG)
    for i in range(n):
        if fn(u64(i)):
            return i32(i + 1)
    return i32(n)


class LoopMixin:
    """``bpf_loop(n, fn)`` calls, for the FunctionCompiler."""

    def loop_call(self, node: ast.Call) -> Any:
        if len(node.args) != 2 or node.keywords:
            raise self.error(node, "bpf_loop(n, fn) takes a count and a BPF function")
        fn = self.static(node.args[1], None)
        if not isinstance(fn, _pytypes.FunctionType):
            raise self.error(node.args[1], "bpf_loop()'s second argument is a function of the module: "
                                           "def fn(i: u64) -> int")
        callee = self.unit.subprog(self, fn, node)
        if len(callee.param_names) != 1:
            raise self.error(node.args[1], f"{fn.__name__}() must take one argument, the index")
        count = self.convert(self.expr(node.args[0]), u32)
        self.callees.add(callee.name)
        self.spill_live()
        self.into(count, 1)
        self.release(count)
        self.ld_imm64(2, 0, op.PSEUDO_FUNC, callee.entry_label, high=0)
        self.mov_imm(3, 0)
        self.mov_imm(4, 0)
        self.call_helper(HelperID.loop)
        res = self.take(0, i32)
        self.normalize(res.reg, i32)    # the inlined helper's -E2BIG is a 32-bit move
        return res

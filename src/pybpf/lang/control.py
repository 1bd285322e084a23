"""Control-flow statements for :class:`~pybpf.lang.codegen.FunctionCompiler`: if, for, while, match,
break and continue.

Translations::

    for i in range(a, b, s)   i = a (an empty range jumps over the loop); goto body
                              next: i += s
                              body: ...
                              if i < b - s goto next      (tested at the bottom: i ends on the
                                                           range's last value, as in CPython)
    match x: case 1 | 2:      if x == 1 goto b1; if x == 2 goto b1; ...; default body; goto end
                              b1: ...; goto end           (runs of 3+ values: one range check)
"""

from __future__ import annotations

import ast
from typing import Any

from pybpf.asm import opcodes as op
from pybpf.lang.aggregates import Mem
from pybpf.lang.calls import is_int_type
from pybpf.lang.emit import Imm, Reg, bits_signed

__all__ = ["ControlMixin"]


class ControlMixin:
    """Needs the FunctionCompiler's ``expr``/``branch``/``compare_jump``/``block``/``error`` and the Emitter."""

    def s_If(self, node: ast.If) -> None:
        else_label = self.new_label("else")
        self.branch(node.test, else_label, False)
        self.block(node.body)
        if node.orelse:
            end = self.new_label("endif")
            if not self._ends_with_exit():
                self.jump(end)
            self.place(else_label)
            self.block(node.orelse)
            self.place(end)
        else:
            self.place(else_label)

    def s_For(self, node: ast.For) -> None:
        """``for i in range(start, stop, step)``, tested at the bottom (one compare and one add per
        iteration for the verifier to walk).  ``i`` takes CPython's values: an empty range leaves it
        alone, a finished loop leaves the last value of the range in it."""
        it = node.iter
        if node.orelse:
            raise self.error(node, "for ... else is not supported")
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"
                and 1 <= len(it.args) <= 3 and not it.keywords):
            raise self.error(it, "only 'for i in range(...)' loops with constant bounds are supported")
        if not isinstance(node.target, ast.Name):
            raise self.error(node.target, "the loop variable must be a name")
        loc = self.locals[node.target.id]
        args = [self.expr(a) for a in it.args]
        start, stop, step = (Imm(0, int), args[0], Imm(1, int)) if len(args) == 1 else \
            (args[0], args[1], args[2] if len(args) == 3 else Imm(1, int))
        if not isinstance(stop, Imm) or not isinstance(step, Imm) or step.value == 0:
            raise self.error(it, "range() needs constant bounds and a non-zero constant step so that the "
                                 "verifier can prove the loop ends (use a module-level int constant)")
        t = loc.type
        bits, signed = bits_signed(t)
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        up = step.value > 0
        if isinstance(start, Imm):
            values = range(start.value, stop.value, step.value)
            if not values:
                return          # CPython runs nothing and leaves the variable alone
            extremes = (values[0], values[-1])
        else:
            extremes = (stop.value - 1,) if up else (stop.value + 1,)
            if (stop.value <= lo) if up else (stop.value >= hi):
                self.release(start)
                return          # no value of the variable's type is in the range
        if not all(lo <= v <= hi for v in extremes):
            raise self.error(it, f"this range yields values outside the loop variable's type "
                                 f"{getattr(t, '__name__', t)}: convert the bounds or annotate the variable")
        after = stop.value - step.value     # i has a successor in the range while i < after (i > after)
        repeats = lo <= after if up else after <= hi
        incr, body, cont, end = (self.new_label(h) for h in ("for", "body", "next", "endfor"))
        if isinstance(start, Imm):
            self._set_local(loc, Imm(start.value, t))
        else:
            v = self.convert(start, t)
            if (stop.value <= hi) if up else (stop.value >= lo):     # the range may be empty
                self.compare_jump(Reg(self.reg_of(v), t), Imm(stop.value, t), ">=" if up else "<=", end)
            self._set_local(loc, v)
        if repeats:
            self.jump(body)
            self.place(incr)
            self.cur_line = self.src.position(node)
            # i + step is still a value of the range, so of i's type: a 64-bit add, nothing to wrap (a
            # normalising AND would also make the verifier lose i's bounds and never see the loop end)
            cur = Reg(loc.reg, t) if loc.reg is not None else self.read_local(loc)
            if -(1 << 31) <= step.value < (1 << 31):
                self.emit(op.ALU64 | op.ADD | op.K, self.reg_of(cur), imm=step.value)
            else:   # a step this big only fits a 64-bit type: its add wraps nothing
                self.arith("+", Reg(self.reg_of(cur), t), Imm(step.value, t), inplace=True)
            if loc.reg is None:
                self._set_local(loc, cur)
        self.place(body)
        self.loops.append((cont, end))
        name = node.target.id
        outer = self.index_bounds.pop(name, None)
        if isinstance(start, Imm) and not _assigned_in(name, node.body):
            self.index_bounds[name] = (min(extremes), max(extremes))   # an array index the compiler can check
        self.block(node.body)
        self.index_bounds.pop(name, None)
        if outer is not None:
            self.index_bounds[name] = outer
        self.loops.pop()
        self.place(cont)
        if repeats:
            self.cur_line = self.src.position(node)
            self.compare_jump(self.read_local(loc), Imm(after, t), "<" if up else ">", incr)
        self.place(end)

    def s_While(self, node: ast.While) -> None:
        if node.orelse:
            raise self.error(node, "while ... else is not supported")
        top, end = self.new_label("while"), self.new_label("endwhile")
        self.place(top)
        self.branch(node.test, end, False)
        self.loops.append((top, end))
        self.block(node.body)
        self.loops.pop()
        self.jump(top)
        self.place(end)

    def s_Match(self, node: ast.Match) -> None:
        """match on an integer: each case compares the subject (kept in a stack slot) with constants."""
        subject = self.expr(node.subject)
        if isinstance(subject, Mem) or not is_int_type(subject.type):
            raise self.error(node.subject, "match works on integers")
        t = subject.type
        if not any(case.guard is not None for case in node.cases):
            self._match_dispatch(node, subject)
            return
        home = subject if isinstance(subject, Reg) else None   # a local in a register stays there
        if home is None:
            slot = self.perm_alloc(8)
            self.store(10, slot, self.reg_of(subject), 8)
            self.release(subject)
        end = self.new_label("endmatch")
        for case in node.cases:
            self.cur_line = self.src.position(case.pattern)
            values = self._case_values(case.pattern)
            nxt = self.new_label("case")
            if values is not None:
                body = self.new_label("body")
                if home is None:
                    s = self.alloc(t)
                    self.load(s.reg, 10, slot, 8)
                    val: Any = s
                else:
                    val = home
                for v in values:
                    self.compare_jump(Reg(self.reg_of(val), t), v, "==", body)
                self.release(val)
                self.jump(nxt)
                self.place(body)
            if case.guard is not None:
                self.branch(case.guard, nxt, False)
            self.block(case.body)
            self.jump(end)
            self.place(nxt)
        self.place(end)

    def _match_dispatch(self, node: ast.Match, subject: Any) -> None:
        """match without guards: one chain of compares on the subject's register jumps to the body of
        the first case that matches; the default body (``case _``) follows the chain, the other
        bodies come after it.  The subject is needed by the compares only, so it stays in its register."""
        t = subject.type
        reg = self.reg_of(subject)
        bodies: list[tuple[str, ast.match_case]] = []
        default = None
        for case in node.cases:
            self.cur_line = self.src.position(case.pattern)
            values = self._case_values(case.pattern)
            if values is None:        # irrefutable: Python allows it only as the last case
                default = case
                break
            label = self.new_label("body")
            self._jump_if_among(reg, t, values, label)
            bodies.append((label, case))
        self.release(subject)
        end = self.new_label("endmatch")
        if default is not None:
            self.block(default.body)
        for label, case in bodies:
            if not self._ends_with_exit():
                self.jump(end)
            self.place(label)
            self.block(case.body)
        self.place(end)

    def _jump_if_among(self, reg: int, t: Any, values: list[Imm], label: str) -> None:
        """Jump to ``label`` when ``reg`` (of type ``t``) equals one of ``values``: a run of three or
        more consecutive values is one range check (two compares; one when it starts at 0 or at the
        type's minimum)."""
        bits, signed = bits_signed(t)
        lowest = -(1 << (bits - 1)) if signed else 0
        runs: list[list[int]] = []
        for v in sorted({self.convert(v, t).value for v in values}):
            if runs and v == runs[-1][1] + 1:
                runs[-1][1] = v
            else:
                runs.append([v, v])
        for first, last in runs:
            if first == 0 and 0 < last < (1 << 31):     # 0 <= reg <= last: one unsigned compare, any sign
                self.emit(op.JMP | op.JLE | op.K, reg, imm=last, reference=label)
            elif first == lowest and last > first:
                self.compare_jump(Reg(reg, t), Imm(last, t), "<=", label)
            elif last - first >= 2:
                below = self.new_label("below")
                self.compare_jump(Reg(reg, t), Imm(first, t), "<", below)
                self.compare_jump(Reg(reg, t), Imm(last, t), "<=", label)
                self.place(below)
            else:
                for v in range(first, last + 1):
                    self.compare_jump(Reg(reg, t), Imm(v, t), "==", label)

    def _case_values(self, pat: ast.AST) -> list[Imm] | None:
        """The constants a case matches (None: everything)."""
        if isinstance(pat, ast.MatchAs) and pat.pattern is None and pat.name is None:
            return None
        if isinstance(pat, ast.MatchValue):
            v = self.expr(pat.value)
            if not isinstance(v, Imm):
                raise self.error(pat, "case values must be constants")
            return [v]
        if isinstance(pat, ast.MatchOr):
            out: list[Imm] = []
            for p in pat.patterns:
                vals = self._case_values(p)
                if vals is None:
                    return None
                out.extend(vals)
            return out
        raise self.error(pat, "match in a BPF program takes integer constants, '|' and '_' as patterns")

    def s_Break(self, node: ast.Break) -> None:
        if not self.loops:
            raise self.error(node, "'break' outside a loop")
        self.jump(self.loops[-1][1])

    def s_Continue(self, node: ast.Continue) -> None:
        if not self.loops:
            raise self.error(node, "'continue' outside a loop")
        self.jump(self.loops[-1][0])


def _assigned_in(name: str, body: list[ast.stmt]) -> bool:
    """Whether a statement of ``body`` assigns ``name`` (then its range says nothing of its values)."""
    for stmt in body:
        for node in ast.walk(stmt):
            targets: list[ast.AST] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For)):
                targets = [node.target]
            elif isinstance(node, ast.NamedExpr):
                targets = [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
    return False

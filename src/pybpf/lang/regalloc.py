"""Homes of locals: r6-r9 by linear scan over statement-level live intervals, else stack slots.

Statements are numbered in source order (nested ones too).  A local lives
from the first to the last statement that mentions it; one mentioned inside
a loop lives across the whole loop (its value may cross the back edge).
Two locals whose intervals do not overlap share a register; when more than
four are live at once, the one whose interval ends last goes to the stack
(never the context or a pointer, which the verifier must see in registers
to keep their types precise).
"""

from __future__ import annotations

import ast
from typing import Any, Callable

__all__ = ["live_intervals", "linear_scan"]

_LOOPS = (ast.For, ast.While)


def live_intervals(body: list[ast.stmt], params: list[str]) -> dict[str, list[int]]:
    """name -> [first, last] statement number (parameters start at 0)."""
    spans: dict[str, list[int]] = {p: [0, 0] for p in params}
    counter = [0]

    def mention(name: str, at: int) -> None:
        span = spans.get(name)
        if span is None:
            spans[name] = [at, at]
        else:
            span[0] = min(span[0], at)
            span[1] = max(span[1], at)

    def visit(stmts: list[ast.stmt]) -> None:
        for stmt in stmts:
            counter[0] += 1
            at = counter[0]
            loop_names: set[str] = set()
            for node in _own_nodes(stmt):
                if isinstance(node, ast.Name):
                    mention(node.id, at)
            for child in _child_blocks(stmt):
                visit(child)
            if isinstance(stmt, _LOOPS):
                end = counter[0]
                for node in ast.walk(stmt):
                    if isinstance(node, ast.Name):
                        loop_names.add(node.id)
                for name in loop_names:
                    span = spans[name]
                    span[0] = min(span[0], at)
                    span[1] = max(span[1], end)

    visit(body)
    return spans


def _child_blocks(stmt: ast.stmt) -> list[list[ast.stmt]]:
    blocks = []
    for field in ("body", "orelse", "finalbody"):
        block = getattr(stmt, field, None)
        if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
            blocks.append(block)
    if isinstance(stmt, ast.Match):
        blocks.extend(case.body for case in stmt.cases)
    return blocks


def _own_nodes(stmt: ast.stmt) -> list[ast.AST]:
    """The expression nodes of a statement, without those of its nested statements."""
    out: list[ast.AST] = []
    todo: list[ast.AST] = [stmt]
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt) or isinstance(child, ast.match_case):
                if isinstance(child, ast.match_case):
                    todo.append(child.pattern)
                    if child.guard is not None:
                        todo.append(child.guard)
                continue
            out.append(child)
            todo.append(child)
    return out


def linear_scan(locals_: list[Any], spans: dict[str, list[int]], pinned: Callable[[Any], bool],
                regs: tuple[int, ...] = (6, 7, 8, 9)) -> list[Any]:
    """Give each local of ``locals_`` a ``reg`` when one is free over its interval; returns the spilled ones.

    ``pinned(loc)`` says a local must get a register (others are spilled first).
    """
    order = sorted(locals_, key=lambda l: (spans.get(l.name, [0, 0])[0], not pinned(l)))
    free = list(regs)
    active: list[Any] = []
    spilled: list[Any] = []
    for loc in order:
        start, end = spans.get(loc.name, [0, 0])
        for other in list(active):
            if spans[other.name][1] < start:
                active.remove(other)
                free.append(other.reg)
        if free:
            free.sort()
            loc.reg = free.pop(0)
            active.append(loc)
            continue
        victims = [a for a in active if not pinned(a)]
        victim = max(victims, key=lambda a: spans[a.name][1]) if victims else None
        if victim is not None and (pinned(loc) or spans[victim.name][1] > end):
            loc.reg, victim.reg = victim.reg, None
            active.remove(victim)
            active.append(loc)
            spilled.append(victim)
        else:
            spilled.append(loc)
    return spilled

"""The layer contract of shared/DESIGN.md, checked over every import in src/pybpf (no root needed).

Each layer imports only from the layers before it in LAYERS — at module
level, inside functions and under ``if TYPE_CHECKING`` alike.  An import
that breaks the rule must be listed in EXCEPTIONS with its reason; an
exception that is no longer needed fails too, so the list stays true.
"""

from __future__ import annotations

import ast
import functools
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parent.parent / "src" / "pybpf"

# (layer, module prefixes), from the kernel up; each may import only from those before it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # Plain-data base classes and lazy package exports import nothing of ours: every layer uses them.
    ("base", ("pybpf._record", "pybpf._lazy")),
    ("errors", ("pybpf.errors",)),
    ("kernel ABI", ("pybpf._sys",)),
    ("instructions", ("pybpf.asm",)),
    ("types", ("pybpf.btf",)),
    ("features", ("pybpf.features", "pybpf._probes")),
    ("kernel objects", ("pybpf.maps", "pybpf.program", "pybpf.program_load", "pybpf.program_attach",
                        "pybpf.verifier")),
    ("objects", ("pybpf.object",)),
    ("hooks", ("pybpf.links",)),
    ("streams", ("pybpf.readers",)),
    ("language", ("pybpf.lang",)),
    # The package itself re-exports the public names of every layer above.
    ("facade", ("pybpf",)),
    ("command", ("pybpf.cli", "pybpf.tools", "pybpf.exporter", "pybpf.__main__")),
]

# (importer, imported module) -> why the upward import stays.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("pybpf.maps.ringbuf", "pybpf.readers.ringbuf"):
        "RingBuf.reader() is a convenience constructor of the stream reader, imported when called; "
        "the readers never import the map families, so no cycle follows",
    ("pybpf.maps.ringbuf", "pybpf.readers.userringbuf"):
        "UserRingBuf.writer(), as RingBuf.reader()",
    ("pybpf.maps.perf_event_array", "pybpf.readers.perfbuf"):
        "PerfEventArray.reader(), as RingBuf.reader()",
}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest matching prefix."""
    best, length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py")
    return best


def _existing(name: str) -> str | None:
    """The longest prefix of ``name`` that is one of our modules."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (they never run)."""
    hidden = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            hidden.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return hidden


@functools.lru_cache(maxsize=None)
def imports_of(module: str, *, run_time: bool = False) -> list[tuple[int, str]]:
    """(line, pybpf module) for every import statement in ``module``, wherever it is; with
    ``run_time``, the imports under ``if TYPE_CHECKING:`` (annotations only) are left out."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    hidden = _type_checking_only(tree) if run_time else set()
    found = []
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from pybpf.x import y": y may be a module of its own
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for name in names:
            target = _existing(name) if name.split(".")[0] == "pybpf" else None
            if target is not None and target != module:
                found.append((node.lineno, target))
    return found


def upward_imports() -> list[tuple[str, int, str]]:
    bad = []
    for module in MODULES:
        mine = layer_of(module)
        for line, target in imports_of(module):
            if layer_of(target) > mine:
                bad.append((module, line, target))
    return bad


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_layers_only_point_down():
    unlisted = [f"{m}:{line} imports {t} ({LAYERS[layer_of(m)][0]} -> {LAYERS[layer_of(t)][0]})"
                for m, line, t in upward_imports() if (m, t) not in EXCEPTIONS]
    assert not unlisted, "imports against the layer order of DESIGN.md:\n" + "\n".join(unlisted)


def test_every_exception_is_still_needed():
    used = {(m, t) for m, _, t in upward_imports()}
    stale = [f"{m} -> {t}" for m, t in EXCEPTIONS if (m, t) not in used]
    assert not stale, "exceptions that no import needs any more (remove them): " + ", ".join(stale)


def largest_import_cycle() -> list[str]:
    """The largest strongly connected component of the graph of imports that run (Tarjan): at
    module level and inside functions, not those under ``if TYPE_CHECKING:``."""
    graph = {m: {t for _, t in imports_of(m, run_time=True)} for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    best: list[str] = []

    def visit(v: str) -> None:
        nonlocal best
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > len(best):
                best = sorted(component)

    for v in graph:
        if v not in index:
            visit(v)
    return best


def test_no_import_cycle():
    """No module imports, at run time, one that imports it back, directly or through others (issue 8:
    35 modules formed one cycle).  Imports under ``if TYPE_CHECKING:`` are annotations and do not count."""
    cycle = largest_import_cycle()
    assert len(cycle) == 1, f"an import cycle of {len(cycle)} modules: {cycle}"


@pytest.mark.parametrize("module", ["pybpf.object.object", "pybpf.object.struct_ops_map", "pybpf._probes",
                                    "pybpf.object.loader"])
def test_issue_8_imports_are_gone(module):
    """The imports that made one 35-module cycle (issue 8) point down now."""
    assert all(layer_of(t) <= layer_of(module) for _, t in imports_of(module))


if __name__ == "__main__":  # python3 tests/test_layers.py: the largest cycle, for the closing note
    cycle = largest_import_cycle()
    print(len(cycle), "modules in the largest import cycle:", " ".join(cycle))

"""What the package declares is true (issue 8): run-time dependencies, optional extras, claims.

Pure: reads pyproject.toml, the README and the sources' imports; no root needed.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "pybpf"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Import name -> distribution name, for the optional libraries the extras declare.
DISTRIBUTIONS = {"yaml": "pyyaml", "elftools": "pyelftools"}


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level import name -> modules of src/pybpf importing it (stdlib and pybpf left out)."""
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "pybpf" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(SRC)))
    return found


def _requirement_name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_run_time_needs_the_standard_library_only():
    assert PYPROJECT["project"]["dependencies"] == []


def test_every_library_src_imports_is_an_extra():
    extras = {_requirement_name(r) for reqs in PYPROJECT["project"]["optional-dependencies"].values()
              for r in reqs}
    for name, modules in _third_party_imports().items():
        dist = DISTRIBUTIONS.get(name, name).lower().replace("_", "-")
        assert dist in extras, f"{name} is imported by {sorted(modules)} but no extra declares it"
    assert "elftools" not in _third_party_imports(), "the ELF reader is our own"


def test_readme_says_what_is_true_about_dependencies():
    readme = (ROOT / "README.md").read_text()
    deps = readme[readme.index("## Dependencies"):]
    deps = deps[: deps.index("\n## ", 1)]
    assert "standard library" in deps
    assert not re.search(r"Run time:[^\n]*pyelftools", deps)


def test_compile_error_is_raised_somewhere():
    raised = any(re.search(r"raise\s+CompileError\b|CompileError\(", p.read_text())
                 for p in SRC.rglob("*.py") if p.name != "errors.py")
    assert raised, "CompileError is exported: something must raise it"

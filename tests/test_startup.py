"""``import pybpf`` imports only what is used (issue 13): the other layers load on first use.

Each check runs in a fresh interpreter, so what another test imported does not count.
No root needed; no timing assertions (bench/report.py measures the time).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_pybpf_brings_in_only_the_errors_and_two_registries():
    out = _run("""
        import sys, pybpf
        print(" ".join(sorted(m for m in sys.modules if m == "pybpf" or m.startswith("pybpf."))))
    """)
    assert out.split() == ["pybpf", "pybpf._lazy", "pybpf.errors", "pybpf.object", "pybpf.object.hooks",
                           "pybpf.program_attach"]


def test_public_names_load_their_layer_on_first_use():
    out = _run("""
        import sys, pybpf
        assert "pybpf.readers" not in sys.modules
        reader = pybpf.RingBufReader
        assert reader.__module__.startswith("pybpf.readers"), reader.__module__
        assert "pybpf.features" not in sys.modules and "pybpf.links" not in sys.modules
        assert pybpf.features.has.__module__ == "pybpf.features"
        assert set(pybpf.__all__) <= set(dir(pybpf))
        for name in pybpf.__all__:
            getattr(pybpf, name)
        print("ok")
    """)
    assert out.split() == ["ok"]


def test_attach_methods_are_installed_when_a_program_first_needs_them():
    out = _run("""
        import sys, pybpf
        from pybpf.program import Program
        prog = Program.__new__(Program)
        assert "pybpf.links" not in sys.modules
        method = prog.attach_uprobe                  # the first attach* lookup imports the hooks
        assert "pybpf.links" in sys.modules and callable(method)
        try:
            prog.no_such_thing
        except AttributeError as exc:
            print("AttributeError", "no_such_thing" in str(exc))
    """)
    assert out.split() == ["AttributeError", "True"]


def test_the_package_program_class_has_its_attach_methods():
    out = _run("""
        import pybpf
        print(callable(pybpf.Program.attach_uretprobe), callable(pybpf.Program.attach))
    """)
    assert out.split() == ["True", "True"]


def test_object_layer_calls_the_hooks_without_importing_them_first():
    out = _run("""
        import sys, pybpf
        from pybpf.object.hooks import hook
        attach_object = hook("attach_object")
        print("pybpf.links" in sys.modules)
    """)
    assert out.split() == ["False"]


def test_parsing_an_object_imports_no_map_family_and_no_verifier():
    """Map families load when a map of their type is made; the verifier module when a load fails."""
    from buildprogs import build

    out = _run(f"""
        import sys
        import pybpf
        pybpf.ObjectSpec.from_file({str(build("tools_getppid"))!r})
        loaded = sorted(m for m in sys.modules if m.startswith(("pybpf.maps.", "pybpf.verifier")))
        print(" ".join(loaded) or "none")
    """)
    assert out.split() == ["none"]


def test_every_map_family_is_found_by_its_type():
    from pybpf.maps.base import FAMILIES as table, map_class

    for map_type, (_module, name) in table.items():
        cls = map_class(map_type)
        assert cls.__name__ == name and cls.map_type == map_type


# Standard modules a CO-RE load does without (issue 13): dataclasses imports inspect, ast, dis and
# tokenize; typing imports re; together they were a fifth of a fresh process that loads an object.
HEAVY_STDLIB = ("dataclasses", "inspect", "ast", "dis", "tokenize", "typing", "re", "threading")
# Our modules a load of an object without struct_ops, externs or attach targets does not need.
UNNEEDED = ("pybpf.asm.builder", "pybpf.asm.disasm", "pybpf.btf.codec", "pybpf.object.struct_ops",
            "pybpf.object.targets", "pybpf._sys.uapi_helpers", "pybpf._sys.uapi_perf", "pybpf.verifier",
            "pybpf.links")


def _imported_by(action: str, obj: str) -> list[str]:
    out = _run(f"""
        import sys
        before = set(sys.modules)   # what the interpreter's start-up (site, .pth files) imported
        import pybpf
        spec = pybpf.ObjectSpec.from_file({obj!r})
        {action}
        print(" ".join(sorted(m for m in {HEAVY_STDLIB + UNNEEDED!r} if m in set(sys.modules) - before)) or "none")
    """)
    return out.split()


def test_parsing_a_co_re_object_imports_no_heavy_standard_module():
    from buildprogs import build

    assert _imported_by("", str(build("corpus_syscall_core"))) == ["none"]


@pytest.mark.root
def test_loading_a_co_re_object_imports_no_heavy_standard_module():
    from buildprogs import build

    assert _imported_by("spec.load().close()", str(build("corpus_syscall_core"))) == ["none"]


def test_the_hooks_import_no_heavy_standard_module():
    """Importing the hooks (as the first attach does) leaves sockets, logging, shutil... to the attach."""
    heavy = HEAVY_STDLIB[:-3] + ("threading", "logging", "shutil", "socket", "platform", "difflib", "sysconfig")
    out = _run(f"""
        import sys
        before = set(sys.modules)
        import pybpf
        pybpf.Program.attach_uprobe
        print(" ".join(sorted(m for m in {heavy!r} if m in set(sys.modules) - before)) or "none")
    """)
    assert out.split() == ["none"]

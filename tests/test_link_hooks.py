"""The hook descriptors and what derives from them (pure: no kernel, no root)."""

from __future__ import annotations

import inspect
import os
import types

import pytest

import pybpf
from pybpf.links import hooks
from pybpf.links.auto import AutoAttachError, attach
from pybpf.links.hook import retprobe_for
from pybpf.links.registry import REGENERATE, sections_markdown
from pybpf.object.sections import SECTION_RULES, unknown_section

pytestmark = pytest.mark.root  # against the kernel: needs root

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "sections.md")


def test_docs_sections_matches_the_registry():
    with open(DOC) as f:
        assert f.read() == sections_markdown(), f"docs/sections.md is stale; regenerate it: {REGENERATE}"


def test_every_module_that_declares_hooks_is_registered():
    """The package registers its hook modules by hand (no import cycle); none may be forgotten."""
    import importlib
    import pkgutil

    import pybpf.links as package
    from pybpf.links import registry

    declaring = {name for _, name, _ in pkgutil.iter_modules(package.__path__)
                 if any(hasattr(importlib.import_module(f"pybpf.links.{name}"), attr)
                        for attr in ("HOOKS", "LINK_INFO", "LINK_CLASSES"))}
    assert {m.__name__.rpartition(".")[2] for m in registry._MODULES} == declaring
    assert len(hooks()) == sum(len(getattr(m, "HOOKS", ())) for m in registry._MODULES)


def test_each_hook_is_one_frozen_descriptor_with_known_sections():
    found = hooks()
    assert found is hooks() and isinstance(found, tuple)
    names = [h.method for h in found]
    assert len(names) == len(set(names))
    for hook in found:
        with pytest.raises(AttributeError, match="read-only"):
            hook.min_kernel = "1.0"  # type: ignore[misc]
        with pytest.raises(TypeError):
            hook.needs["x"] = "y"  # type: ignore[index]
        assert set(hook.sections) <= set(SECTION_RULES), hook.method
        assert hook.min_kernel and hook.min_kernel in (hook.attach.__doc__ or ""), hook.method  # the docstring says it


def test_program_methods_are_the_attach_functions():
    for hook in hooks():
        if not hook.on_program:
            assert not hasattr(pybpf.Program, hook.method)
            continue
        assert getattr(pybpf.Program, hook.method) is hook.attach, hook.method
        bound = list(inspect.signature(getattr(pybpf.Program.__new__(pybpf.Program), hook.method)).parameters)
        assert bound == list(inspect.signature(hook.attach).parameters)[1:], hook.method  # the program is self
    assert "ref_ctr_offset" in inspect.signature(pybpf.Program.attach_uretprobe).parameters
    assert pybpf.links.attach_uprobe is hooks()[[h.method for h in hooks()].index("attach_uprobe")].attach


def _prog(section: str | None, name: str = "p") -> types.SimpleNamespace:
    return types.SimpleNamespace(section=section, name=name, _label=f"program '{name}'")


@pytest.mark.parametrize("section, method, retprobe, expected", [
    ("uretprobe//bin/x:f", "attach_uprobe", None, True),
    ("uprobe//bin/x:f", "attach_uprobe", None, False),
    ("kretprobe/vfs_read", "attach_kprobe", None, True),
    ("uretprobe.multi//bin/x:f*", "attach_uprobe_multi", None, True),
    ("usdt//bin/x:p:n", "attach_uprobe", True, True),
    (None, "attach_uprobe", True, True),
])
def test_section_kind_is_the_default_direction(section, method, retprobe, expected):
    assert retprobe_for(_prog(section), retprobe, method) is expected


@pytest.mark.parametrize("section, method, retprobe", [
    ("uretprobe", "attach_uprobe", False),
    ("uprobe", "attach_uprobe", True),
    ("kretprobe/f", "attach_kprobe", False),
    ("uprobe.multi", "attach_uprobe_multi", True),
    ("uretprobe.multi", "attach_uprobe_multi", False),
    ("uprobe.session", "attach_uprobe_multi", True),
    ("kprobe.session", "attach_kprobe_multi", True),
])
def test_conflicting_direction_names_both(section, method, retprobe):
    with pytest.raises(ValueError) as err:
        retprobe_for(_prog(section), retprobe, method)
    assert f"{method}(retprobe={retprobe})" in str(err.value) and f'SEC("{section}")' in str(err.value)


def test_misspelled_section_says_did_you_mean_and_where_the_list_is():
    msg = unknown_section("kprobee/do_sys_open")
    assert "did you mean 'kprobe/do_sys_open'" in msg and "docs/sections.md" in msg
    assert "did you mean 'uprobe.session'" in unknown_section("uprobe.sesion")
    with pytest.raises(AutoAttachError, match="did you mean 'tracepoint/syscalls/sys_enter_openat'"):
        attach(_prog("tracepiont/syscalls/sys_enter_openat"))


def test_attach_all_reports_what_it_did_not_attach():
    from pybpf.links import attach_all

    programs = {"a": _prog(None, "a"), "b": _prog("sk_msg", "b"), "c": _prog("uprobe", "c"),
                "d": _prog("nonsense", "d"), "ops": _prog("struct_ops/ssthresh", "ops")}  # its map attaches it
    with pytest.warns(RuntimeWarning, match="not attached") as rec:
        got = attach_all(programs)
    assert got == {}
    assert set(got.skipped) == {"a", "b", "c", "d"}
    assert "no ELF section" in got.skipped["a"]
    assert "does not auto-attach sk_msg" in got.skipped["b"]
    assert "attach_uprobe(target)" in got.skipped["c"]
    assert "unknown section name 'nonsense'" in got.skipped["d"]
    assert all(name in str(rec[0].message) for name in ("'a'", "'b'", "'c'", "'d'"))

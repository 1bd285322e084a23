"""Errors a user can trigger are BPFErrors with context, keeping the builtin base Python users catch.

Damaged or unusable uprobe targets (directories, /proc/self/mem, offsets
past the end), bad fds given to Map.from_fd, an LPM trie declared with a
4-byte key in a C object.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import pybpf
from pybpf._sys import AttachType
from pybpf.links import attach_uprobe, attach_uprobe_multi
from pybpf.maps import Map
from pybpf.maps.hash import HashMap

from buildprogs import build_file
from test_links_support import cookie_counter, counts_map, target

pytestmark = pytest.mark.root  # against the kernel: needs root


@pytest.fixture
def prog():
    with counts_map() as counts, cookie_counter(counts) as p:
        yield p


def test_uprobe_on_a_directory(prog, tmp_path):
    with pytest.raises(IsADirectoryError) as info:
        attach_uprobe(prog, tmp_path, "main")
    err = info.value
    assert isinstance(err, pybpf.BPFError) and err.errno == errno.EISDIR
    assert "count_cookie" in str(err) and str(tmp_path) in str(err), str(err)


def test_uprobe_on_proc_self_mem(prog):
    with pytest.raises(pybpf.BPFError) as info:
        attach_uprobe(prog, "/proc/self/mem", "main")
    assert "/mem" in str(info.value) and "count_cookie" in str(info.value), str(info.value)


def test_uprobe_on_a_missing_file_is_both(prog, tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        attach_uprobe(prog, tmp_path / "nope", "main")
    assert isinstance(info.value, pybpf.NotFoundError)
    with pytest.raises(pybpf.NotFoundError):
        attach_uprobe(prog, "pybpf_no_such_library_xyz", "main")


def test_uprobe_offset_past_the_end_of_the_file(prog):
    binary = target()
    size = os.path.getsize(binary)
    with pytest.raises(pybpf.LinkError, match=r"past the end of .*cookie_target \(\d+ bytes\)"):
        attach_uprobe(prog, binary, None, offset=size + 0x1000)
    with pytest.raises(pybpf.LinkError, match=r"func_a\+0x.* past the end"):
        attach_uprobe(prog, binary, "func_a", offset=size)
    with counts_map() as counts, cookie_counter(counts, expected_attach_type=AttachType.TRACE_UPROBE_MULTI) as multi:
        with pytest.raises(pybpf.LinkError, match=r"offset 0x.* past the end of .*cookie_target"):
            attach_uprobe_multi(multi, binary, offsets=[size + 8])


@pytest.mark.parametrize("fd, kind", [(-1, OSError), (2**40, ValueError), (2**31, ValueError)])
def test_map_from_bad_fd(fd, kind):
    with pytest.raises(kind) as info:
        Map.from_fd(fd)
    assert isinstance(info.value, pybpf.BPFError), repr(info.value)
    if kind is OSError:
        assert info.value.errno == errno.EBADF


LPM_4_BYTE_KEY_C = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(key_size, 4);
	__uint(value_size, 4);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} short_trie SEC(".maps");
SEC("xdp")
int use_trie(struct xdp_md *ctx)
{
	__u32 key = 0;
	return bpf_map_lookup_elem(&short_trie, &key) ? 1 : 2;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_lpm_trie_with_a_4_byte_key_names_object_and_map(tmp_path):
    src = tmp_path / "lpm_short_key.bpf.c"
    src.write_text(LPM_4_BYTE_KEY_C)
    spec = pybpf.ObjectSpec.from_file(build_file(src, tmp_path))
    with pytest.raises(pybpf.BPFError) as info:
        spec.load().close()
    text = str(info.value)
    assert "lpm_short_key" in text and "short_trie" in text and "key_size=4" in text, text


# ---------------------------------------------------------------------- messages for a user who is not root

def _python_for_nobody() -> str:
    # The test interpreter may live under /root (mode 0700); Debian's python3 is reachable by anyone.
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def _as_nobody(script: str, *, private_tracefs: bool = False) -> str:
    """Run ``script`` as uid/gid 65534; with ``private_tracefs`` in a mount namespace of its own where
    /sys/kernel/tracing is mounted with mode 0700 (what tracefs has by default), so the real one is untouched."""
    prelude = "import os\n"
    if private_tracefs:
        prelude += ("import subprocess\n"
                    "subprocess.run(['mount', '--make-rprivate', '/'], check=True)\n"
                    "subprocess.run(['mount', '-t', 'tmpfs', '-o', 'mode=0700', 'tmpfs', '/sys/kernel/tracing'],"
                    " check=True)\n")
    prelude += "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
    cmd = [_python_for_nobody(), "-c", prelude + textwrap.dedent(script)]
    if private_tracefs:
        cmd = ["unshare", "--mount", *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/",
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    return res.stdout


def test_tracefs_mounted_0700_says_permission_denied_run_as_root():
    out = _as_nobody("""
        from pybpf._sys.fs import tracefs_root
        import pybpf
        try:
            tracefs_root()
        except pybpf.BPFError as exc:
            print(exc)
    """, private_tracefs=True)
    assert "permission denied on /sys/kernel/tracing" in out and "run as root" in out, out
    assert "not mounted" not in out and "mount" not in out.split("run as root")[0].split("tracing")[0], out


def test_root_owned_0600_pin_names_the_file_permissions():
    directory = f"/sys/fs/bpf/pybpf_rel_{os.getpid()}"
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o755)
    try:
        with HashMap(key="<I", value="<I", max_entries=4) as m:
            m.pin(f"{directory}/m")
        assert os.stat(f"{directory}/m").st_mode & 0o777 == 0o600
        out = _as_nobody(f"""
            import pybpf
            from pybpf.maps import Map
            try:
                Map.from_pin({directory + '/m'!r})
            except pybpf.BPFError as exc:
                print(exc)
        """)
        assert "the pin's file permissions" in out and "mode 0600 owned by uid 0" in out, out
        assert "verifier" not in out, out
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------------- crash leftovers

def test_legacy_uprobe_entries_of_dead_processes_are_removed(prog):
    """A tracefs uprobe of a pybpf process killed with SIGKILL stays; the next pybpf removes it."""
    from pybpf import features
    from pybpf._sys.fs import tracefs_root
    from pybpf.links.symbols import ElfFile

    binary = target()
    events = os.path.join(tracefs_root(), "uprobe_events")
    dead = subprocess.Popen(["true"])
    dead.wait()
    offset = ElfFile.open(binary).resolve("func_a").offset
    leftover = f"pybpf_{dead.pid}_0"
    alive = "pybpf_1_4242"  # pid 1 lives: its entry is not ours to remove
    _write(events, f"p:pybpf/{leftover} {binary}:{offset:#x}\n")
    _write(events, f"p:pybpf/{alive} {binary}:{offset:#x}\n")
    try:
        with open(events) as f:
            assert leftover in f.read()
        with features.override(uprobes=False):
            with attach_uprobe(prog, binary, "func_b", cookie=2):
                with open(events) as f:
                    text = f.read()
                assert f"pybpf_{os.getpid()}_" in text, "the legacy path was taken"
        assert leftover not in text and alive in text, text
    finally:
        for name in (leftover, alive):
            try:
                _write(events, f"-:pybpf/{name}\n")
            except OSError:
                pass  # already gone


def _write(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)  # tracefs refuses the seek of open(path, "a")
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)

"""The exporter's configuration, decoders and histogram arithmetic (no BPF syscalls).

Config errors must name file, line and field; decoders are checked against
independent sources (libseccomp against the kernel's UAPI header, ctypes'
own addresses, the cgroup filesystem); the shipped examples must pass the
checks against their objects.
"""

from __future__ import annotations

import ctypes
import errno
import os
import textwrap

import pytest

pytest.importorskip("yaml")
pytest.importorskip("prometheus_client")

from exporter_support import EXAMPLES, MODULES, example_object  # noqa: E402

from pybpf.exporter.config import ConfigError, DecoderConfig, LabelConfig, Where, read_config, read_module  # noqa: E402
from pybpf.exporter.decoders import DecodeContext, SkipSeries, build_chain  # noqa: E402
from pybpf.exporter.buckets import UPPER_BOUNDS, histogram_buckets  # noqa: E402
from pybpf.exporter.module import prepare  # noqa: E402
from pybpf.exporter.resolvers import CgroupPaths, KernelSymbols, UserSymbols, cgroup2_mount  # noqa: E402
from pybpf.tools import syscalls  # noqa: E402


def write(tmp_path, text: str, name: str = "mod.yaml", obj: str = "uprobe_counter"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    (tmp_path / f"{path.stem}.bpf.o").write_bytes(example_object(obj).read_bytes())
    return path


COUNTER = """
attach:
  - program: count_call
    uprobe: /bin/true
    functions: [a, {symbol: b, cookie: 7, name: bee}, c, a]
metrics:
  counters:
    - name: calls_total
      table: calls_total
      labels:
        - name: function
          decoders: [{name: cookie}]
"""


def error_of(path) -> str:
    with pytest.raises(ConfigError) as info:
        mod = read_module(path)
        prepare(mod)
    return str(info.value)


def test_cookies_assigned_per_name_and_sizes_filled(tmp_path):
    mod = read_module(write(tmp_path, COUNTER))
    assert [(p.target, p.cookie, p.name) for p in mod.attach[0].points] == \
        [("a", 1, "a"), ("b", 7, "bee"), ("c", 2, "c"), ("a", 1, "a")]
    assert mod.cookie_names == {7: "bee", 1: "a", 2: "c"}
    prepare(mod)
    assert mod.metrics[0].labels[0].size == 8


@pytest.mark.parametrize("old, new, expected", [
    ("      table: calls_total\n", "      table: calls_total\n      tabel: x\n",
     "mod.yaml:9: metrics.counters[0].tabel: unknown field (known here: name, help, table, labels)"),
    ("    uprobe: /bin/true\n", "    uprobe: /bin/true\n    tracepoint: a/b\n",
     "mod.yaml:2: attach[0]: needs exactly one of: uprobe, uretprobe"),
    ("[a, {symbol: b, cookie: 7, name: bee}", "[{symbol: a, cookie: 1}, {symbol: b, cookie: 1, name: bee}",
     "mod.yaml:4: attach[0]: cookie 1 is named both 'a' and 'bee'"),
    ("- name: calls_total", "- name: calls-total",
     "mod.yaml:7: metrics.counters[0].name: 'calls-total' is not a Prometheus metric name"),
    ("      table: calls_total\n", "      table: calls_total\n      table: again\n",
     "mod.yaml:9: duplicate key 'table' (first on line 8)"),
    ("        - name: function\n", "        - name: function\n          size: 4\n",
     "mod.yaml:7: metrics.counters[0].labels: label sizes and paddings add up to 4 bytes, "
     "the key of map 'calls_total' is 8 bytes"),
    ("program: count_call", "program: count",
     "mod.yaml:2: attach[0].program: unknown program 'count' (known: count_call)"),
])
def test_config_errors_name_file_line_field(tmp_path, old, new, expected):
    text = textwrap.dedent(COUNTER).lstrip("\n")
    assert old in text
    path = write(tmp_path, text.replace(old, new, 1))
    assert expected.replace("mod.yaml", str(path)) in error_of(path)


def test_histogram_and_variable_errors(tmp_path):
    text = """
    variables: {nope: 1}
    metrics:
      histograms:
        - name: lat_seconds
          table: latency_seconds
          bucket_type: log10
          bucket_max: 3
          labels: [{name: function}, {name: bucket}]
    """
    path = write(tmp_path, text, obj="latency")
    assert error_of(path) == (f"{path}:6: metrics.histograms[0].bucket_type: unknown bucket type 'log10' "
                              f"(known: exp2, exp2zero, linear, fixed)")
    path.write_text(path.read_text().replace("log10", "exp2"))
    assert error_of(path).startswith(f"{path}:1: variables.nope: no such variable in mod.bpf.o")
    path.write_text(path.read_text().replace("variables: {nope: 1}\n", ""))
    mod = read_module(path)
    prepare(mod)          # label sizes from the key's BTF struct: {u64 cookie; u64 bucket}
    assert [lab.size for lab in mod.metrics[0].labels] == [8, 8]


def test_directory_config_and_shipped_examples_check(tmp_path):
    for name in MODULES:
        (tmp_path / f"{name}.yaml").write_text((EXAMPLES / f"{name}.yaml").read_text())
        (tmp_path / f"{name}.bpf.o").write_bytes(example_object(name).read_bytes())
    mods = read_config(tmp_path)
    assert [m.name for m in mods] == sorted(MODULES)
    for m in mods:
        prepare(m)
    (tmp_path / "again.yaml").write_text((EXAMPLES / "syscalls.yaml").read_text())
    (tmp_path / "again.bpf.o").write_bytes(example_object("syscalls").read_bytes())
    with pytest.raises(ConfigError, match=r"yaml:7: metrics.counters\[0\].name: metric 'syscalls_total' "
                                          r"is also defined in .*again.yaml"):
        read_config(tmp_path)
    with pytest.raises(ConfigError, match="no such file or directory"):
        read_config(tmp_path / "missing")


def chain(*decoders: tuple[str, dict], size: int = 8, cookies=None, layout=None):
    where = Where("t.yaml", 1)
    label = LabelConfig("x", size, 0, [DecoderConfig(n, o, where, "d") for n, o in decoders], where, "l")
    ctx = DecodeContext(cookie_names=cookies or {}, layout=layout or {"x": (0, size)})
    run = build_chain(label, ctx)
    return lambda raw, key=b"": run(raw, key or raw)


def test_simple_decoders():
    assert chain()((300).to_bytes(8, "little")) == "300"
    assert chain(("int", {}))((-5).to_bytes(8, "little", signed=True)) == "-5"
    assert chain(("string", {}), size=16)(b"bash\0garbage\0\0\0\0") == "bash"
    assert chain(("hex", {}), size=3)(b"\x01\xab\xff") == "01abff"
    assert chain(("inet_ip", {}), size=4)(bytes([10, 0, 0, 1])) == "10.0.0.1"
    assert chain(("inet_ip", {}), size=16)(bytes(15) + b"\x01") == "::1"
    assert chain(("errno", {}), size=4)((-errno.EPIPE).to_bytes(4, "little", signed=True)) == "EPIPE"
    smap = chain(("uint", {}), ("static_map", {"static_map": {1: "read", 2: "write"}}), size=4)
    assert smap((2).to_bytes(4, "little")) == "write" and smap((9).to_bytes(4, "little")) == "unknown:9"
    allow = chain(("static_map", {"static_map": {1: "read"}, "allow_unknown": True}), size=4)
    assert allow((9).to_bytes(4, "little")) == "9"
    cookie = chain(("cookie", {}), cookies={1: "func_a"})
    assert cookie((1).to_bytes(8, "little")) == "func_a"
    assert cookie((5).to_bytes(8, "little")) == "unknown_cookie:5"
    with pytest.raises(ConfigError, match="d.static_map: a mapping"):
        chain(("static_map", {}))
    with pytest.raises(ConfigError, match="d.bogus: decoder 'uint' takes no options"):
        chain(("uint", {"bogus": 1}))


def test_syscall_decoder_names_numbers_of_this_architecture():
    nr = syscalls.number("getppid")
    assert nr is not None, "no syscall names: scripts/install-test-deps.sh installs libseccomp2 and linux-libc-dev"
    assert chain(("uint", {}), ("syscall", {}))(nr.to_bytes(8, "little")) == "getppid"
    assert chain(("syscall", {}))((100000).to_bytes(8, "little")) == "syscall_100000"


def test_usym_resolves_addresses_of_this_process():
    libc = ctypes.CDLL(None)
    addr = ctypes.cast(libc.getpid, ctypes.c_void_p).value
    assert UserSymbols().name(os.getpid(), addr) in ("getpid", "__getpid")
    layout = {"pid": (0, 4), "ip": (8, 8)}
    run = chain(("usym", {"pid_label": "pid"}), layout=layout)
    key = os.getpid().to_bytes(4, "little") + bytes(4) + addr.to_bytes(8, "little")
    assert run(key[8:], key) in ("getpid", "__getpid")
    with pytest.raises(ConfigError, match="pid_label: name the label"):
        chain(("usym", {}))


def test_ksym_and_cgroup_paths():
    syms = KernelSymbols()
    with open("/proc/kallsyms") as f:
        text = [(int(a, 16), n) for a, t, n, *_ in (ln.split() for ln in f) if t in "tT"]
    if not text or text[0][0] == 0:
        pytest.skip("kernel symbol addresses are not supported by this kernel's settings (kernel.kptr_restrict=2)")
    addrs = sorted(a for a, _ in text)
    count = {}
    for a, _ in text:
        count[a] = count.get(a, 0) + 1
    # A function alone at its address, with room after it: its address and the next byte name it.
    addr, name = next((a, n) for a, n in text[len(text) // 2:]
                      if count[a] == 1 and addrs[addrs.index(a) + 1] > a + 1)
    assert syms.name(addr) == name and syms.name(addr + 1) == name
    assert chain(("ksym", {}))(addr.to_bytes(8, "little")) == name
    root = cgroup2_mount()
    if root is None:
        pytest.skip("cgroup v2 is not supported here: no cgroup2 hierarchy is mounted")
    paths = CgroupPaths(root)
    assert paths.path(os.stat(root).st_ino) == root
    sub = next((e.path for e in os.scandir(root) if e.is_dir()), None)
    if sub is not None:
        assert chain(("cgroup", {}))(os.stat(sub).st_ino.to_bytes(8, "little")) == sub


def test_histogram_buckets_exp2_and_linear():
    # exp2: keys 0..3, sum at 4, a key beyond the sum key only in +Inf, a key below bucket_min in the first.
    buckets, total = histogram_buckets({0: 2, 1: 1, 3: 4, 4: 1000, 9: 5}, "exp2", 1, 3, 0.5)
    assert buckets == [("1.0", 3), ("2.0", 3), ("4.0", 7), ("+Inf", 12)]
    assert total == 500.0
    buckets, total = histogram_buckets({1: 1, 2: 2}, "linear", 0, 2, 10.0)
    assert buckets == [("0.0", 0), ("10.0", 1), ("20.0", 3), ("+Inf", 3)]
    assert total == 0


def test_histogram_buckets_exp2zero_and_fixed():
    # exp2zero: key 0 is the value 0 (le 0), key k >= 1 values up to 2**(k-1); the sum at bucket_max + 1.
    buckets, total = histogram_buckets({0: 3, 1: 1, 2: 2, 4: 5, 5: 77, 8: 1}, "exp2zero", 0, 4, 2.0)
    assert buckets == [("0.0", 3), ("2.0", 4), ("4.0", 6), ("8.0", 6), ("16.0", 11), ("+Inf", 12)]
    assert total == 154.0
    # bucket_min above 0: key 0 (and 1) count in the first bucket, whose bound is 2**(2-1).
    assert histogram_buckets({0: 1, 1: 1, 2: 1}, "exp2zero", 2, 3, 1.0)[0] == [("2.0", 3), ("4.0", 3), ("+Inf", 3)]
    # fixed: the keys are the bounds; a key between two counts in the next one, the last + 1 is the sum,
    # a key beyond it only in +Inf.
    buckets, total = histogram_buckets({0: 1, 5: 2, 7: 4, 100: 1, 101: 999, 500: 3}, "fixed", 0, 0, 0.001,
                                       keys=(5, 10, 100))
    assert buckets == [("0.005", 3), ("0.01", 7), ("0.1", 8), ("+Inf", 11)]
    assert total == 0.999
    assert histogram_buckets({}, "fixed", 0, 0, 1.0, keys=(1,)) == ([("1.0", 0), ("+Inf", 0)], 0)


def exp2zero_key(v: int) -> int:
    """The key ebpf_exporter's increment_exp2zero_histogram files ``v`` under: 0, else ceil(log2(v)) + 1."""
    return 0 if v == 0 else (v - 1).bit_length() + 1


def test_exp2zero_bound_is_the_smallest_that_holds_the_value():
    upper = UPPER_BOUNDS["exp2zero"]
    for v in list(range(0, 4100)) + [2**40 - 1, 2**40, 2**40 + 1]:
        k = exp2zero_key(v)
        assert upper(k) >= v and (k == 0 or upper(k - 1) < v), v


HISTOGRAM = """
metrics:
  histograms:
    - name: lat_seconds
      table: latency_seconds
      bucket_type: fixed
      bucket_keys: [1, 5, 10]
      labels:
        - name: function
          decoders:
            - name: cookie
            - name: regexp
              regexps:
                - ^alpha$
                - ^(b)eta$
        - name: bucket
"""

H = "metrics.histograms[0]"


@pytest.mark.parametrize("old, new, expected", [
    ("      bucket_keys: [1, 5, 10]\n", "", f"mod.yaml:3: {H}.bucket_keys: missing"),
    ("[1, 5, 10]", "[1, 10, 5]",
     f"mod.yaml:6: {H}.bucket_keys[2]: 5 does not follow 10: list the keys in increasing order, once each"),
    ("[1, 5, 10]", "[1, 5, 5]", f"mod.yaml:6: {H}.bucket_keys[2]: 5 does not follow 5"),
    ("[1, 5, 10]", "[1, 2.5]", f"mod.yaml:6: {H}.bucket_keys[1]: expected a map key (an integer, 0 or more), got 2.5"),
    ("[1, 5, 10]", "[]", f"mod.yaml:6: {H}.bucket_keys: empty list"),
    ("[1, 5, 10]", "7", f"mod.yaml:6: {H}.bucket_keys: expected a list, got 7"),
    ("bucket_type: fixed", "bucket_type: exp2zero",
     f"mod.yaml:6: {H}.bucket_keys: only for bucket_type fixed (exp2zero buckets are bucket_min..bucket_max)"),
    ("[1, 5, 10]\n", "[1, 5, 10]\n      bucket_max: 30\n",
     f"mod.yaml:7: {H}.bucket_max: not used by bucket_type fixed: list the buckets in bucket_keys"),
    ("bucket_type: fixed\n      bucket_keys: [1, 5, 10]", "bucket_type: exp2zero\n      bucket_max: 1024",
     f"mod.yaml:6: {H}.bucket_max: at most 1023"),
    ("bucket_type: fixed\n      bucket_keys: [1, 5, 10]",
     "bucket_type: linear\n      bucket_min: -1\n      bucket_max: 3",
     f"mod.yaml:6: {H}.bucket_min: map keys are unsigned: 0 or more"),
    ("- ^(b)eta$", "- ^(b)(eta$",
     f"mod.yaml:14: {H}.labels[0].decoders[1].regexps[1]: bad regular expression '^(b)(eta$': missing ), "),
    ("- ^(b)eta$", "- ^(b)(e)ta$",
     f"mod.yaml:14: {H}.labels[0].decoders[1].regexps[1]: '^(b)(e)ta$' has 2 capture groups"),
    ("- ^(b)eta$", "- 7", f"mod.yaml:14: {H}.labels[0].decoders[1].regexps[1]: expected a regular expression "
                          f"(a string), got 7"),
    ("regexps:", "regexp:", f"mod.yaml:11: {H}.labels[0].decoders[1].regexp: unknown option (regexp takes regexps)"),
    ("            - name: regexp\n", "            - name: static_map\n",
     f"mod.yaml:11: {H}.labels[0].decoders[1].regexps: unknown option (known: static_map, allow_unknown)"),
])
def test_bucket_and_regexp_errors_at_config_time(tmp_path, old, new, expected):
    text = textwrap.dedent(HISTOGRAM).lstrip("\n")
    assert old in text
    path = write(tmp_path, text.replace(old, new, 1), obj="latency")
    with pytest.raises(ConfigError) as info:
        read_module(path)                       # the YAML alone: no object parsed, nothing loaded
    assert str(info.value).startswith(expected.replace("mod.yaml", str(path)))
    assert "\n" not in str(info.value)


def test_fixed_and_regexp_config_reads_and_checks(tmp_path):
    mod = read_module(write(tmp_path, HISTOGRAM, obj="latency"))
    prepare(mod)
    (m,) = mod.metrics
    assert (m.bucket_type, m.bucket_keys, [lab.size for lab in m.labels]) == ("fixed", (1, 5, 10), [8, 8])


def test_regexp_decoder():
    run = chain(("string", {}), ("regexp", {"regexps": ["^systemd-journal$", "^(kswapd)", "x(y?)z"]}), size=16)
    assert run(b"systemd-journal\0") == "systemd-journal"
    assert run(b"kswapd0\0\0\0\0\0\0\0\0\0") == "kswapd"            # the one capture group
    assert run(b"axzb\0") == ""                                       # a group that took nothing
    with pytest.raises(SkipSeries):
        run(b"systemd-journald")                                   # matches none: the series is left out
    # Without a group the label is what matched, searched anywhere (unanchored), as in ebpf_exporter.
    assert chain(("regexp", {"regexps": ["ba+"]}), size=8)(b"abaaad\0\0") == "baaa"
    # After a number decoder, the number's text.
    assert chain(("cookie", {}), ("regexp", {"regexps": ["^a"]}), cookies={1: "alpha"})((1).to_bytes(8, "little")) \
        == "a"
    with pytest.raises(ConfigError, match="d.regexps: a list of regular expressions"):
        chain(("regexp", {"regexps": "^a$"}))

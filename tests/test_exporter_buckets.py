"""ebpf_exporter's exp2zero and fixed histograms and its regexp decoder, against the kernel.

tests/progs/exporter_buckets.bpf.c files the first argument of alpha() and
beta() (tests/bin/exporter_target.c calls alpha(0..19) and beta(0..8)) into an
exp2zero and a fixed histogram and counts the calls; a real ``pybpf
exporter`` process serves them and /metrics must show exactly those buckets,
with the series a regexp leaves out missing.
"""

from __future__ import annotations

import textwrap

import pytest

pytestmark = pytest.mark.root  # against the kernel: needs root

pytest.importorskip("prometheus_client")
pytest.importorskip("yaml")

from buildprogs import build  # noqa: E402
from exporter_support import ExporterProcess, Workload, build_target, value  # noqa: E402

from pybpf import features  # noqa: E402

N_ALPHA, N_BETA = 20, 9          # alpha(0) .. alpha(19), beta(0) .. beta(8)

CONFIG = """
attach:
  - program: observe
    uprobe: {target}
    functions: [alpha, beta]
metrics:
  counters:
    - name: calls_matching_total
      help: Calls of the functions whose name matches
      table: calls
      labels:
        - name: function
          decoders:
            - name: cookie
            - name: regexp
              regexps: ['^zeta$', '^(be)ta$']
  histograms:
    - name: args_exp2zero
      help: First argument, exp2zero buckets
      table: exp2zero_hist
      bucket_type: exp2zero
      bucket_min: 0
      bucket_max: 6
      labels:
        - {{name: function, decoders: [{{name: cookie}}]}}
        - {{name: bucket}}
    - name: args_fixed
      help: First argument of alpha, fixed buckets
      table: fixed_hist
      bucket_type: fixed
      bucket_keys: [1, 5, 10, 100]
      bucket_multiplier: 0.5
      labels:
        - name: function
          decoders:
            - name: cookie
            - name: regexp
              regexps: ['^alpha$']
        - name: bucket
"""


def buckets(smp: dict, metric: str, function: str) -> list[tuple[float, float]]:
    """(le, cumulative count) of one series, in order of le."""
    found = [(float(dict(labels)["le"]), v) for (name, labels), v in smp.items()
             if name == f"{metric}_bucket" and dict(labels)["function"] == function]
    return sorted(found)


def at_most(bound: float, n: int) -> int:
    """How many of the values 0 .. n-1 are <= bound: what a Prometheus bucket must count."""
    return sum(1 for v in range(n) if v <= bound)


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    if not features.has("bpf_cookie"):
        pytest.skip("bpf_cookie is not supported by this kernel (the functions are named by cookie)")
    tmp = tmp_path_factory.mktemp("buckets")
    target = build_target(tmp)
    config = tmp / "config"
    config.mkdir()
    (config / "args.bpf.o").write_bytes(build("exporter_buckets").read_bytes())
    (config / "args.yaml").write_text(textwrap.dedent(CONFIG).lstrip().format(target=target))
    work = Workload(target, (N_ALPHA, N_BETA, 0, 0))
    exp = ExporterProcess(config, tmp / "exporter.log")
    try:
        exp.wait_ready()
        work.run()
        smp = exp.metrics()
        assert value(smp, "pybpf_exporter_module_up", module="args") == 1, exp.log()
        assert value(smp, "pybpf_exporter_decoder_errors_total", module="args") == 0, exp.log()
        yield smp
    finally:
        work.kill()
        exp.stop()


def test_exp2zero_buckets_count_the_zero_apart(scraped):
    # alpha's arguments 0..19: keys 0:{0} 1:{1} 2:{2} 3:{3,4} 4:{5..8} 5:{9..16} 6:{17..19}.
    alpha = buckets(scraped, "args_exp2zero", "alpha")
    assert alpha == [(0.0, 1), (1.0, 2), (2.0, 3), (4.0, 5), (8.0, 9), (16.0, 17), (32.0, 20), (float("inf"), 20)]
    assert alpha == [(le, at_most(le, N_ALPHA)) for le, _ in alpha]
    assert value(scraped, "args_exp2zero_count", function="alpha") == 20
    assert value(scraped, "args_exp2zero_sum", function="alpha") == 190          # 0 + 1 + ... + 19
    beta = buckets(scraped, "args_exp2zero", "beta")
    assert beta == [(0.0, 1), (1.0, 2), (2.0, 3), (4.0, 5), (8.0, 9), (16.0, 9), (32.0, 9), (float("inf"), 9)]
    assert value(scraped, "args_exp2zero_sum", function="beta") == 36            # 0 + 1 + ... + 8


def test_fixed_buckets_and_a_regexp_keeping_one_function(scraped):
    # Keys 1, 5, 10, 100 times 0.5; beta's series is left out by the regexp.
    alpha = buckets(scraped, "args_fixed", "alpha")
    assert alpha == [(0.5, 2), (2.5, 6), (5.0, 11), (50.0, 20), (float("inf"), 20)]
    assert alpha == [(le, at_most(le * 2, N_ALPHA)) for le, _ in alpha]
    assert value(scraped, "args_fixed_count", function="alpha") == 20
    assert value(scraped, "args_fixed_sum", function="alpha") == 95.0             # 190 * 0.5
    assert not buckets(scraped, "args_fixed", "beta")
    assert {dict(labels)["function"] for (name, labels) in scraped if name.startswith("args_fixed")} == {"alpha"}


def test_regexp_capture_group_names_the_only_series_left(scraped):
    counted = {dict(labels)["function"]: v for (name, labels), v in scraped.items()
               if name == "calls_matching_total"}
    assert counted == {"be": N_BETA}

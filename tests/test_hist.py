"""pybpf.hist: log2 and linear histograms from a dict (pure; the kernel-filled case is test_examples)."""

from __future__ import annotations

import io

import pytest

import pybpf.hist as hist


def test_log2_slots_match_bit_length():
    assert [hist.log2_slot(v) for v in (0, 1, 2, 3, 4, 7, 8, 2**40)] == [0, 1, 2, 2, 3, 3, 4, 41]
    with pytest.raises(ValueError):
        hist.log2_slot(-1)


def test_log2_returns_every_bucket_between_first_and_last():
    out = io.StringIO()
    buckets = hist.log2({0: 1, 1: 2, 3: 5}, label="usecs", file=out)
    assert buckets == [(0, 0, 1), (1, 1, 2), (2, 3, 0), (4, 7, 5)]
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["usecs", ":", "count", "distribution"]
    assert lines[4].split(":")[0].split() == ["4", "->", "7"]
    assert lines[4].endswith("|" + "*" * 40 + "|")      # the largest count fills the bar
    assert lines[2].endswith("|" + "*" * 16 + " " * 24 + "|")   # 2/5 of it


def test_log2_of_values_counted_in_python_matches():
    values = [0, 1, 5, 6, 7, 100, 1000, 1000]
    counts: dict[int, int] = {}
    for v in values:
        counts[hist.log2_slot(v)] = counts.get(hist.log2_slot(v), 0) + 1
    buckets = hist.log2(counts, show=False)
    assert sum(c for *_, c in buckets) == len(values)
    for low, high, count in buckets:
        assert count == sum(low <= v <= high for v in values)


def test_per_cpu_values_are_summed_and_raw_keys_decoded():
    assert hist.log2({(2).to_bytes(4, "little"): [1, 2, 3]}, show=False) == [(2, 3, 6)]


def test_linear_buckets_start_and_step():
    out = io.StringIO()
    assert hist.linear({1: 4, 3: 1}, step=10, start=100, file=out) == [(110, 119, 4), (120, 129, 0), (130, 139, 1)]
    assert "110 -> 119" in out.getvalue()
    with pytest.raises(ValueError):
        hist.linear({}, step=0)


def test_empty_and_bad_keys():
    assert hist.log2({}, show=False) == []
    assert hist.log2({5: 0}, show=False) == []
    with pytest.raises(TypeError, match="bucket numbers"):
        hist.log2({"x": 1}, show=False)

"""Stream readers under misuse: arrays used after close, loops left early.

- A NumPy array taken from a batch must stay readable after the reader or
  the map is closed (the mapping lives as long as an export of it does); run
  in a subprocess, so a crash fails the test instead of killing pytest.
- ``async for`` over a RingBufReader left early (break, exception,
  cancellation) consumes exactly the records it handed over.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from pybpf.readers import RingBufReader

from test_ringbuf import Producer, seq_of

pytestmark = pytest.mark.root  # against the kernel: needs root

pytest.importorskip("numpy")

TESTS = os.path.dirname(os.path.abspath(__file__))

_CHILD = """
import gc, sys
sys.path.insert(0, {tests!r})
import numpy as np
from pybpf.readers import PerfBufReader, RingBufReader
{setup}
with producer as p:
    {make_reader}
    p.run()
    batch = reader.read_batch(timeout=1.0)
    arr = batch.array
    first = int(arr[0]["f0"])
    {close}
    gc.collect()
    # the memory the array points at must still be mapped
    print(len(arr), first, int(arr["f0"].sum()), int(arr[-1]["f0"]))
    del arr, batch
    gc.collect()
print("done")
"""

_RING = dict(setup="from test_ringbuf import Producer\nproducer = Producer(50)",
             make_reader='reader = RingBufReader(p.ring, record="<Q56x")')
_PERF = dict(setup="import os\nos.sched_setaffinity(0, {0})\nfrom test_perfbuf import PerfProducer\n"
                   "producer = PerfProducer(50)",
             make_reader='reader = PerfBufReader(p.pea, record="<Q56x")')


@pytest.mark.parametrize("kind", ["ring", "perf"])
@pytest.mark.parametrize("close", ["reader.close()", "p.close()", "reader.close(); p.close()"])
def test_batch_array_outlives_reader_and_map(kind, close):
    code = _CHILD.format(tests=TESTS, close=close, **(_RING if kind == "ring" else _PERF))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"child died with {proc.returncode}: {proc.stderr[-2000:]}"
    n, first, total, last = map(int, proc.stdout.split()[:4])
    assert (n, first, total, last) == (50, 0, sum(range(50)), 49)
    assert proc.stdout.split()[-1] == "done"


# ---------------------------------------------------------------------- async for, left early

async def _read_until(reader: RingBufReader, k: int, how: str) -> list[int]:
    got: list[int] = []
    if how == "break":
        async for rec in reader:
            got.append(seq_of(rec))
            if len(got) == k:
                break
    elif how == "exception":
        try:
            async for rec in reader:
                got.append(seq_of(rec))
                if len(got) == k:
                    raise KeyError("stop")
        except KeyError:
            pass
    else:  # cancellation of the task running the loop
        enough = asyncio.Event()

        async def loop() -> None:
            async for rec in reader:
                got.append(seq_of(rec))
                if len(got) == k:
                    enough.set()
                    await asyncio.sleep(3600)   # cancelled here, between two records

        task = asyncio.ensure_future(loop())
        await enough.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return got


@pytest.mark.parametrize("how", ["break", "exception", "cancel"])
@pytest.mark.parametrize("k", [1, 47, 499, 500])
def test_async_for_left_early_consumes_exactly_what_it_handed_over(how, k):
    with Producer(500, ring_size=1 << 16) as p, RingBufReader(p.ring) as reader:
        p.run()
        assert p.produced == 500 and p.failed == 0
        got = asyncio.run(_read_until(reader, k, how))
        assert got == list(range(k))
        rest = [seq_of(r) for r in reader.poll(timeout=0)]
        assert rest == list(range(k, 500)), f"{len(set(got) & set(rest))} duplicated"
        assert reader.received == 500


async def _break_keeping_the_iterator(reader: RingBufReader, k: int) -> tuple[list[int], object]:
    got: list[int] = []
    it = reader.__aiter__()
    async for rec in it:
        got.append(seq_of(rec))
        if len(got) == k:
            break
    return got, it  # the iterator outlives the loop


@pytest.mark.parametrize("k", [1, 47, 500])
def test_a_held_iterator_left_early_acknowledges_when_the_next_read_starts(k):
    with Producer(500, ring_size=1 << 16) as p, RingBufReader(p.ring) as reader:
        p.run()
        got, held = asyncio.run(_break_keeping_the_iterator(reader, k))
        rest = [seq_of(r) for r in reader.poll(timeout=0)]
        assert got + rest == list(range(500)), f"{len(set(got) & set(rest))} duplicated"
        del held
        # the same with a plain iterator kept after a partial read
        p.run()
        it = reader.poll(timeout=0)
        first = [seq_of(next(it)) for _ in range(k)]
        batch = reader.read_batch()
        assert first + [seq_of(r) for r in batch] == list(range(500, 1000))
        batch.release()
        assert list(it) == [] and reader.received == 1000

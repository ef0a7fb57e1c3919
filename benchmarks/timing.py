"""Timing shared by the benchmarks: the median of repeated runs after a warm-up, GPU work included."""

import statistics
import time
from typing import Callable


def median_ms(run: Callable[[], object], repeats: int, device: object = "cpu") -> float:
    """Median wall-clock milliseconds of ``run()`` over ``repeats`` runs after one untimed warm-up run.

    On a CUDA ``device`` (a string such as ``"cuda"`` or a ``torch.device``), the device is synchronised
    before and after each run, so that a timed run holds all of its GPU work and nothing queued before it.
    """
    run()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def synchronize(device: object) -> None:
    """Wait for the queued work of a CUDA ``device``; nothing to wait for on the CPU."""
    if str(device).startswith("cuda"):
        import torch as th

        th.cuda.synchronize(device)

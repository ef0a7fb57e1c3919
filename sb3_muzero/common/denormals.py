"""Denormal float32 numbers (below 1.2e-38) treated as 0 while MuZero learns.

Training drives some numbers that far down (Adam's second moments of weights that stop receiving gradient, the
activations and gradients that follow), and on x86 CPUs every arithmetic operation that meets a denormal takes a
slow path: on CartPole-v1 training became about 5 times slower by 3,500 env steps (benchmarks/RESULTS.md,
"Denormal numbers"). Flushing them to 0 changes results by less than 1.2e-38 per number.
"""

import contextlib
from collections.abc import Iterator

import torch as th


def denormals_are_flushed() -> bool:
    """Whether float32 denormals are read and written as 0 on this thread (x86's FTZ/DAZ modes)."""
    smallest_normal = th.tensor(1.1754944e-38, dtype=th.float32)
    return bool((smallest_normal / 4).item() == 0.0)


@contextlib.contextmanager
def denormals_flushed() -> Iterator[None]:
    """Denormals flushed to 0 on this thread for the length of the block (``torch.set_flush_denormal``, where the CPU
    supports it; a no-op elsewhere), then the mode this thread had before. Torch's other intra-op threads keep theirs:
    the flush reaches the calling thread only, which does all the work with ``torch.set_num_threads(1)``."""
    flushed_before = denormals_are_flushed()
    supported = th.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported and not flushed_before:
            th.set_flush_denormal(False)

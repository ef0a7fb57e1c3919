"""Time full batched searches with a no-cost model, so that only the search itself is measured.

    python benchmarks/bench_mcts.py --backend cpu --threads 1 --sims 50
    python benchmarks/bench_mcts.py --backend cuda --sims 50 --batches 8 64 256 1024 4096
    python benchmarks/bench_mcts.py --batches 256 --actions 18 --algorithms puct gumbel

The model's ``recurrent_fn`` returns precomputed random outputs (latent size 64, float32), cycling
through a few sets so that the trees are not degenerate; with ``--backend cuda`` they are CUDA
tensors, as a network on the GPU returns them. A timed search covers root preparation, root noise
(PUCT: Dirichlet; Gumbel: Gumbel noise of temperature 1), every simulation, reading the root statistics,
choosing the actions and the policy targets (on the GPU, the device is synchronised before and after, so
the time includes all of its work). Prints one JSON line per (batch, actions, algorithm): the median over
``--repeats`` runs after a warm-up; with both algorithms (the default), timed one after the other, a
line per (batch, actions) gives Gumbel's time per simulation over PUCT's.
"""

import argparse
import json

import numpy as np
from timing import median_ms

from sb3_muzero.mcts import RecurrentOutput, RootInput, SearchSettings, search
from sb3_muzero.mcts.settings import SEARCH_ALGORITHMS

LATENT_SIZE = 64
NUM_OUTPUT_SETS = 8


class NoCostModel:
    """Returns one of a few precomputed random outputs; the cost of a call is a list lookup."""

    def __init__(self, batch_size: int, num_actions: int, rng: np.random.Generator, device: str = "cpu"):
        def random_output() -> RecurrentOutput:
            return RecurrentOutput(
                reward=rng.standard_normal(batch_size, dtype=np.float32),
                value=rng.standard_normal(batch_size, dtype=np.float32),
                prior_logits=rng.standard_normal((batch_size, num_actions), dtype=np.float32),
                latent=rng.standard_normal((batch_size, LATENT_SIZE), dtype=np.float32),
            )

        self.outputs = [random_output() for _ in range(NUM_OUTPUT_SETS)]
        first = random_output()
        self.root = RootInput(first.prior_logits, first.value, first.latent)
        if device != "cpu":
            import torch as th

            def to_device(output):
                return type(output)(*(th.as_tensor(x, device=device) for x in output))

            self.outputs = [to_device(output) for output in self.outputs]
            self.root = to_device(self.root)
        self.calls = 0

    def recurrent_fn(self, latent, action) -> RecurrentOutput:
        self.calls += 1
        return self.outputs[self.calls % NUM_OUTPUT_SETS]


def time_search(
    backend: str, batch_size: int, num_actions: int, sims: int, repeats: int, device: str, algorithm: str
) -> float:
    """Median milliseconds of one full search."""
    rng = np.random.default_rng(0)
    model = NoCostModel(batch_size, num_actions, rng, device)
    settings = SearchSettings(num_simulations=sims, gamma=0.997, root_exploration_fraction=0.25, search_backend=backend,
                              search_algorithm=algorithm)  # fmt: skip

    def run_once() -> None:
        result = search(model.root, model.recurrent_fn, settings, rng=rng, temperature=1.0, add_noise=True)
        np.asarray(result.action)  # the actions are on the host when search returns

    return median_ms(run_once, repeats, device)  # the warm-up run compiles and fills the caches


def gpu_ready() -> bool:
    import torch as th

    from sb3_muzero.mcts.backends import cuda_available

    return th.cuda.is_available() and cuda_available()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="Numba threads (CPU backend)")
    parser.add_argument("--sims", type=int, default=50)
    parser.add_argument("--batches", type=int, nargs="+", help="batch sizes (default: 8 64 256 1024, and 4096 on cuda)")
    parser.add_argument("--actions", type=int, nargs="+", default=[4, 18])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--algorithms", nargs="+", default=list(SEARCH_ALGORITHMS), choices=SEARCH_ALGORITHMS)
    args = parser.parse_args()

    import numba

    numba.set_num_threads(args.threads)
    device = "cuda" if args.backend == "cuda" else "cpu"
    if device == "cuda" and not gpu_ready():
        parser.error('--backend cuda needs a CUDA GPU, a CUDA build of torch and CuPy (pip install "sb3-muzero[cuda]")')
    batches = args.batches or ([8, 64, 256, 1024] + ([4096] if args.backend == "cuda" else []))
    impl = f"{args.backend}-numba-{args.threads}t" if args.backend == "cpu" else "cuda-cupy"
    for batch_size in batches:
        for num_actions in args.actions:
            ms = {}
            for algorithm in args.algorithms:
                ms[algorithm] = time_search(args.backend, batch_size, num_actions, args.sims, args.repeats, device, algorithm)
                line = dict(impl=impl, algorithm=algorithm, batch=batch_size, actions=num_actions, sims=args.sims)
                line.update(ms_per_search=round(ms[algorithm], 4), ms_per_sim=round(ms[algorithm] / args.sims, 5))
                line["sims_per_s"] = round(batch_size * args.sims / (ms[algorithm] / 1e3))
                print(json.dumps(line), flush=True)
            if len(ms) == 2:
                ratio = round(ms["gumbel"] / ms["puct"], 3)
                print(json.dumps(dict(impl=impl, batch=batch_size, actions=num_actions, gumbel_over_puct=ratio)), flush=True)


if __name__ == "__main__":
    main()

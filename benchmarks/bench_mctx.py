"""mctx's ``muzero_policy`` (JAX) with the no-cost model of bench_mcts.py: the reference point for the CUDA backend.

    python benchmarks/bench_mctx.py --sims 50 --batches 8 64 256 1024 4096 --actions 4 18

Runs where JAX and mctx are installed (``pip install mctx``) and otherwise prints one JSON line saying it was
skipped, and why, and exits 0. The model is bench_mcts.py's: ``NUM_OUTPUT_SETS`` precomputed random outputs
(latent size 64, float32); a recurrent call returns the set after its parent's (in JAX the set index travels in the
embedding, latent [B, 64] and index [B], since the simulation loop is traced once); the discount is 0.997. The
whole ``muzero_policy`` call (root noise, every simulation, the action choice, temperature 1) is ``jax.jit``-compiled
once per shape; a timed run waits for its action (``block_until_ready``). Prints one JSON line per (batch, actions):
the median over ``--repeats`` runs after a warm-up, in bench_mcts.py's fields, with ``impl`` "mctx-jax-<platform>".

mctx normalises Q with the min and max of the parent and its siblings (``qtransform_by_parent_and_siblings``),
sb3-muzero with the min and max of the whole tree: the two searches do the same work per simulation but do not
pick the same actions.
"""

import argparse
import json
import os
import statistics
import time

import numpy as np

LATENT_SIZE = 64  # as bench_mcts.py
NUM_OUTPUT_SETS = 8
DISCOUNT = 0.997


def jax_and_mctx():
    """(jax, mctx), or None where either is missing."""
    try:
        import jax
        import mctx
    except ImportError:
        return None
    return jax, mctx


def make_policy(jax, mctx, batch_size: int, num_actions: int, sims: int):
    """A jit-compiled ``policy(rng_key) -> action [B]`` with the no-cost model's outputs baked in."""
    jnp = jax.numpy
    rng = np.random.default_rng(0)

    def random_sets(shape) -> "jax.Array":
        return jnp.asarray(rng.standard_normal((NUM_OUTPUT_SETS, *shape), dtype=np.float32))

    rewards, values = random_sets((batch_size,)), random_sets((batch_size,))
    logits, latents = random_sets((batch_size, num_actions)), random_sets((batch_size, LATENT_SIZE))
    discount = jnp.full((batch_size,), DISCOUNT, dtype=jnp.float32)
    root = mctx.RootFnOutput(prior_logits=logits[0], value=values[0],
                             embedding=(latents[0], jnp.zeros(batch_size, dtype=jnp.int32)))  # fmt: skip

    def recurrent_fn(params, rng_key, action, embedding):
        _, index = embedding
        turn = (index[0] + 1) % NUM_OUTPUT_SETS
        output = mctx.RecurrentFnOutput(reward=rewards[turn], discount=discount, prior_logits=logits[turn], value=values[turn])
        return output, (latents[turn], index + 1)

    def policy(rng_key):
        result = mctx.muzero_policy(params=(), rng_key=rng_key, root=root, recurrent_fn=recurrent_fn, num_simulations=sims,
                                    dirichlet_fraction=0.25, dirichlet_alpha=0.25, temperature=1.0)  # fmt: skip
        return result.action

    return jax.jit(policy)


def time_policy(jax, policy, repeats: int) -> float:
    """Median milliseconds of one search, after one run that compiles."""
    key = jax.random.PRNGKey(0)
    policy(key).block_until_ready()
    times = []
    for _ in range(repeats):
        key, subkey = jax.random.split(key)
        start = time.perf_counter()
        policy(subkey).block_until_ready()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sims", type=int, default=50)
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 64, 256, 1024, 4096])
    parser.add_argument("--actions", type=int, nargs="+", default=[4, 18])
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave the GPU's memory to the other steps
    modules = jax_and_mctx()
    if modules is None:
        print(json.dumps(dict(impl="mctx", skipped="JAX or mctx is not installed here (pip install mctx)")), flush=True)
        return
    jax, mctx = modules
    platform = jax.devices()[0].platform
    for batch_size in args.batches:
        for num_actions in args.actions:
            ms = time_policy(jax, make_policy(jax, mctx, batch_size, num_actions, args.sims), args.repeats)
            line = dict(impl=f"mctx-jax-{platform}", batch=batch_size, actions=num_actions, sims=args.sims,
                        ms_per_search=round(ms, 4), sims_per_s=round(batch_size * args.sims / (ms / 1e3)))  # fmt: skip
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

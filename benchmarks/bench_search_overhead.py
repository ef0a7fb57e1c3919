"""How much of a search is the tree, with the Atari network: full search time vs the network's time alone.

    python benchmarks/bench_search_overhead.py --device cuda --batch 256 --sims 50
    python benchmarks/bench_search_overhead.py --device cpu --threads 1 --batch 8 --sims 10 --channels 16

The network is MuZero's default Atari ``CnnPolicy`` (``sb3_muzero.CnnPolicy``: uint8 observations
[B, 4, 84, 84] downsampled by strided convolutions and residual blocks to a 6x6 latent of ``--channels``
planes, residual dynamics, categorical value and reward heads), untrained, in evaluation mode, for
``--actions`` actions. Times, on the same batch of observations:

- ``search_ms``: ``policy.run_search``, what self-play runs per step: the initial inference, then
  :func:`sb3_muzero.mcts.search` with one recurrent inference per simulation (the backend is chosen by
  ``search_backend="auto"``: CUDA for a network on the GPU where CuPy is installed, else the Numba CPU backend);
- ``network_only_ms``: the same network calls alone: 1 initial and ``--sims`` recurrent inferences,
  each on the previous latent, with fixed actions, and the value and reward heads turned into scalars;

and prints one JSON line with both (medians over ``--repeats`` runs after a warm-up) and
``tree_overhead = (search_ms - network_only_ms) / search_ms``: the share of the search spent outside
the network (selection, expansion, backup, gathering latents, moving the actions).
"""

import argparse
import json

import numpy as np
import torch as th
from gymnasium import spaces
from timing import median_ms

from sb3_muzero import CnnPolicy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if th.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--sims", type=int, default=50)
    parser.add_argument("--actions", type=int, default=18)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=1, help="residual blocks per stage (CnnPolicy's num_blocks)")
    parser.add_argument("--obs-size", type=int, default=84)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        th.set_num_threads(args.threads)
    device = th.device(args.device)
    if device.type == "cuda" and not th.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA GPU here (use --device cpu)")

    observation_space = spaces.Box(0, 255, (args.frames, args.obs_size, args.obs_size), np.uint8)
    policy = CnnPolicy(observation_space, spaces.Discrete(args.actions), lambda _: 1e-3, channels=args.channels,
                       num_blocks=args.blocks, search_settings=dict(num_simulations=args.sims))  # fmt: skip
    policy = policy.to(device).eval()
    generator = th.Generator().manual_seed(0)
    observation = th.randint(256, (args.batch, *observation_space.shape), generator=generator, dtype=th.uint8).to(device)
    actions = th.randint(args.actions, (args.batch,), generator=generator).to(device)

    def network_only() -> None:
        latent, _, value_logits = policy.initial_inference(observation)
        policy.to_scalar(value_logits)
        for _ in range(args.sims):
            latent, reward_logits, _, value_logits = policy.recurrent_inference(latent, actions)
            policy.to_scalar(reward_logits), policy.to_scalar(value_logits)

    def full_search() -> None:
        policy.run_search(observation, temperature=1.0, add_noise=True)

    with th.inference_mode():
        network_ms = median_ms(network_only, args.repeats, device)
        search_ms = median_ms(full_search, args.repeats, device)
    from sb3_muzero.mcts.backends import get_backend

    backend = get_backend("auto", observation).__name__.rsplit(".", 1)[-1]
    line = dict(device=str(device), backend=backend, batch=args.batch, actions=args.actions, sims=args.sims,
                channels=args.channels, blocks=args.blocks, obs_size=args.obs_size)  # fmt: skip
    line |= dict(search_ms=round(search_ms, 3), network_only_ms=round(network_ms, 3))
    line["tree_overhead"] = round((search_ms - network_ms) / search_ms, 4)
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

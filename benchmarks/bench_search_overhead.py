"""How much of a search is the tree, with a network of Atari size: full search time vs the network's time alone.

    python benchmarks/bench_search_overhead.py --device cuda --batch 256 --sims 50
    python benchmarks/bench_search_overhead.py --device cpu --threads 1 --batch 8 --sims 10 --channels 16 --obs-size 24

Times, on the same batch of observations:

- ``search_ms``: a full search: the initial inference, then :func:`sb3_muzero.mcts.search` with one
  recurrent inference per simulation (the backend is chosen by ``backend="auto"``: CUDA for a
  network on the GPU where CuPy is installed, else the Numba CPU backend);
- ``network_only_ms``: the same network calls alone: 1 initial and ``--sims`` recurrent inferences,
  each on the previous latent, with fixed actions;

and prints one JSON line with both (medians over ``--repeats`` runs after a warm-up) and
``tree_overhead = (search_ms - network_only_ms) / search_ms``: the share of the search spent outside
the network (selection, expansion, backup, gathering latents, moving the actions).

The network, :class:`AtariLikeNetwork`, is defined here with the layout MuZero-style agents use for
Atari (as EfficientZero's): stacked frames downsampled by strided convolutions to a 6x6 latent of
``--channels`` planes, residual blocks in the representation, dynamics and prediction functions,
and small convolution + linear heads for the policy, the value and the reward. The value and
reward heads output scalars (MuZero's categorical supports would add one wider linear layer each).
"""

import argparse
import json
import math
import statistics
import time
from typing import Callable

import numpy as np
import torch as th
from torch import nn

from sb3_muzero.mcts import RecurrentOutput, RootInput, search

LATENT_SIZE = 6  # the latent is LATENT_SIZE x LATENT_SIZE planes


class ResidualBlock(nn.Module):
    """conv3x3 - batch norm - ReLU - conv3x3 - batch norm, plus the input, then ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: th.Tensor) -> th.Tensor:
        return th.relu(x + self.body(x))


def head(channels: int, outputs: int, hidden: int = 32, head_channels: int = 16) -> nn.Module:
    """[B, channels, 6, 6] -> [B, outputs]: a 1x1 convolution, then two linear layers."""
    return nn.Sequential(
        nn.Conv2d(channels, head_channels, 1),
        nn.BatchNorm2d(head_channels),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(head_channels * LATENT_SIZE * LATENT_SIZE, hidden),
        nn.ReLU(),
        nn.Linear(hidden, outputs),
    )


class AtariLikeNetwork(nn.Module):
    """MuZero's three functions at Atari scale: observations [B, frames, obs_size, obs_size] -> latent [B, C, 6, 6].

    :param obs_size: side of the observations, 6 * 2**k (96 for Atari)
    :param frames: stacked frames (input planes)
    :param channels: planes of the latent
    :param blocks: residual blocks in each of the representation, dynamics and prediction functions
    """

    def __init__(self, num_actions: int, obs_size: int = 96, frames: int = 4, channels: int = 64, blocks: int = 2):
        super().__init__()
        halvings = round(math.log2(obs_size / LATENT_SIZE))
        if LATENT_SIZE * 2**halvings != obs_size:
            raise ValueError(f"obs_size must be 6 * 2**k (e.g. 24, 48, 96), got {obs_size}")
        self.num_actions = num_actions
        downsample = [self._strided(frames if i == 0 else channels, channels) for i in range(halvings)]
        self.representation = nn.Sequential(*downsample, *(ResidualBlock(channels) for _ in range(blocks)))
        self.dynamics_input = nn.Sequential(
            nn.Conv2d(channels + 1, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        self.dynamics = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))
        self.reward_head = head(channels, 1)
        self.prediction = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))
        self.policy_head = head(channels, num_actions)
        self.value_head = head(channels, 1)

    @staticmethod
    def _strided(in_channels: int, out_channels: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
                             nn.BatchNorm2d(out_channels), nn.ReLU())  # fmt: skip

    def initial_inference(self, observation: th.Tensor) -> RootInput:
        latent = self.representation(observation)
        logits, value = self._predict(latent)
        return RootInput(logits, value, latent)

    def recurrent_inference(self, latent: th.Tensor, action: th.Tensor) -> RecurrentOutput:
        """latent [B, C, 6, 6], action [B] int64 -> reward [B], value [B], logits [B, A], next latent."""
        action_plane = (action.float() / self.num_actions)[:, None, None, None].expand(-1, 1, *latent.shape[2:])
        next_latent = self.dynamics(th.relu(latent + self.dynamics_input(th.cat([latent, action_plane], dim=1))))
        logits, value = self._predict(next_latent)
        return RecurrentOutput(self.reward_head(next_latent)[:, 0], value, logits, next_latent)

    def _predict(self, latent: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        features = self.prediction(latent)
        return self.policy_head(features), self.value_head(features)[:, 0]


def median_ms(run: Callable[[], None], device: th.device, repeats: int) -> float:
    """Median wall-clock milliseconds of ``run()`` after one warm-up, the device synchronised around each run."""
    run()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def synchronize(device: th.device) -> None:
    if device.type == "cuda":
        th.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if th.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--sims", type=int, default=50)
    parser.add_argument("--actions", type=int, default=18)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--obs-size", type=int, default=96)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        th.set_num_threads(args.threads)
    device = th.device(args.device)
    if device.type == "cuda" and not th.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA GPU here (use --device cpu)")

    network = AtariLikeNetwork(args.actions, args.obs_size, args.frames, args.channels, args.blocks).to(device).eval()
    observation = th.rand(args.batch, args.frames, args.obs_size, args.obs_size, device=device)
    actions = th.randint(args.actions, (args.batch,), generator=th.Generator().manual_seed(0)).to(device)
    rng = np.random.default_rng(0)

    def network_only() -> None:
        latent = network.initial_inference(observation).latent
        for _ in range(args.sims):
            latent = network.recurrent_inference(latent, actions).latent

    def full_search() -> None:
        root = network.initial_inference(observation)
        search(root, network.recurrent_inference, args.sims, discount=0.997, rng=rng, noise_fraction=0.25, temperature=1.0)

    with th.inference_mode():
        network_ms = median_ms(network_only, device, args.repeats)
        search_ms = median_ms(full_search, device, args.repeats)
    from sb3_muzero.mcts.backends import get_backend

    backend = get_backend("auto", observation).__name__.rsplit(".", 1)[-1]
    line = dict(device=str(device), backend=backend, batch=args.batch, actions=args.actions, sims=args.sims,
                channels=args.channels, blocks=args.blocks, obs_size=args.obs_size)  # fmt: skip
    line |= dict(search_ms=round(search_ms, 3), network_only_ms=round(network_ms, 3))
    line["tree_overhead"] = round((search_ms - network_ms) / search_ms, 4)
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

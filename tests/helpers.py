"""What several test files share: tiny MuZero settings and comparisons of models and replay buffers."""

from typing import Any

import numpy as np
import torch as th

from sb3_muzero import MuZero
from sb3_muzero.replay import MuZeroReplayBuffer, SumTree

# Tiny networks, few simulations and gradient steps: every test trains in about a second.
SMALL: dict[str, Any] = dict(
    num_simulations=8,
    batch_size=32,
    learning_starts=32,
    replay_ratio=0.25,
    policy_kwargs=dict(net_arch=[32], latent_dim=16, support_size=5),
)


def replay_contents(buffer: MuZeroReplayBuffer) -> dict[str, Any]:
    """Every attribute of a replay buffer as plain values (arrays copied), to compare two buffers."""
    contents: dict[str, Any] = {}
    for name, value in vars(buffer).items():
        if isinstance(value, SumTree):
            contents[name] = value.tree.copy()
        elif isinstance(value, dict):
            contents.update({f"{name}[{key}]": np.array(entry) for key, entry in value.items()})
        elif isinstance(value, np.ndarray):
            contents[name] = value.copy()
        else:
            contents[name] = value
    return contents


def assert_same_replay(first: MuZeroReplayBuffer, second: MuZeroReplayBuffer) -> None:
    one, other = replay_contents(first), replay_contents(second)
    assert one.keys() == other.keys()
    for name, value in one.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, other[name], err_msg=name)
        else:
            assert value == other[name], name


def assert_same_parameters(first: MuZero, second: MuZero) -> None:
    """Bit-identical networks and optimizer states."""
    one, other = first.get_parameters(), second.get_parameters()
    assert one.keys() == other.keys()
    for name in one:
        assert_same_state(one[name], other[name], name)


def assert_same_state(one: Any, other: Any, where: str) -> None:
    if isinstance(one, th.Tensor):
        assert th.equal(one, other), where
    elif isinstance(one, dict):
        assert one.keys() == other.keys(), where
        for key in one:
            assert_same_state(one[key], other[key], f"{where}.{key}")
    elif isinstance(one, (list, tuple)):
        assert len(one) == len(other), where
        for index, (a, b) in enumerate(zip(one, other)):
            assert_same_state(a, b, f"{where}[{index}]")
    else:
        assert one == other, where

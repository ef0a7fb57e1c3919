"""Deterministic random model outputs for search tests, in numpy alone (no torch, no sb3_muzero), so that the mctx
oracle script (``tests/data/make_mctx_gumbel_oracle.py``), which runs with JAX in an environment of its own, computes
the very outputs the tests' :class:`tests.mcts_models.HashModel` gives the search."""

import numpy as np

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(state: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a well-mixed uint64 hash of each element."""
    with np.errstate(over="ignore"):
        z = (state + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def _uniform(state: np.ndarray, salt: int, low: float, high: float) -> np.ndarray:
    """A float64 in [low, high) drawn from the hash of (state, salt)."""
    bits = _mix(state ^ _mix(np.full_like(state, salt)))
    return low + (high - low) * (bits >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class HashOutputs:
    """A seeded random model over uint64 state ids [B, 1]: every output depends only on the path of actions from the
    root, so it is batch-size invariant by construction.

    Rewards lie in [-1, 1), values in [-value_scale, value_scale), logits in [-2, 2).
    """

    def __init__(self, num_actions: int, seed: int, value_scale: float = 3.0, levels: int = 0):
        """:param levels: if > 0, every output is rounded to one of ``levels`` values, so that exact ties are common"""
        self.num_actions = num_actions
        self.seed = np.uint64(seed)
        self.value_scale = value_scale
        self.levels = levels

    def _coarse(self, x: np.ndarray, low: float, high: float) -> np.ndarray:
        if self.levels <= 0:
            return x
        step = (high - low) / self.levels
        return low + step * np.floor((x - low) / step)

    def _outputs(self, state: np.ndarray):
        value = self._coarse(_uniform(state, 1, -self.value_scale, self.value_scale), -self.value_scale, self.value_scale)
        logits = np.stack([_uniform(state, 100 + a, -2.0, 2.0) for a in range(self.num_actions)], axis=-1)
        return value, self._coarse(logits, -2.0, 2.0)

    def root_outputs(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The roots of ``batch_size`` trees: logits [B, A], value [B], state [B, 1] uint64."""
        state = _mix(np.arange(batch_size, dtype=np.uint64) ^ self.seed)
        value, logits = self._outputs(state)
        return logits, value, state[:, None]

    def step(self, state: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One model step from states [B, 1] uint64 and actions [B]: reward [B], value [B], logits [B, A], state [B, 1]."""
        state = _mix(state[:, 0] ^ _mix(np.asarray(action, dtype=np.uint64) + np.uint64(7)))
        value, logits = self._outputs(state)
        reward = self._coarse(_uniform(state, 2, -1.0, 1.0), -1.0, 1.0)
        return reward, value, logits, state[:, None]


def random_legal_mask(rng: np.random.Generator, batch_size: int, num_actions: int) -> np.ndarray:
    """About half the actions legal, at least one per row, and at least one row with an illegal action."""
    mask = rng.random((batch_size, num_actions)) < 0.5
    mask[np.arange(batch_size), rng.integers(num_actions, size=batch_size)] = True
    mask[0, (np.argmax(mask[0]) + 1) % num_actions] = num_actions == 1
    return mask

"""Deterministic random models for search tests: outputs depend only on the (latent, action) path."""

import numpy as np
import torch as th

from sb3_muzero.mcts.types import RecurrentOutput, RootInput

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


class HashModel:
    """A seeded random model whose latent is a uint64 state id [B, 1]; batch-size invariant by construction.

    Rewards lie in [-1, 1), values in [-value_scale, value_scale), logits in [-2, 2).
    """

    def __init__(self, num_actions: int, seed: int, value_scale: float = 3.0, levels: int = 0):
        """:param levels: if > 0, every output is rounded to one of ``levels`` values, so that exact ties are common"""
        self.num_actions = num_actions
        self.seed = np.uint64(seed)
        self.value_scale = value_scale
        self.levels = levels
        self.calls: list[int] = []  # batch size of every recurrent call

    def _coarse(self, x: np.ndarray, low: float, high: float) -> np.ndarray:
        if self.levels <= 0:
            return x
        step = (high - low) / self.levels
        return low + step * np.floor((x - low) / step)

    def _outputs(self, state: np.ndarray):
        value = self._coarse(_uniform(state, 1, -self.value_scale, self.value_scale), -self.value_scale, self.value_scale)
        logits = np.stack([_uniform(state, 100 + a, -2.0, 2.0) for a in range(self.num_actions)], axis=-1)
        return value, self._coarse(logits, -2.0, 2.0)

    def root(self, batch_size: int) -> RootInput:
        state = _mix(np.arange(batch_size, dtype=np.uint64) ^ self.seed)
        value, logits = self._outputs(state)
        return RootInput(prior_logits=logits, value=value, latent=state[:, None])

    def recurrent_fn(self, latent: np.ndarray, action: np.ndarray) -> RecurrentOutput:
        self.calls.append(len(action))
        state = _mix(latent[:, 0] ^ _mix(np.asarray(action, dtype=np.uint64) + np.uint64(7)))
        value, logits = self._outputs(state)
        reward = self._coarse(_uniform(state, 2, -1.0, 1.0), -1.0, 1.0)
        return RecurrentOutput(reward=reward, value=value, prior_logits=logits, latent=state[:, None])


class Float32Model(HashModel):
    """HashModel with float32 rewards, values and logits, as a torch network in float32 returns them."""

    def recurrent_fn(self, latent: np.ndarray, action: np.ndarray) -> RecurrentOutput:
        output = super().recurrent_fn(latent, action)
        return output._replace(**{f: getattr(output, f).astype(np.float32) for f in ("reward", "value", "prior_logits")})


class TorchModel:
    """A numpy test model seen through torch tensors on ``device``: root and outputs in the model's dtypes.

    The uint64 states travel as int64 tensors of the same bits. Each call goes through the host, so on a GPU
    this model synchronises: it is for agreement tests, not for tests that the loop never waits.
    """

    def __init__(self, model: HashModel, device: str):
        self.model, self.device = model, th.device(device)
        self.num_actions = model.num_actions

    def root(self, batch_size: int) -> RootInput:
        root = self.model.root(batch_size)
        return RootInput(self._tensor(root.prior_logits), self._tensor(root.value), self._tensor(root.latent.view(np.int64)))

    def recurrent_fn(self, latent: th.Tensor, action: th.Tensor) -> RecurrentOutput:
        assert latent.device.type == action.device.type == self.device.type and action.dtype == th.int64
        output = self.model.recurrent_fn(latent.cpu().numpy().view(np.uint64), action.cpu().numpy())
        return RecurrentOutput(*(self._tensor(x) for x in output[:3]), self._tensor(output.latent.view(np.int64)))

    def _tensor(self, array: np.ndarray) -> th.Tensor:
        return th.as_tensor(np.ascontiguousarray(array), device=self.device)

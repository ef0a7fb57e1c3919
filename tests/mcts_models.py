"""Deterministic random models for search tests: outputs depend only on the (latent, action) path."""

import numpy as np
import torch as th

from sb3_muzero.mcts.types import RecurrentOutput, RootInput
from tests.hash_outputs import HashOutputs


class HashModel(HashOutputs):
    """A seeded random model whose latent is a uint64 state id [B, 1]; batch-size invariant by construction.

    Rewards lie in [-1, 1), values in [-value_scale, value_scale), logits in [-2, 2) (see
    :class:`tests.hash_outputs.HashOutputs`, which computes them).
    """

    def __init__(self, num_actions: int, seed: int, value_scale: float = 3.0, levels: int = 0):
        """:param levels: if > 0, every output is rounded to one of ``levels`` values, so that exact ties are common"""
        super().__init__(num_actions, seed, value_scale, levels)
        self.calls: list[int] = []  # batch size of every recurrent call

    def root(self, batch_size: int) -> RootInput:
        logits, value, state = self.root_outputs(batch_size)
        return RootInput(prior_logits=logits, value=value, latent=state)

    def recurrent_fn(self, latent: np.ndarray, action: np.ndarray) -> RecurrentOutput:
        self.calls.append(len(action))
        reward, value, logits, state = self.step(latent, action)
        return RecurrentOutput(reward=reward, value=value, prior_logits=logits, latent=state)


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

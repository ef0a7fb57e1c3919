"""Float32 denormals flushed to 0 while MuZero learns, and the thread's mode as it was afterwards."""

import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from sb3_muzero import MuZero
from sb3_muzero.common.denormals import denormals_are_flushed, denormals_flushed
from tests.helpers import SMALL

DENORMAL = 1e-39  # below float32's smallest normal number, 1.1754944e-38

requires_flush_mode = pytest.mark.skipif(not th.set_flush_denormal(False), reason="this CPU has no flush-to-zero mode")


def denormal_product() -> float:
    """A float32 product that is a denormal unless denormals are flushed."""
    return (th.tensor(DENORMAL * 1e10, dtype=th.float32) * th.tensor(1e-10, dtype=th.float32)).item()


@requires_flush_mode
def test_flushed_inside_the_block_and_as_before_after_it():
    assert denormal_product() > 0 and not denormals_are_flushed()
    with denormals_flushed():
        assert denormal_product() == 0.0 and denormals_are_flushed()
    assert denormal_product() > 0 and not denormals_are_flushed()


@requires_flush_mode
def test_a_mode_set_before_is_kept():
    th.set_flush_denormal(True)
    try:
        with denormals_flushed():
            pass
        assert denormals_are_flushed() and denormal_product() == 0.0
    finally:
        th.set_flush_denormal(False)


@requires_flush_mode
def test_restored_when_the_block_raises():
    with pytest.raises(KeyError):
        with denormals_flushed():
            raise KeyError("in the block")
    assert not denormals_are_flushed()


class RecordFlushMode(BaseCallback):
    def __init__(self):
        super().__init__()
        self.modes: list[bool] = []

    def _on_step(self) -> bool:
        self.modes.append(denormals_are_flushed())
        return True

    def _on_rollout_end(self) -> None:
        self.modes.append(denormals_are_flushed())


@requires_flush_mode
def test_learn_flushes_denormals_for_its_length_only():
    model = MuZero("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    callback = RecordFlushMode()
    model.learn(64, callback=callback)
    assert callback.modes and all(callback.modes)
    assert model._n_updates > 0 and not denormals_are_flushed()

"""SB3's tests/test_tensorboard.py, ported to MuZero: run folders, and reset_num_timesteps=False keeps the run."""

import os

import pytest
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import HParam
from stable_baselines3.common.utils import get_latest_run_id

from sb3_muzero import MuZero
from tests.helpers import SMALL

N_STEPS = 50


class HParamCallback(BaseCallback):
    """Saves the hyperparameters and metrics at the start of the training, and logs them to TensorBoard."""

    def _on_training_start(self) -> None:
        hparam_dict = {"algorithm": self.model.__class__.__name__, "gamma": self.model.gamma}
        if isinstance(self.model.learning_rate, float):
            hparam_dict["learning rate"] = self.model.learning_rate
        metric_dict = {"rollout/ep_len_mean": 0}
        self.logger.record("hparams", HParam(hparam_dict, metric_dict), exclude=("stdout", "log", "json", "csv"))

    def _on_step(self) -> bool:
        return True


def test_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")

    logname = "MuZero"
    model = MuZero("MlpPolicy", "CartPole-v1", verbose=1, tensorboard_log=tmp_path, **{**SMALL, "learning_starts": 20})
    model.learn(N_STEPS, callback=HParamCallback())
    model.learn(N_STEPS, reset_num_timesteps=False)

    assert os.path.isdir(tmp_path / str(logname + "_1"))
    assert not os.path.isdir(tmp_path / str(logname + "_2"))
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "MuZero_1"))

    logname = "tb_multiple_runs_muzero"
    model.learn(N_STEPS, tb_log_name=logname)
    model.learn(N_STEPS, tb_log_name=logname)

    assert os.path.isdir(tmp_path / str(logname + "_1"))
    # the run folder number goes up
    assert os.path.isdir(tmp_path / str(logname + "_2"))


def test_escape_log_name(tmp_path):
    log_name = "filename[16, 16]"
    os.makedirs(str(tmp_path) + f"/{log_name}_1", exist_ok=True)
    os.makedirs(str(tmp_path) + f"/{log_name}_2", exist_ok=True)
    assert get_latest_run_id(tmp_path, log_name) == 2

"""``python -m sb3_muzero``: the README's main command, and the yml sections it reads."""

import re
import subprocess
import sys

import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_muzero import MuZero
from sb3_muzero.hyperparams import muzero_settings


def test_settings_follow_rl_zoo3_section_choice():
    cartpole = muzero_settings("CartPole-v1")
    assert cartpole.section == "CartPole-v1" and cartpole.policy == "MlpPolicy"
    assert isinstance(cartpole.kwargs["policy_kwargs"], dict) and "n_envs" not in cartpole.kwargs
    breakout = muzero_settings("BreakoutNoFrameskip-v4")
    assert breakout.section == "atari" and breakout.policy == "CnnPolicy"
    assert breakout.env_options["frame_stack"] == 4 and "frame_stack" not in breakout.kwargs
    assert muzero_settings("ALE/Pong-v5").section == "atari"
    assert muzero_settings("Pendulum-v1").section == "default"
    # Every section builds a MuZero (the keys are constructor arguments).
    for env_id in ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3"):
        settings = muzero_settings(env_id)
        env = make_vec_env("CartPole-v1", n_envs=1)
        MuZero(settings.policy, env, **{**settings.kwargs, "buffer_size": 100})


def test_main_command_trains_saves_and_prints_the_evaluation_of_the_saved_model(tmp_path):
    save_path = tmp_path / "cartpole.zip"
    command = [sys.executable, "-m", "sb3_muzero", "-n", "600", "--eval-episodes", "2", "--log-interval", "200",
               "--save-path", str(save_path)]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0].startswith("MuZero on CartPole-v1: 600 env steps, 8 envs, section 'CartPole-v1'")
    assert [int(line.split()[0].replace(",", "")) for line in lines[1:-1]] == [200, 400, 600]
    printed = re.fullmatch(r"Saved .*\. Evaluation over 2 episodes \(deterministic\): (\S+) \+/- (\S+)", lines[-1])
    assert printed, lines[-1]
    # The printed figure is the evaluation of the model that was saved, on the evaluation env's seed.
    model = MuZero.load(save_path, device="cpu")
    assert model.num_timesteps == 600
    mean, std = evaluate_policy(model, make_vec_env("CartPole-v1", n_envs=1, seed=10_000), n_eval_episodes=2)
    np.testing.assert_allclose([float(printed[1]), float(printed[2])], [mean, std], atol=0.01)


def test_main_command_refuses_unknown_envs_clearly():
    completed = subprocess.run([sys.executable, "-m", "sb3_muzero", "--env", "NoSuchEnv-v0", "-n", "10"],
                               capture_output=True, text=True, timeout=300)  # fmt: skip
    assert completed.returncode != 0
    assert "NoSuchEnv" in completed.stderr

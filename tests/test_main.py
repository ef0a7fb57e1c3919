"""``python -m sb3_muzero``: the README's main command, and the yml sections it reads."""

import re
import subprocess
import sys

import numpy as np
import pytest
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


def test_main_command_trains_keeps_the_best_model_and_prints_evaluations_of_the_saved_models(tmp_path):
    save_path = tmp_path / "cartpole.zip"
    command = [sys.executable, "-m", "sb3_muzero", "-n", "600", "--eval-freq", "200", "--eval-episodes", "2",
               "--final-eval-episodes", "2", "--save-path", str(save_path)]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0].startswith("MuZero on CartPole-v1: 600 env steps, 8 envs, section 'CartPole-v1'")
    progress = [re.search(r"^\s*([\d,]+) steps .* eval\s+(\S+) \+/-", line) for line in lines[1:-2]]
    assert [int(match[1].replace(",", "")) for match in progress] == [200, 400, 600]
    evaluations = [float(match[2]) for match in progress]

    final = re.fullmatch(r"Final model \(600 steps\), saved as (.*): evaluation over 2 episodes \(deterministic\): "
                         r"(\S+) \+/- (\S+)", lines[-2])  # fmt: skip
    best = re.fullmatch(r"Best model \(eval (\S+) at ([\d,]+) steps\), saved as (.*): evaluation over 2 episodes "
                        r"\(deterministic\): (\S+) \+/- (\S+)", lines[-1])  # fmt: skip
    assert final and best, lines[-2:]
    assert final[1] == str(save_path) and best[3] == str(tmp_path / "cartpole_best.zip")
    # The best model is the one of the first evaluation with the highest mean.
    best_index = int(np.argmax(evaluations))
    assert float(best[1]) == evaluations[best_index] and int(best[2].replace(",", "")) == 200 * (best_index + 1)
    # The printed figures are evaluations of the saved files, on the final evaluation env's seed.
    for match, path, mean_group in ((final, save_path, 2), (best, tmp_path / "cartpole_best.zip", 4)):
        model = MuZero.load(path, device="cpu")
        eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=20_000)
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=2)
        np.testing.assert_allclose([float(match[mean_group]), float(match[mean_group + 1])], [mean, std], atol=0.01)


def test_main_command_refuses_unknown_envs_clearly():
    completed = subprocess.run([sys.executable, "-m", "sb3_muzero", "--env", "NoSuchEnv-v0", "-n", "10"],
                               capture_output=True, text=True, timeout=300)  # fmt: skip
    assert completed.returncode != 0
    assert "NoSuchEnv" in completed.stderr


def test_settings_read_rl_zoo3_linear_schedules_and_refuse_other_strings(tmp_path):
    path = tmp_path / "muzero.yml"
    path.write_text("CartPole-v1:\n  n_timesteps: 100\n  policy: MlpPolicy\n  learning_rate: lin_2e-3\n")
    schedule = muzero_settings("CartPole-v1", path).kwargs["learning_rate"]
    assert [schedule(1.0), schedule(0.5), schedule(0.0)] == [2e-3, 1e-3, 0.0]
    path.write_text("CartPole-v1:\n  n_timesteps: 100\n  policy: MlpPolicy\n  learning_rate: exp_2e-3\n")
    with pytest.raises(ValueError, match="learning_rate 'exp_2e-3': supported are a number and 'lin_<initial value>'"):
        muzero_settings("CartPole-v1", path)


def test_main_command_refuses_a_section_with_env_options_it_cannot_apply(monkeypatch):
    import sb3_muzero.__main__ as main_module

    settings = muzero_settings("CartPole-v1")
    settings.env_options = {"normalize": True}
    monkeypatch.setattr(main_module, "muzero_settings", lambda env_id: settings)
    with pytest.raises(SystemExit, match=r"sets \['normalize'\], which python -m sb3_muzero does not apply; train this env "
                       r"with python -m rl_zoo3.train --algo muzero --env CartPole-v1"):  # fmt: skip
        main_module.main(["-n", "10"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-n", "0"], "-n must be >= 1, got 0"),
        (["--eval-freq", "-5"], "--eval-freq must be >= 0, got -5"),
        (["--eval-episodes", "0"], "--eval-episodes must be >= 1, got 0"),
        (["--final-eval-episodes", "0"], "--final-eval-episodes must be >= 1, got 0"),
    ],
)
def test_main_command_refuses_bad_numbers_before_training(argv, message, capsys):
    import sb3_muzero.__main__ as main_module

    with pytest.raises(SystemExit) as exit_info:
        main_module.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err

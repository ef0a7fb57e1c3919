"""``python -m sb3_muzero``: the README's main command, and the yml sections it reads."""

import re
import subprocess
import sys
import time

import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import load_results

import sb3_muzero.__main__ as main_module
from sb3_muzero import MuZero
from sb3_muzero.__main__ import next_evaluation, reward_threshold
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


def run_main(*arguments: str, timeout: int = 600) -> list[str]:
    """``python -m sb3_muzero ARGUMENTS`` (its output a pipe, as in CI): the lines it printed."""
    completed = subprocess.run([sys.executable, "-m", "sb3_muzero", *arguments], capture_output=True, text=True,
                               timeout=timeout)  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.splitlines()


def evaluation_lines(lines: list[str]) -> list[tuple[int, float]]:
    """(env steps, mean) of every evaluation line."""
    matches = [re.fullmatch(r"\s*([\d,]+) env steps\s+\S+ s\s+evaluation over \d+ episodes:\s+(\S+) \+/-\s+\S+", line)
               for line in lines]  # fmt: skip
    return [(int(match[1].replace(",", "")), float(match[2])) for match in matches if match]


def assert_printed_evaluation_is_the_saved_models(line: str, label: str, path, episodes: int) -> None:
    """``line`` is ``label``'s final evaluation line, with the mean +/- std of the saved model at ``path`` over
    ``episodes`` deterministic episodes played at once (envs seeded 20,000, 20,001, ...)."""
    match = re.fullmatch(
        re.escape(label) + rf": evaluation over {episodes} episodes \(deterministic\): (\S+) \+/- (\S+)", line
    )
    assert match, (line, label)
    model = MuZero.load(path, device="cpu")
    mean, std = evaluate_policy(model, make_vec_env("CartPole-v1", n_envs=episodes, seed=20_000), n_eval_episodes=episodes)
    np.testing.assert_allclose([float(match[1]), float(match[2])], [mean, std], atol=0.01)


def test_main_command_trains_keeps_the_best_model_logs_and_prints_evaluations_of_the_saved_models(tmp_path):
    save_path = tmp_path / "cartpole.zip"
    lines = run_main("-n", "600", "--eval-freq", "200", "--eval-episodes", "2", "--final-eval-episodes", "3",
                     "--save-path", str(save_path), "--target", "1000")  # fmt: skip
    assert lines[0] == ("MuZero on CartPole-v1: at most 600 env steps (stops at an evaluation of 1000), 8 envs, "
                        "section 'CartPole-v1' of muzero.yml, seed 0")  # fmt: skip
    assert re.fullmatch(r"\s+8 env steps\s+\S+ env steps/s\s+\d+ s\s+no episode finished yet", lines[1]), lines[1]
    evaluations = evaluation_lines(lines)
    assert [step for step, _ in evaluations] == [200, 400, 600]
    # The log folder holds the evaluations as printed and every training episode (SB3's Monitor format).
    logged = np.load(tmp_path / "cartpole_logs" / "evaluations.npz")
    assert logged["timesteps"].tolist() == [200, 400, 600] and logged["results"].shape == (3, 2)
    np.testing.assert_allclose(logged["results"].mean(axis=1), [mean for _, mean in evaluations], atol=0.05)
    episodes = load_results(str(tmp_path / "cartpole_logs"))
    assert len(episodes) > 8 and episodes["l"].sum() <= 600 and (episodes["r"] == episodes["l"]).all()  # 1 per step

    final_label = f"Final model (600 steps), saved as {save_path}"
    best_index = int(np.argmax([mean for _, mean in evaluations]))  # the first evaluation with the highest mean
    best_step, best_mean = evaluations[best_index]
    best_label = f"Best model (eval {best_mean:.1f} at {best_step:,} steps), saved as {tmp_path / 'cartpole_best.zip'}"
    assert_printed_evaluation_is_the_saved_models(lines[-2 if best_step != 600 else -1], final_label, save_path, 3)
    if best_step != 600:
        assert_printed_evaluation_is_the_saved_models(lines[-1], best_label, tmp_path / "cartpole_best.zip", 3)


def test_main_command_stops_at_the_target_and_evaluates_the_saved_model(tmp_path):
    save_path = tmp_path / "cartpole.zip"
    lines = run_main(
        "-n",
        "2000",
        "--eval-freq",
        "100",
        "--eval-episodes",
        "2",
        "--final-eval-episodes",
        "2",
        "--save-path",
        str(save_path),
        "--target",
        "5",
    )  # every CartPole episode lasts 8 steps or more
    assert evaluation_lines(lines)[0][0] == 104  # the first vector step of 8 envs at or past 100 env steps
    assert lines[-2:-1] == ["  Reached the target 5: training stops"] and len(evaluation_lines(lines)) == 1
    assert_printed_evaluation_is_the_saved_models(lines[-1], f"Final model (104 steps), saved as {save_path}", save_path, 2)


def test_evaluations_come_often_early_and_rarer_later():
    steps, step = [], 0
    while step < 20_000:
        step = next_evaluation(step, 500)
        steps.append(step)
    assert steps == [*range(500, 5_001, 500), *range(6_000, 10_001, 1_000), *range(12_000, 20_001, 2_000)]
    assert next_evaluation(4_504, 500) == 5_000 and next_evaluation(5_004, 500) == 6_000  # from the step it ran at


def test_the_target_is_the_envs_reward_threshold_unless_given():
    assert reward_threshold("CartPole-v1", atari=False) == 475.0
    assert reward_threshold("Pendulum-v1", atari=False) is None
    assert reward_threshold("BreakoutNoFrameskip-v4", atari=True) is None


def test_atari_command_prints_progress_within_30_seconds(tmp_path):
    """A tiny network on Breakout: the first progress line, and then a second one, come within 30 s of the start."""
    command = [sys.executable, "-m", "sb3_muzero", "--env", "BreakoutNoFrameskip-v4", "-n", "100000", "--eval-freq", "0",
               "--save-path", str(tmp_path / "breakout.zip"), "--threads", "1", "--set", "n_envs=2", "num_simulations=2",
               "buffer_size=2000", "learning_starts=200", "policy_kwargs=dict(channels=4, num_blocks=1)"]  # fmt: skip
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    progress = []
    try:
        for line in process.stdout:
            if re.fullmatch(r"\s+[\d,]+ env steps\s+\S+ env steps/s\s+\d+ s\s+.*", line.rstrip()):
                progress.append((time.monotonic() - start, line.rstrip()))
            if len(progress) == 2 or time.monotonic() - start > 30:
                break
    finally:
        process.kill()
        process.wait()
    assert len(progress) == 2 and progress[-1][0] <= 30, progress
    assert progress[0][1].split()[0] == "2"  # after the first step of both envs


def test_main_command_takes_setting_changes():
    args = main_module.parse_args(["--set", "num_simulations=8", "policy_kwargs=dict(net_arch=[16])", "n_envs=2",
                                   "learning_rate=lin_2e-3"])  # fmt: skip
    settings = muzero_settings("CartPole-v1").with_overrides(args.overrides)
    assert settings.n_envs == 2 and settings.kwargs["num_simulations"] == 8
    assert settings.kwargs["policy_kwargs"] == {"net_arch": [16]} and settings.kwargs["learning_rate"](0.5) == 1e-3
    assert settings.kwargs["td_steps"] == muzero_settings("CartPole-v1").kwargs["td_steps"]  # the rest as in the section


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
        (["--set", "td_steps"], "--set takes KEY=VALUE items, got ['td_steps']"),
    ],
)
def test_main_command_refuses_bad_numbers_before_training(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main_module.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_long_evaluations_print_progress_lines(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(main_module, "DEFAULT_INTERVAL_S", 0.0)  # a line at every step of the evaluation
    main_module.main(["-n", "16", "--eval-freq", "8", "--eval-episodes", "2", "--final-eval-episodes", "1", "--target",
                      "1000", "--save-path", str(tmp_path / "model.zip"), "--set", "learning_starts=8"])  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    evaluating = [line for line in lines if "evaluating:" in line]
    assert re.fullmatch(r"\s+8 env steps\s+\S+ s\s+evaluating: 0 of 2 episodes done", evaluating[0]), evaluating[0]
    assert len(evaluating) >= 8 * 2  # CartPole episodes last 8 steps or more, the callback runs once per env and step

"""Command-line checks of the benchmark scripts: bad arguments stop with a usage error before any training."""

import importlib.util
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from sb3_muzero import MuZero

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_main_refuses(benchmark, argv: list[str], message: str, monkeypatch, capsys) -> None:
    """``benchmark.main()`` with command line ``argv`` exits with argparse's status 2 and prints ``message``."""
    monkeypatch.setattr(sys, "argv", ["benchmark.py", *argv])
    with pytest.raises(SystemExit) as stopped:
        benchmark.main()
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seeds", "0"], "--seeds must be >= 1, got 0"),
        (["--threads", "0"], "--threads must be >= 1, got 0"),
        (["--n-timesteps", "-5"], "--n-timesteps must be >= 1, got -5"),
        (["--set", "td_steps"], "--set takes KEY=VALUE items, got ['td_steps']"),
        (["--variant", "td_steps=5"], "--variant takes a NAME, then KEY=VALUE items, got ['td_steps=5']"),
        (["--variant", "short", "td_steps"], "--variant takes a NAME, then KEY=VALUE items, got ['short', 'td_steps']"),
        (["--variant", "a", "--variant", "a", "td_steps=5"], "--variant 'a' is given twice"),
    ],
)
def test_cartpole_benchmark_rejects_bad_arguments_before_training(monkeypatch, capsys, argv, message):
    benchmark = load_benchmark("cartpole")
    monkeypatch.setattr(benchmark, "run", lambda *args: pytest.fail("trained despite a bad argument"))
    assert_main_refuses(benchmark, argv, message, monkeypatch, capsys)


def test_cartpole_benchmark_compares_variants_seed_by_seed(monkeypatch, capsys):
    """Each seed is trained once per variant, the variants taking turns; a variant's settings go on top of --set's."""
    benchmark = load_benchmark("cartpole")
    made = []

    class RecordingMuZero(MuZero):
        def __init__(self, policy, env, seed=None, **kwargs):
            made.append(dict(seed=seed, **kwargs))
            super().__init__(policy, env, seed=seed, **kwargs)

    monkeypatch.setattr(benchmark, "MuZero", RecordingMuZero)
    argv = ["--seeds", "2", "--n-timesteps", "16", "--set", "learning_starts=1000", "policy_kwargs=dict(net_arch=[8])",
            "--variant", "section", "--variant", "gumbel2", "search_algorithm=gumbel", "num_simulations=2"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["cartpole.py", *argv])
    benchmark.main()
    assert [(m["seed"], m.get("search_algorithm", "puct"), m["num_simulations"]) for m in made] == [
        (0, "puct", 50), (0, "gumbel", 2), (1, "puct", 50), (1, "gumbel", 2)
    ]  # fmt: skip
    assert all(m["learning_starts"] == 1000 and m["policy_kwargs"] == dict(net_arch=[8]) for m in made)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["variant"], line.get("seed")) for line in lines] == [
        ("section", 0), ("gumbel2", 0), ("section", 1), ("gumbel2", 1), ("section", None), ("gumbel2", None)
    ]  # fmt: skip
    assert lines[-1]["settings"] == ["search_algorithm=gumbel", "num_simulations=2"] and "median_wall_s" in lines[-1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["model.zip", "--episodes", "0"], "--episodes must be >= 1, got 0"),
        (["model.zip", "--threads", "0"], "--threads must be >= 1, got 0"),
        (["no-such-model.zip"], "no such model file: no-such-model.zip"),
    ],
)
def test_episodes_benchmark_rejects_bad_arguments_before_playing(monkeypatch, capsys, tmp_path, argv, message):
    benchmark = load_benchmark("episodes")
    (tmp_path / "model.zip").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(benchmark, "episode_returns", lambda *args: pytest.fail("played despite a bad argument"))
    assert_main_refuses(benchmark, argv, message, monkeypatch, capsys)


def test_episodes_benchmark_plays_the_episodes_one_by_one_would(tmp_path):
    """The batched episodes equal episodes played alone, env i reset with seed + i, with the same model."""
    model = MuZero("MlpPolicy", "CartPole-v1", num_simulations=3, seed=0, policy_kwargs=dict(net_arch=[16], latent_dim=8))
    model.save(tmp_path / "model.zip")
    returns = load_benchmark("episodes").episode_returns(str(tmp_path / "model.zip"), "CartPole-v1", 8, 50)
    expected = []
    for i in range(8):
        env = gym.make("CartPole-v1")
        observation, _ = env.reset(seed=50 + i)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(observation, deterministic=True)
            observation, reward, terminated, truncated, _ = env.step(int(action))
            total, done = total + reward, terminated or truncated
        expected.append(total)
    np.testing.assert_array_equal(returns, expected)
    assert expected[:-1] != expected[1:]  # neighbouring seeds give different episodes, so a shifted seed would show

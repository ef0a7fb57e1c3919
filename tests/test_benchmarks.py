"""Command-line checks of the benchmark scripts (bad arguments stop with a usage error before any training), and the
GPU check's dry run."""

import importlib.util
import json
import os
import re
import subprocess
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
    ],
)
def test_cartpole_benchmark_rejects_bad_arguments_before_training(monkeypatch, capsys, argv, message):
    benchmark = load_benchmark("cartpole")
    monkeypatch.setattr(benchmark, "run", lambda *args: pytest.fail("trained despite a bad argument"))
    assert_main_refuses(benchmark, argv, message, monkeypatch, capsys)


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


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_step_and_plans_under_nine_minutes_of_gpu_time(tmp_path):
    """``bash benchmarks/gpu_check.sh OUT --dry-run``: every step of the GPU check with tiny sizes on the CPU."""
    environment = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh"), str(tmp_path / "out"), "--dry-run"], cwd=tmp_path,
                               env=environment, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    planned = re.search(r"^planned GPU time: (\d+) s", completed.stdout, re.MULTILINE)
    assert planned and int(planned[1]) < 9 * 60
    steps = [json.loads(line) for line in (tmp_path / "out" / "summary.jsonl").read_text().splitlines()]
    assert [step["step"] for step in steps] == ["tests", "bench_mcts", "bench_mctx", "search_overhead", "training"]
    assert all(step["status"] == 0 and step["seconds"] <= step["limit_s"] for step in steps), steps
    results = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    by_kind = {result.get("impl", result.get("bench", result.get("device"))): result for result in results}
    assert by_kind["cpu-numba-1t"]["batch"] == 8 and by_kind["cpu-numba-1t"]["ms_per_search"] > 0
    assert "skipped" in by_kind.get("mctx", {}) or any(kind.startswith("mctx-jax") for kind in by_kind)
    assert by_kind["cpu"]["tree_overhead"] is not None  # bench_search_overhead's line
    assert by_kind["training"]["env_steps_per_s"] > 0 and by_kind["training"]["gradient_steps_per_s"] > 0
    assert "skipped" in (tmp_path / "out" / "tests.log").read_text()  # the gpu tests ran, skipped without a GPU
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(
        [f"{name}.log" for name in ("machine", "tests", "bench_mcts", "bench_mctx", "search_overhead", "training")]
        + ["summary.jsonl", "results.jsonl"]
    )  # at most 8 files, which the GPU machine's tool brings back

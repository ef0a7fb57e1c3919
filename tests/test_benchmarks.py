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
        (["--variant", "td_steps=5"], "--variant takes a NAME, then KEY=VALUE items, got ['td_steps=5']"),
        (["--variant", "short", "td_steps"], "--variant takes a NAME, then KEY=VALUE items, got ['short', 'td_steps']"),
        (["--variant", "a", "--variant", "a", "td_steps=5"], "--variant 'a' is given twice"),
        (["--variant", "a", "n_timesteps=3000"], "--variant 'a' sets n_timesteps, the budget, which is common to all"),
        (["--variant", "a", "stop_at=0"], "stop_at of --variant 'a' must be a positive whole number, got 0"),
        (["--variant", "a", "stop_at=1500.5"], "stop_at of --variant 'a' must be a positive whole number, got 1500.5"),
        (["--set", "stop_at=-8"], "stop_at of --set must be a positive whole number, got -8"),
        (["--n-timesteps", "5000", "--variant", "a", "stop_at=6000"], "stop_at of --variant 'a' is 6000, beyond the budget"),
        (["--set", "n_timesteps=-1"], "n_timesteps of --set must be a positive whole number, got -1"),
    ],
)
def test_cartpole_benchmark_rejects_bad_arguments_before_training(monkeypatch, capsys, argv, message):
    benchmark = load_benchmark("cartpole")
    monkeypatch.setattr(benchmark, "run", lambda *args: pytest.fail("trained despite a bad argument"))
    assert_main_refuses(benchmark, argv, message, monkeypatch, capsys)


def test_cartpole_benchmark_compares_variants_seed_by_seed(monkeypatch, capsys):
    """Each seed is trained once per variant, the variants taking turns; a variant's settings go on top of --set's, its
    stop_at stops it early while its learning-rate schedule still spans the whole budget."""
    benchmark = load_benchmark("cartpole")
    made, models = [], []

    class RecordingMuZero(MuZero):
        def __init__(self, policy, env, seed=None, **kwargs):
            made.append(dict(seed=seed, **kwargs))
            models.append(self)
            super().__init__(policy, env, seed=seed, **kwargs)

    monkeypatch.setattr(benchmark, "MuZero", RecordingMuZero)
    argv = ["--seeds", "2", "--n-timesteps", "16", "--set", "learning_starts=1000", "policy_kwargs=dict(net_arch=[8])",
            "--variant", "section",
            "--variant", "gumbel2", "search_algorithm=gumbel", "num_simulations=2", "stop_at=8"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["cartpole.py", *argv])
    benchmark.main()
    assert [(m["seed"], m.get("search_algorithm", "puct"), m["num_simulations"]) for m in made] == [
        (0, "puct", 50), (0, "gumbel", 2), (1, "puct", 50), (1, "gumbel", 2)
    ]  # fmt: skip
    assert all(m["learning_starts"] == 1000 and m["policy_kwargs"] == dict(net_arch=[8]) for m in made)
    assert not any("n_timesteps" in m or "stop_at" in m for m in made)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["env_steps"] for line in lines[:4]] == [16, 8, 16, 8]  # 8 envs: one vector step is 8 env steps
    assert [model.num_timesteps for model in models] == [16, 8, 16, 8]
    assert [model._total_timesteps for model in models] == [16, 16, 16, 16]  # the schedule spans the budget
    assert [(line["variant"], line.get("seed")) for line in lines] == [
        ("section", 0), ("gumbel2", 0), ("section", 1), ("gumbel2", 1), ("section", None), ("gumbel2", None)
    ]  # fmt: skip
    assert lines[-1]["settings"] == ["search_algorithm=gumbel", "num_simulations=2", "stop_at=8"]
    assert "median_wall_s" in lines[-1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env-steps", "0"], "--env-steps must be >= 1, got 0"),
        (["--actors", "2", "0"], "--actors must be >= 1, got 0"),
        (["--learning-starts", "-1"], "--learning-starts must be >= 0, got -1"),
    ],
)
def test_distributed_benchmark_rejects_bad_arguments_before_training(monkeypatch, capsys, argv, message):
    benchmark = load_benchmark("distributed")
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
    searches = [result for result in results if "ms_per_search" in result]  # bench_mcts: PUCT and Gumbel, then a ratio
    assert {(r["impl"], r["algorithm"], r["batch"]) for r in searches} >= {
        ("cpu-numba-1t", "puct", 8),
        ("cpu-numba-1t", "gumbel", 8),
    }
    assert all(r["ms_per_search"] > 0 for r in searches)
    by_kind = {result.get("impl", result.get("bench", result.get("device"))): result for result in results}
    assert "skipped" in by_kind.get("mctx", {}) or any(kind.startswith("mctx-jax") for kind in by_kind)
    assert by_kind["cpu"]["tree_overhead"] is not None  # bench_search_overhead's line
    assert by_kind["training"]["env_steps_per_s"] > 0 and by_kind["training"]["gradient_steps_per_s"] > 0
    assert "skipped" in (tmp_path / "out" / "tests.log").read_text()  # the gpu tests ran, skipped without a GPU
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(
        [f"{name}.log" for name in ("machine", "tests", "bench_mcts", "bench_mctx", "search_overhead", "training")]
        + ["summary.jsonl", "results.jsonl"]
    )  # at most 8 files, which the GPU machine's tool brings back


TINY_MUZERO = [
    "num_simulations=2",
    "learning_starts=8",
    "batch_size=4",
    "policy_kwargs=dict(encoder='strided', channels=4, num_blocks=0)",
]


def test_atari_benchmark_trains_evaluates_whole_games_and_plots(tmp_path):
    benchmark = load_benchmark("atari")
    out = tmp_path / "runs"
    common = ["--steps", "32", "--eval-every", "16", "--eval-episodes", "2", "--eval-max-frames", "400", "--threads", "1"]
    benchmark.main(["--algo", "muzero", *common, "--out", str(out), "--seed", "3", "--save", "--set", *TINY_MUZERO])
    lines = [json.loads(line) for line in (out / "muzero_BreakoutNoFrameskip-v4_3.jsonl").read_text().splitlines()]
    assert [line["env_steps"] for line in lines] == [16, 32]
    log = (out / "muzero_BreakoutNoFrameskip-v4_3.log" / "progress.csv").read_text().splitlines()
    assert "search/policy_target_entropy" in log[0].split(",") and len(log) > 1
    saved = MuZero.load(out / "muzero_BreakoutNoFrameskip-v4_3.zip", device="cpu")
    assert saved.num_timesteps == 32
    for line in lines:
        assert len(line["scores"]) == 2 and line["score_mean"] == pytest.approx(np.mean(line["scores"]), abs=0.01)
        assert line["train_s"] <= line["wall_s"] and line["env_steps_per_s"] > 0
    benchmark.main(["--plot", str(tmp_path / "plot.png"), str(out)])
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_atari_benchmark_scales_dqn_learning_starts_to_the_budget():
    benchmark = load_benchmark("atari")
    said = []
    model = benchmark.build_sb3("dqn", "BreakoutNoFrameskip-v4", 100_000, 0, said.append)
    zoo = benchmark.zoo_section("dqn")
    assert zoo["learning_starts"] == 100_000 and zoo["n_timesteps"] == 1e7  # rl-zoo3's: 1% of the budget
    assert model.learning_starts == 1_000 and "learning_starts 100,000 of rl-zoo3's 10,000,000 steps -> 1,000" in said[0]
    assert model.exploration_fraction == zoo["exploration_fraction"] and model.batch_size == zoo["batch_size"]
    model.env.close()


@pytest.mark.parametrize("fire", [True, False])
def test_atari_benchmark_evaluation_presses_fire_after_a_lost_life(fire):
    """A NOOP player: with the wrapper the games go on after each lost life and end; without it they wait."""
    benchmark = load_benchmark("atari")
    benchmark.register_atari_ids()
    env = gym.make("BreakoutNoFrameskip-v4", max_episode_steps=10_000)
    env = benchmark.AtariWrapper(env, terminal_on_life_loss=False, clip_reward=False)
    env = benchmark.FireAfterLifeLoss(env) if fire else env
    env.reset(seed=0)
    steps, terminated, truncated = 0, False, False
    while steps < 1000 and not (terminated or truncated):
        _, _, terminated, truncated, _ = env.step(0)
        steps += 1
    lives = env.unwrapped.ale.lives()
    assert (terminated and lives == 0) if fire else (not (terminated or truncated) and lives == 4)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["--repeats", "0"], "--repeats must be >= 1, got 0"),
        (["--set", "td_steps"], "--set takes KEY=VALUE items, got ['td_steps']"),
    ],
)
def test_reanalyse_benchmark_rejects_bad_arguments_before_building_a_model(monkeypatch, capsys, argv, message):
    benchmark = load_benchmark("bench_reanalyse")
    monkeypatch.setattr(benchmark, "build", lambda *args: pytest.fail("built a model despite a bad argument"))
    assert_main_refuses(benchmark, argv, message, monkeypatch, capsys)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env-steps", "100"], "--env-steps must be >= 500, got 100"),
        (["--checkout", "before"], "--checkout takes NAME=PATH with an existing folder, got 'before'"),
        (["--checkout", "before=/no/such/folder"], "--checkout takes NAME=PATH with an existing folder"),
    ],
)
def test_training_pace_rejects_bad_arguments_before_training(monkeypatch, capsys, argv, message):
    benchmark = load_benchmark("training_pace")
    monkeypatch.setattr(benchmark, "measure", lambda *args: pytest.fail("trained despite a bad argument"))
    monkeypatch.setattr(benchmark.subprocess, "run", lambda *args, **kwargs: pytest.fail("ran a checkout"))
    assert_main_refuses(benchmark, argv, message, monkeypatch, capsys)

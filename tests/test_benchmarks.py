"""Command-line checks of the benchmark scripts: bad arguments stop with a usage error before any training."""

import importlib.util
import sys
from pathlib import Path

import pytest

CARTPOLE_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cartpole.py"


def load_cartpole_benchmark():
    spec = importlib.util.spec_from_file_location("cartpole_benchmark", CARTPOLE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    benchmark = load_cartpole_benchmark()
    monkeypatch.setattr(benchmark, "run", lambda *args: pytest.fail("trained despite a bad argument"))
    monkeypatch.setattr(sys, "argv", ["cartpole.py", *argv])
    with pytest.raises(SystemExit) as stopped:
        benchmark.main()
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err

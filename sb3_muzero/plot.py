"""python -m sb3_muzero.plot FOLDER...: learning curves of MuZero runs, to a PNG.

    python -m sb3_muzero.plot muzero_CartPole-v1_logs                  # a run of python -m sb3_muzero
    python -m sb3_muzero.plot logs/ -o curves.png                      # every run in rl-zoo3's logs/ folder

A run is a folder that holds SB3 Monitor files (*monitor.csv: every training episode, as rl-zoo3 and
python -m sb3_muzero write them) or an evaluations.npz (SB3's EvalCallback: the evaluations during training); the
folders given and every folder below them are searched. Draws one line per run in two panels: the training
episodes' return (the mean of the last --window episodes) and the evaluations (mean, and the band of one standard
deviation), both against env steps (the summed lengths of the finished episodes, as SB3's results_plotter counts
them, for the training curve). Needs matplotlib (pip install torch==2.13.0 -e ".[plots]").

rl-zoo3's own plot scripts also read MuZero's logs/ folder as they read any algorithm's (python -m
rl_zoo3.plots.plot_train -a muzero -e CartPole-v1 -f logs/, and all_plots); they need seaborn and scipy, and show
their figures in a window rather than writing a file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NamedTuple, Optional

import numpy as np

from sb3_muzero.common.plotting import pyplot, save_figure

EVALUATIONS_FILE = "evaluations.npz"


class Curve(NamedTuple):
    """One curve of a run: x [n] in env steps, y [n], and the standard deviation [n] (evaluations) or None."""

    x: np.ndarray
    y: np.ndarray
    spread: Optional[np.ndarray] = None


def find_runs(folders: list[Path]) -> list[Path]:
    """The run folders at or below ``folders`` (sorted), each holding Monitor files or an ``evaluations.npz``."""
    runs = set()
    for folder in folders:
        for path in [*Path(folder).rglob("*monitor.csv"), *Path(folder).rglob(EVALUATIONS_FILE)]:
            runs.add(path.parent)
    return sorted(runs)


def training_curve(run: Path, window: int) -> Optional[Curve]:
    """The mean return of the last ``window`` training episodes (fewer at the start) after each episode, against the
    summed lengths of the episodes finished so far (in the order they finished); None without Monitor files."""
    if not list(run.glob("*monitor.csv")):
        return None
    from stable_baselines3.common.monitor import load_results

    episodes = load_results(str(run))  # every Monitor file of the folder, sorted by finishing time
    if episodes.empty:
        return None
    returns = episodes["r"].to_numpy(dtype=np.float64)
    cumulative = np.cumsum(returns)
    starts = np.maximum(np.arange(len(returns)) - window + 1, 0)
    sums = cumulative - np.where(starts > 0, cumulative[starts - 1], 0.0)
    return Curve(np.cumsum(episodes["l"].to_numpy()), sums / (np.arange(len(returns)) - starts + 1))


def evaluation_curve(run: Path) -> Optional[Curve]:
    """The mean and standard deviation of each evaluation's episode returns against its env step; None without
    ``evaluations.npz``."""
    path = run / EVALUATIONS_FILE
    if not path.is_file():
        return None
    with np.load(path) as evaluations:
        results = np.asarray(evaluations["results"], dtype=np.float64).reshape(len(evaluations["timesteps"]), -1)
        return Curve(np.asarray(evaluations["timesteps"]), results.mean(axis=1), results.std(axis=1))


def run_label(run: Path, folders: list[Path]) -> str:
    """The run's path below the folder given that holds it (the folder's own name for a folder given)."""
    for folder in folders:
        if run == Path(folder):
            return Path(folder).resolve().name
        if Path(folder) in run.parents:
            return run.relative_to(folder).as_posix()
    return run.as_posix()


def curves_figure(folders: list[Path], window: int) -> Any:
    """Training and evaluation curves of every run found; each line is labelled with its run."""
    plt = pyplot()
    runs = find_runs(folders)
    figure, (training_axes, evaluation_axes) = plt.subplots(1, 2, figsize=(13, 4.8))
    for index, run in enumerate(runs):
        color, label = f"C{index % 10}", run_label(run, folders)
        training = training_curve(run, window)
        if training is not None:
            training_axes.plot(training.x, training.y, color=color, label=label)
        evaluation = evaluation_curve(run)
        if evaluation is not None:
            evaluation_axes.plot(evaluation.x, evaluation.y, "o-", color=color, markersize=3, label=label)
            evaluation_axes.fill_between(evaluation.x, evaluation.y - evaluation.spread, evaluation.y + evaluation.spread,
                                         color=color, alpha=0.15)  # fmt: skip
    training_axes.set_title(f"training episodes (mean return of the last {window})")
    evaluation_axes.set_title("evaluations (mean return +/- std)")
    for axes in (training_axes, evaluation_axes):
        axes.set_xlabel("env steps")
        axes.set_ylabel("return")
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    return figure


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sb3_muzero.plot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("folders", nargs="+", type=Path, help="run folders, or folders holding runs (rl-zoo3's logs/)")
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("learning_curves.png"), help="the PNG (default: %(default)s)"
    )
    parser.add_argument("--window", type=int, default=20, help="training episodes per mean (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error(f"--window must be >= 1, got {args.window}")
    missing = [str(folder) for folder in args.folders if not folder.is_dir()]
    if missing:
        parser.error(f"no such folder: {', '.join(missing)}")
    runs = find_runs(args.folders)
    if not runs:
        parser.error(f"no run found in {', '.join(map(str, args.folders))}: no *monitor.csv or {EVALUATIONS_FILE} there")
    print(f"{len(runs)} run(s): {', '.join(run_label(run, args.folders) for run in runs)}")
    print(f"  {save_figure(curves_figure(args.folders, args.window), args.output)}")


if __name__ == "__main__":
    main(sys.argv[1:])

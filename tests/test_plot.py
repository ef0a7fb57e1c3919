"""python -m sb3_muzero.plot: the curves it draws are the runs' episodes and evaluations, found in both layouts."""

import subprocess
import sys

import numpy as np
from stable_baselines3.common.monitor import ResultsWriter

from sb3_muzero.plot import curves_figure, find_runs

WINDOW = 3


def write_run(folder, episodes: list[tuple[float, int, float]], evaluations: dict, monitor_name: str = "monitor.csv"):
    """A run folder: Monitor rows (return, length, finishing time), and an evaluations.npz of ``evaluations``
    (env step -> episode returns)."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = ResultsWriter(str(folder / monitor_name), header={"t_start": 0.0, "env_id": "CartPole-v1"})
    for episode_return, length, time in episodes:
        writer.write_row({"r": episode_return, "l": length, "t": time})
    writer.close()
    if evaluations:
        np.savez(folder / "evaluations.npz", timesteps=list(evaluations), results=list(evaluations.values()),
                 ep_lengths=list(evaluations.values()))  # fmt: skip


def lines_by_label(axes) -> dict:
    return {line.get_label(): (np.asarray(line.get_xdata()), np.asarray(line.get_ydata())) for line in axes.lines}


def test_curves_are_the_runs_episode_means_and_evaluations_for_both_layouts(tmp_path):
    zoo_run = tmp_path / "logs" / "muzero" / "CartPole-v1_1"  # rl-zoo3: one Monitor file per env
    write_run(zoo_run, [(10.0, 10, 0.5), (30.0, 30, 2.0), (20.0, 20, 3.0)], {100: [9.0, 11.0], 200: [50.0, 70.0]},
              "0.monitor.csv")  # fmt: skip
    write_run(zoo_run, [(40.0, 40, 1.0)], {}, "1.monitor.csv")
    main_run = tmp_path / "muzero_CartPole-v1_logs"  # python -m sb3_muzero: one monitor.csv
    write_run(main_run, [(5.0, 5, 1.0), (15.0, 15, 2.0)], {500: [100.0, 200.0, 300.0]})
    folders = [tmp_path / "logs", main_run]
    assert find_runs(folders) == sorted([zoo_run, main_run])

    training, evaluation = curves_figure(folders, WINDOW).axes
    curves = lines_by_label(training)
    ordered = [10.0, 40.0, 30.0, 20.0]  # both files' rows, in finishing order
    means = [np.mean(ordered[max(0, i - WINDOW + 1) : i + 1]) for i in range(len(ordered))]
    np.testing.assert_allclose(curves["muzero/CartPole-v1_1"][1], means)
    np.testing.assert_array_equal(curves["muzero/CartPole-v1_1"][0], np.cumsum([10, 40, 30, 20]))
    np.testing.assert_allclose(curves["muzero_CartPole-v1_logs"][1], [5.0, 10.0])
    evaluations = lines_by_label(evaluation)
    np.testing.assert_array_equal(evaluations["muzero/CartPole-v1_1"][0], [100, 200])
    np.testing.assert_allclose(evaluations["muzero/CartPole-v1_1"][1], [10.0, 60.0])
    np.testing.assert_allclose(evaluations["muzero_CartPole-v1_logs"][1], [200.0])
    band, _ = evaluation.collections  # mean +/- std of the first run: 10 +/- 1, 60 +/- 10
    band_y = band.get_paths()[0].vertices[:, 1]
    assert (band_y.min(), band_y.max()) == (9.0, 70.0)


def test_the_command_writes_the_png_and_refuses_folders_without_runs(tmp_path):
    write_run(tmp_path / "run", [(5.0, 5, 1.0), (15.0, 15, 2.0)], {500: [100.0]})
    command = [sys.executable, "-m", "sb3_muzero.plot", str(tmp_path / "run"), "-o", str(tmp_path / "curves.png")]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "empty").mkdir()
    empty = subprocess.run([sys.executable, "-m", "sb3_muzero.plot", str(tmp_path / "empty")], capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert empty.returncode == 2 and "no run found in" in empty.stderr

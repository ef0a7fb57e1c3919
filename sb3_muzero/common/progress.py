"""What a long run shows while it trains: steady progress lines, and the episodes it finished in a Monitor file.

:class:`ProgressLines` prints, where SB3's progress bar cannot be shown (output to a file or a pipe), one line
after the first env step and then one every ``interval`` seconds: env steps, env steps per second since the
previous line, and the returns of the last episodes. :class:`EpisodeLog` writes every finished episode (the
``episode`` info that SB3's ``Monitor`` and :func:`sb3_muzero.make_atari_vec_env` give) to a ``monitor.csv`` in
SB3's Monitor format, which ``stable_baselines3.common.monitor.load_results``, rl-zoo3's plot scripts and
``python -m sb3_muzero.plot`` read.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional, TextIO

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import ResultsWriter

DEFAULT_INTERVAL_S = 10.0
SHOWN_EPISODES = 5  # returns of the last episodes a progress line shows


class ProgressLines(BaseCallback):
    """Print a progress line after the first env step, then every ``interval_s`` seconds of training.

    A line reads ``  1,234 env steps   45.6 env steps/s   27 s   last episodes: 12 30 9 (mean of 100: 21.5)``;
    the rate is taken since the previous line.
    """

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S, file: Optional[TextIO] = None,
                 clock: Callable[[], float] = time.perf_counter):  # fmt: skip
        super().__init__()
        self.interval_s, self.file, self.clock = interval_s, file, clock
        self.start = self.last_time = 0.0
        self.last_steps = 0
        self.lines = 0

    def _on_training_start(self) -> None:
        self.start = self.last_time = self.clock()
        self.last_steps = self.num_timesteps

    def _on_step(self) -> bool:
        now = self.clock()
        if self.lines == 0 or now - self.last_time >= self.interval_s:
            self._print_line(now)
        return True

    def _print_line(self, now: float) -> None:
        rate = (self.num_timesteps - self.last_steps) / max(now - self.last_time, 1e-9)
        returns = [info["r"] for info in self.model.ep_info_buffer]
        episodes = "no episode finished yet"
        if returns:
            last = " ".join(f"{value:g}" for value in returns[-SHOWN_EPISODES:])
            episodes = f"last episodes: {last} (mean of {len(returns)}: {sum(returns) / len(returns):.1f})"
        print(f"  {self.num_timesteps:>9,} env steps {rate:8.1f} env steps/s {now - self.start:7.0f} s   {episodes}",
              file=self.file, flush=True)  # fmt: skip
        self.last_time, self.last_steps = now, self.num_timesteps
        self.lines += 1


class EpisodeLog(BaseCallback):
    """Append every finished training episode to ``folder/monitor.csv`` (SB3's Monitor format: ``r``, ``l``, ``t``
    with ``t`` the seconds since training started), as episodes end in any of the envs."""

    def __init__(self, folder: Path, env_id: str, clock: Callable[[], float] = time.time):
        super().__init__()
        self.folder, self.env_id, self.clock = Path(folder), env_id, clock
        self.writer: Optional[ResultsWriter] = None
        self.start = 0.0

    def _on_training_start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.start = self.clock()
        self.writer = ResultsWriter(str(self.folder / "monitor.csv"), header={"t_start": self.start, "env_id": self.env_id})

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            episode = info.get("episode")
            if episode is not None:
                self.writer.write_row({"r": episode["r"], "l": episode["l"], "t": round(self.clock() - self.start, 6)})
        return True

    def _on_training_end(self) -> None:
        if self.writer is not None:
            self.writer.close()

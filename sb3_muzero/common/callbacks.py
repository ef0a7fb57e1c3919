"""Checkpoints a run can be resumed from exactly, and the lookup of the newest one."""

import os
import pickle
import re
from typing import NamedTuple, Optional

from stable_baselines3.common import callbacks as sb3_callbacks

from sb3_muzero.common.env_checks import check_env_can_be_saved
from sb3_muzero.common.files import atomic_write
from sb3_muzero.common.numbers import is_int

REPLAY_SUFFIX = "npz"


class CheckpointCallback(sb3_callbacks.CheckpointCallback):
    """Save the model and its replay buffer every ``save_freq`` calls (vector env steps), between two steps.

    SB3's ``CheckpointCallback`` saves from ``on_step``: for MuZero, after the step was stored (MuZero stores each
    step before the callbacks see it), but before the gradient steps that follow it, and the replay after the model.
    This one, with SB3's arguments and file names, waits for the next point between two steps (the start
    of the next rollout, after the last step was stored and trained on, or the end of training) and
    saves there, so that ``MuZero.load`` + ``load_replay_buffer`` + ``learn(rest, reset_num_timesteps=False)``
    goes on exactly. The replay buffer (``{name_prefix}_replay_buffer_{steps}_steps.npz``) is written
    before the model (``{name_prefix}_{steps}_steps.zip``): a model checkpoint on disk has its buffer.
    Every file is written to a temporary file and renamed into place. Pass it to ``learn`` (alone or in a list), not
    inside an ``EveryNTimesteps``, which does not forward the rollout events it saves on.

    :param save_freq: save every ``save_freq`` calls of the callback (one call per vector env step)
    :param save_path: folder of the checkpoints
    :param name_prefix: common prefix of the checkpoint files
    :param save_replay_buffer: save the replay buffer too (default: yes, a MuZero run needs it to resume)
    :param save_vecnormalize: save the ``VecNormalize`` statistics too
    :param save_env: pickle the envs into the model file, so that ``MuZero.load(path, allow_unsafe_pickle=True)``
        continues them where they were (needs envs that pickle, e.g. a ``DummyVecEnv`` of Python envs, no
        ``VecNormalize`` and none of SB3's ``VecEnvWrapper``; checked when training starts; ``make_atari_vec_env``'s
        envs are saved as their settings and start new games when loaded)
    :param keep_last: keep only the newest ``keep_last`` checkpoints (default: keep all)
    :param verbose: 2 prints where each checkpoint goes
    """

    def __init__(
        self,
        save_freq: int,
        save_path: str,
        name_prefix: str = "rl_model",
        save_replay_buffer: bool = True,
        save_vecnormalize: bool = False,
        save_env: bool = False,
        keep_last: Optional[int] = None,
        verbose: int = 0,
    ):
        if not is_int(save_freq) or save_freq < 1:
            raise ValueError(f"save_freq must be an integer >= 1, got {save_freq!r}")
        if keep_last is not None and (not is_int(keep_last) or keep_last < 1):
            raise ValueError(f"keep_last must be None or an integer >= 1, got {keep_last!r}")
        super().__init__(save_freq, save_path, name_prefix, save_replay_buffer, save_vecnormalize, verbose)
        self.save_env = save_env
        self.keep_last = keep_last
        self._save_due = False
        self._inside_rollout = False

    def _init_callback(self) -> None:
        super()._init_callback()
        if self.save_env:
            check_env_can_be_saved(self.model.get_env(), try_pickling=True)

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            self._save_due = True
        return True

    def _on_rollout_start(self) -> None:
        self._inside_rollout = True
        if self._save_due:
            self._save()

    def _on_rollout_end(self) -> None:
        self._inside_rollout = False

    def _on_training_end(self) -> None:
        # A run stopped by a callback ends inside a rollout, before the gradient steps of its last steps: the last
        # checkpoint stands.
        if self._save_due and not self._inside_rollout:
            self._save()

    def _save(self) -> None:
        self._save_due = False
        self.num_timesteps = self.model.num_timesteps
        replay_buffer = getattr(self.model, "replay_buffer", None)
        if self.save_replay_buffer and replay_buffer is not None:
            path = self._checkpoint_path("replay_buffer_", extension=REPLAY_SUFFIX)
            self._report("replay buffer", path)
            self.model.save_replay_buffer(path)  # type: ignore[attr-defined]
        vec_normalize = self.model.get_vec_normalize_env()
        if self.save_vecnormalize and vec_normalize is not None:
            path = self._checkpoint_path("vecnormalize_", extension="pkl")
            self._report("VecNormalize", path)
            with atomic_write(path) as file:
                pickle.dump(vec_normalize, file)
        path = self._checkpoint_path(extension="zip")
        self._report("model", path)
        self.model.save(path, include=["env"] if self.save_env else None)
        if self.keep_last is not None:
            for old in find_checkpoints(self.save_path, self.name_prefix)[: -self.keep_last]:
                for path in old.paths():
                    os.remove(path)

    def _report(self, what: str, path: str) -> None:
        if self.verbose >= 2:
            print(f"Saving {what} checkpoint to {path}")


class Checkpoint(NamedTuple):
    """The files of one checkpoint of :class:`CheckpointCallback` (``None`` where that part was not saved)."""

    num_timesteps: int
    model_path: str
    replay_buffer_path: Optional[str]
    vecnormalize_path: Optional[str]

    def paths(self) -> list[str]:
        """Its files, the model first (removed in this order, a checkpoint never looks complete without its buffer)."""
        return [path for path in (self.model_path, self.replay_buffer_path, self.vecnormalize_path) if path is not None]


def find_checkpoints(save_path: str, name_prefix: str = "rl_model") -> list[Checkpoint]:
    """The complete checkpoints :class:`CheckpointCallback` left in ``save_path``, oldest first."""
    pattern = re.compile(rf"{re.escape(name_prefix)}_(\d+)_steps\.zip")
    names = os.listdir(save_path) if os.path.isdir(save_path) else []
    steps = sorted(int(match.group(1)) for match in map(pattern.fullmatch, names) if match)

    def part(kind: str, step: int, extension: str) -> Optional[str]:
        path = os.path.join(save_path, f"{name_prefix}_{kind}{step}_steps.{extension}")
        return path if os.path.isfile(path) else None

    return [
        Checkpoint(
            step, str(part("", step, "zip")), part("replay_buffer_", step, REPLAY_SUFFIX), part("vecnormalize_", step, "pkl")
        )
        for step in steps
    ]


def latest_checkpoint(save_path: str, name_prefix: str = "rl_model") -> Optional[Checkpoint]:
    """The newest complete checkpoint in ``save_path``, or ``None`` if there is none."""
    checkpoints = find_checkpoints(save_path, name_prefix)
    return checkpoints[-1] if checkpoints else None

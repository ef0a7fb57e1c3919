"""Saving and loading MuZero: SB3's files, never half-written, checked when read, and resumed exactly.

The model file is SB3's zip (``data``, ``policy.pth``, ``policy.optimizer.pth``, ``target_policy.pth``)
plus, inside ``data``, the states of every random generator the run draws from
(:mod:`sb3_muzero.common.generators`). The replay buffer is a ``.npz`` archive
(:mod:`sb3_muzero.replay.file_format`). Both are written to a temporary file and renamed into place
(:mod:`sb3_muzero.common.files`), and checked completely before anything of them is used, so a damaged
file raises an error naming it and leaves the model that reads it as it was.

Exact resumption
----------------
``MuZero.load`` builds the model with SB3's ``load``, whose ``_setup_model`` reseeds every generator from
``seed``; the saved generator states are put back afterwards, so they win. The counters (timesteps,
updates, episodes, the progress the learning-rate, temperature and beta schedules read, the fraction of a
gradient step pending), the last observations and the optimizer state are in SB3's file already. The envs
continue where they were in one of two ways:

- ``model.save(path, include=["env"])`` pickles the envs into the file (their state and their own
  generators; this needs envs that pickle, such as a ``DummyVecEnv`` of Python envs, and no
  ``VecNormalize``), and
  ``MuZero.load(path)`` without ``env`` continues with them: the way to resume in a new process;
- ``MuZero.load(path, env=env, force_reset=False)`` with the very env object the run was using, untouched
  since the save: the way to resume in the same process.

Then ``load_replay_buffer`` and ``learn(remaining_steps, reset_num_timesteps=False)`` go on bit for bit
as the run would have (on the CPU). Loaded with a new env (``force_reset=True``, SB3's default), the envs
start new episodes and everything else still continues.
"""

import copy
import json
import warnings
import zipfile
from collections.abc import Iterable
from typing import Any, Optional, TypeVar, Union

import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import json_to_data, load_from_zip_file
from stable_baselines3.common.type_aliases import GymEnv, TensorDict

from sb3_muzero.common.env_checks import check_env_can_be_saved, check_env_spaces
from sb3_muzero.common.files import PathOrFile, atomic_write, check_zip_archive, readable
from sb3_muzero.common.generators import capture_generator_states, generator_attributes, restore_generator_states
from sb3_muzero.replay import load_replay, save_replay

MODEL_MEMBERS = ("data", "policy.pth")
GENERATOR_STATES = "_generator_states"

SelfPersistence = TypeVar("SelfPersistence", bound="PersistenceMixin")


class PersistenceMixin(BaseAlgorithm):
    """The file methods of an SB3 algorithm, made atomic, checked and exactly resumable (see the module docstring).

    Placed before the SB3 base class: ``class MuZero(PersistenceMixin, OffPolicyAlgorithm)``.
    """

    replay_buffer: Any

    def save(self, path: PathOrFile, exclude: Optional[Iterable[str]] = None, include: Optional[Iterable[str]] = None) -> None:
        """SB3's ``save``, written to a temporary file renamed into place, with the generator states.

        ``include=["env"]`` also stores the envs, so that ``load`` without an env continues them exactly.
        """
        include = None if include is None else list(include)
        if include is not None and "env" in include:
            check_env_can_be_saved(self.env)
        setattr(self, GENERATOR_STATES, capture_generator_states(self))
        try:
            with atomic_write(path, "zip") as file:
                super().save(file, exclude=exclude, include=include)  # type: ignore[arg-type]
        finally:
            delattr(self, GENERATOR_STATES)

    def _excluded_save_params(self) -> list[str]:
        # The generators are saved as states, with the global ones (they are reseeded by ``load``).
        return [*super()._excluded_save_params(), *generator_attributes(self)]

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfPersistence],
        path: PathOrFile,
        env: Optional[GymEnv] = None,
        device: Union[th.device, str] = "auto",
        custom_objects: Optional[dict[str, Any]] = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs,
    ) -> SelfPersistence:
        """SB3's ``load``, after checking the whole file and the env's spaces; the saved generator states win over
        the reseeding ``load`` does.

        :raise CorruptFileError: the file is truncated or damaged
        :raise ValueError: ``env`` has other observation or action spaces than the model
        """
        check_zip_archive(path, "zip", MODEL_MEMBERS, "model")
        if env is not None:
            env = cls._wrap_env(env)
            check_env_spaces(env, *_saved_spaces(path, custom_objects))
        model = super().load(path, env=env, device=device, custom_objects=custom_objects,  # type: ignore[misc]
                             print_system_info=print_system_info, force_reset=force_reset, **kwargs)  # fmt: skip
        states = vars(model).pop(GENERATOR_STATES, None)
        if states is not None:
            restore_generator_states(model, states, env_continues=model._last_obs is not None)
        return model

    def set_parameters(self, load_path_or_dict: Union[PathOrFile, TensorDict], exact_match: bool = True,
                       device: Union[th.device, str] = "auto") -> None:  # fmt: skip
        """SB3's ``set_parameters``, all or nothing: a damaged file, a bad name or a mismatching state dict leaves every
        parameter (and the optimizer state) as it was."""
        if isinstance(load_path_or_dict, dict):
            params = load_path_or_dict
        else:
            check_zip_archive(load_path_or_dict, "zip", ("policy.pth",), "model")
            _, params, _ = load_from_zip_file(load_path_or_dict, device=device, load_data=False)
        backup = copy.deepcopy(self.get_parameters())
        try:
            super().set_parameters(params, exact_match=exact_match, device=device)
        except Exception:
            super().set_parameters(backup, exact_match=True, device=device)
            raise

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        """SB3's ``set_env``, refusing envs with other spaces with a message that says which is which."""
        env = self._wrap_env(env, self.verbose)
        check_env_spaces(env, self.observation_space, self.action_space)
        super().set_env(env, force_reset=force_reset)

    def save_replay_buffer(self, path: PathOrFile) -> None:
        """Write the replay buffer to ``path`` (``.npz`` added if it has no suffix) in one step; see
        :mod:`sb3_muzero.replay.file_format` for the format."""
        if self.replay_buffer is None:
            raise ValueError("This model has no replay buffer to save")
        save_replay(self.replay_buffer, path)

    def load_replay_buffer(self, path: PathOrFile, truncate_last_traj: bool = True) -> None:
        """Replace the replay buffer by the one saved at ``path``, once it has been read and checked completely.

        ``truncate_last_traj`` is for SB3's HER buffers and has no effect here.

        :raise CorruptFileError: the file is truncated or damaged
        :raise ValueError: the file is no MuZero replay buffer, or one of other observations or actions
        """
        buffer = load_replay(path, self.observation_space, self.action_space)
        if buffer.gamma != getattr(self, "gamma", buffer.gamma):
            warnings.warn(
                f"The loaded replay buffer computes its value targets with gamma={buffer.gamma}, this model has "
                f"gamma={self.gamma}; the buffer's is used"
            )
        self.replay_buffer = buffer


def _saved_spaces(path: PathOrFile, custom_objects: Optional[dict[str, Any]]) -> tuple[Optional[spaces.Space], ...]:
    """(observation space, action space) recorded in a model file, ``None`` for one that is not there."""
    names = ("observation_space", "action_space")
    with readable(path, "zip") as (file, _), zipfile.ZipFile(file) as archive:
        data = json.loads(archive.read("data").decode())
    saved = json_to_data(json.dumps({name: data[name] for name in names if name in data}), custom_objects)
    return tuple(saved.get(name) for name in names)

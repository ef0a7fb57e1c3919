"""Saving and loading MuZero: SB3's files, never half-written, checked when read, free of code, resumed exactly.

The model file is SB3's zip (``data``, ``policy.pth``, ``policy.optimizer.pth``, ``target_policy.pth``)
plus, inside ``data``, the states of every random generator the run draws from
(:mod:`sb3_muzero.common.generators`). The replay buffer is a ``.npz`` archive
(:mod:`sb3_muzero.replay.file_format`). Both are written to a temporary file and renamed into place
(:mod:`sb3_muzero.common.files`), and checked completely before anything of them is used, so a damaged
file raises an error naming it and leaves the model that reads it as it was.

No code from the file
---------------------
``data`` holds the attributes as plain JSON (:mod:`sb3_muzero.common.plain_data`), read back without
unpickling; the tensors are read with ``torch.load(weights_only=True)``. What has no plain form is pickled
(with a warning) and read only with ``load(..., allow_unsafe_pickle=True)``: envs saved with
``include=["env"]`` (but those of ``make_atari_vec_env``, saved as their settings), a function as learning
rate. Pickled entries of files of earlier versions (SB3's format) are read with the allowlist of
:mod:`sb3_muzero.common.legacy_pickle`.

Exact resumption
----------------
``MuZero.load`` builds the model as SB3's ``load`` does, whose ``_setup_model`` reseeds every generator from
``seed``; the saved generator states are put back afterwards, so they win. The counters (timesteps,
updates, episodes, the progress the learning-rate, temperature and beta schedules read, the fraction of a
gradient step pending), the last observations and the optimizer state are in SB3's file already. The envs
continue where they were in one of two ways:

- ``model.save(path, include=["env"])`` pickles the envs into the file (their state and their own
  generators; this needs envs that pickle, such as a ``DummyVecEnv`` of Python envs, no ``VecNormalize``
  and none of SB3's ``VecEnvWrapper``), and ``MuZero.load(path, allow_unsafe_pickle=True)`` without ``env``
  continues with them: the way to resume in a new process;
- ``MuZero.load(path, env=env, force_reset=False)`` with the very env object the run was using, untouched
  since the save: the way to resume in the same process.

Then ``load_replay_buffer`` and ``learn(remaining_steps, reset_num_timesteps=False)`` go on bit for bit
as the run would have (on the CPU). Loaded with a new env (``force_reset=True``, SB3's default), the envs
start new episodes and everything else still continues; so do envs that cannot be saved with their state
(``resume_limitation``: ``make_atari_vec_env``'s, whose emulators' states ale-py cannot save).
"""

import base64
import copy
import json
import pickle
import warnings
import zipfile
from collections.abc import Iterable
from typing import Any, ClassVar, Optional, TypeVar, Union

import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import load_from_zip_file, recursive_getattr, recursive_setattr, save_to_zip_file
from stable_baselines3.common.type_aliases import GymEnv, TensorDict
from stable_baselines3.common.utils import get_system_info
from stable_baselines3.common.vec_env import VecEnv

from sb3_muzero.common.env_checks import check_env_can_be_saved, check_env_spaces
from sb3_muzero.common.files import CorruptFileError, PathOrFile, atomic_write, check_zip_archive, readable
from sb3_muzero.common.generators import capture_generator_states, generator_attributes, restore_generator_states
from sb3_muzero.common.legacy_pickle import RefusedPickle, restricted_loads
from sb3_muzero.common.plain_data import (
    TAG,
    UNSAFE_HINT,
    UnreadablePickle,
    from_plain,
    pickled,
    plain_or_pickled,
    unsafe_loads,
)
from sb3_muzero.envs.atari import AtariVecEnv
from sb3_muzero.replay import load_replay, save_replay

MODEL_MEMBERS = ("data", "policy.pth")
GENERATOR_STATES = "_generator_states"
SPACES = ("observation_space", "action_space")
# Envs that describe themselves in plain data (``include=["env"]``), by the kind their description is tagged with.
PLAIN_ENVS: dict[str, type] = {AtariVecEnv.PLAIN_KIND: AtariVecEnv}

SelfPersistence = TypeVar("SelfPersistence", bound="PersistenceMixin")


class PersistenceMixin(BaseAlgorithm):
    """The file methods of an SB3 algorithm, made atomic, checked, free of pickles and exactly resumable (see the
    module docstring).

    Placed before the SB3 base class: ``class MuZero(PersistenceMixin, OffPolicyAlgorithm)``.
    """

    replay_buffer: Any
    # Settings whose default changed after files were saved without them: such files load with the value they trained
    # with (any other missing setting loads with its default).
    EARLIER_FILES_DEFAULTS: ClassVar[dict[str, Any]] = {}

    def save(self, path: PathOrFile, exclude: Optional[Iterable[str]] = None, include: Optional[Iterable[str]] = None) -> None:
        """SB3's ``save`` with the attributes as plain data, written to a temporary file renamed into place, with the
        generator states.

        ``include=["env"]`` also stores the envs, so that ``load`` without an env continues them exactly.
        """
        include = None if include is None else list(include)
        if include is not None and "env" in include:
            check_env_can_be_saved(self.env)
        setattr(self, GENERATOR_STATES, capture_generator_states(self))
        try:
            data, pytorch_variables = self._attributes_to_save(exclude, include)
            plain = {name: _plain_entry(name, value) for name, value in data.items()}
            params = self.get_parameters()
        finally:
            delattr(self, GENERATOR_STATES)
        with atomic_write(path, "zip") as file:
            save_to_zip_file(file, data=plain, params=params, pytorch_variables=pytorch_variables)  # type: ignore[arg-type]

    def _attributes_to_save(
        self, exclude: Optional[Iterable[str]], include: Optional[Iterable[str]]
    ) -> tuple[dict[str, Any], Optional[dict[str, Any]]]:
        """(attributes for ``data``, torch variables), chosen as SB3's ``save`` chooses them."""
        excluded = set(exclude or []).union(self._excluded_save_params()).difference(include or [])
        state_dicts, torch_variables = self._get_torch_save_params()
        excluded.update(name.split(".")[0] for name in state_dicts + torch_variables)
        data = {name: value for name, value in vars(self).items() if name not in excluded}
        variables = None if torch_variables is None else {name: recursive_getattr(self, name) for name in torch_variables}
        return data, variables

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
        allow_unsafe_pickle: bool = False,
        **kwargs,
    ) -> SelfPersistence:
        """SB3's ``load``, after checking the whole file, without running anything from it; the saved generator states
        win over the reseeding ``load`` does.

        :param allow_unsafe_pickle: also read what the file holds as a pickle (envs saved with ``include=["env"]``,
            functions, what earlier versions pickled beyond their allowlist): unpickling can run any code the file
            carries, so only for files you trust
        :raise CorruptFileError: the file is truncated or damaged
        :raise ValueError: ``env`` has other observation or action spaces than the model, or the file holds a pickle
            and ``allow_unsafe_pickle`` is False
        """
        if print_system_info:
            print("== CURRENT SYSTEM INFO ==")
            get_system_info()
        check_zip_archive(path, "zip", MODEL_MEMBERS, "model")
        data = read_model_data(path, custom_objects, allow_unsafe_pickle, with_env=env is None)
        _, params, pytorch_variables = load_from_zip_file(path, load_data=False, device=device,
                                                          print_system_info=print_system_info)  # fmt: skip
        model = cls._from_saved(data, env, device, force_reset, **kwargs)
        model.set_parameters(params, exact_match=True, device=device)
        for name, value in (pytorch_variables or {}).items():
            if value is not None:
                recursive_setattr(model, f"{name}.data", value.data)
        states = vars(model).pop(GENERATOR_STATES, None)
        if states is not None:
            restore_generator_states(model, states, env_continues=model._last_obs is not None)
        return model

    @classmethod
    def _from_saved(cls: type[SelfPersistence], data: dict[str, Any], env: Optional[GymEnv], device: Union[th.device, str],
                    force_reset: bool, **kwargs) -> SelfPersistence:  # fmt: skip
        """The model of a file's attributes (as SB3's ``load`` builds it), on ``env`` or the saved envs."""
        policy_kwargs = data.get("policy_kwargs")
        if isinstance(policy_kwargs, dict):
            policy_kwargs.pop("device", None)
        if "policy_kwargs" in kwargs and kwargs["policy_kwargs"] != data.get("policy_kwargs"):
            raise ValueError(
                f"The specified policy kwargs do not equal the stored policy kwargs. Stored kwargs: "
                f"{data.get('policy_kwargs')}, specified kwargs: {kwargs['policy_kwargs']}"
            )
        if env is not None:
            env = cls._wrap_env(env, data.get("verbose", 0))
            check_env_spaces(env, data["observation_space"], data["action_space"])
            if force_reset:
                data["_last_obs"] = None
            data["n_envs"] = env.num_envs
        else:
            env = data.get("env")
            limitation = getattr(type(env), "resume_limitation", None)
            if limitation is not None:
                warnings.warn(f"The saved {type(env).__name__} does not continue where it was: {limitation}")
                data["_last_obs"] = None
        for name, value in cls.EARLIER_FILES_DEFAULTS.items():
            data.setdefault(name, value)
        model = cls(policy=data["policy_class"], env=env, device=device, _init_setup_model=False)  # type: ignore[call-arg]
        vars(model).update(data)
        vars(model).update(kwargs)
        model._setup_model()
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


def read_model_data(
    path: PathOrFile,
    custom_objects: Optional[dict[str, Any]] = None,
    allow_unsafe_pickle: bool = False,
    with_env: bool = True,
) -> dict[str, Any]:
    """The attributes saved in a model file's ``data``, rebuilt from their plain descriptions (``custom_objects``
    replace the entries they name; ``with_env=False`` leaves the saved envs out).

    :raise CorruptFileError: an entry is malformed, or ``observation_space`` or ``action_space`` is missing
    :raise ValueError: an entry is a pickle and ``allow_unsafe_pickle`` is False
    """
    with readable(path, "zip") as (file, name), zipfile.ZipFile(file) as archive:
        try:
            entries = json.loads(archive.read("data").decode())
        except (UnicodeDecodeError, ValueError) as error:
            raise CorruptFileError(f"Cannot read model '{name}': its data is not JSON ({error})") from error
    if not isinstance(entries, dict):
        raise CorruptFileError(f"Cannot read model '{name}': its data is not a JSON object")
    missing = [key for key in SPACES if key not in entries]
    if missing:
        raise CorruptFileError(f"Cannot read model '{name}': its data lacks {missing}")
    data: dict[str, Any] = {}
    for key, entry in entries.items():
        if custom_objects is not None and key in custom_objects:
            data[key] = custom_objects[key]
        elif key != "env" or with_env:
            try:
                data[key] = _read_entry(key, entry, allow_unsafe_pickle)
            except CorruptFileError as error:
                raise CorruptFileError(f"Cannot read model '{name}': its entry {key!r} is malformed: {error}") from error
            except ValueError as error:
                raise ValueError(f"Cannot load model '{name}': its entry {key!r}: {error}") from error
            except UnreadablePickle as error:
                warnings.warn(f"Could not deserialize object {key}. Consider using `custom_objects` argument to replace "
                              f"this object.\nException: {error}")  # fmt: skip
    return data


def _plain_entry(name: str, value: Any) -> Any:
    """The plain form of a saved attribute (the envs: see :func:`_plain_env`)."""
    if name == "env" and isinstance(value, VecEnv):
        return _plain_env(value)
    return plain_or_pickled(name, value)


def _plain_env(env: VecEnv) -> Any:
    """The envs as a description (envs that have one, e.g. ``make_atari_vec_env``'s) or a pickle."""
    for kind, env_class in PLAIN_ENVS.items():
        if type(env) is env_class:
            return {TAG: kind, **env.plain_description()}
    check_env_can_be_saved(env, try_pickling=True)
    return pickled(env)


def _read_entry(key: str, entry: Any, allow_unsafe_pickle: bool) -> Any:
    """One attribute from its entry: plain data, an env description, or a pickle of SB3's format."""
    if isinstance(entry, dict) and ":serialized:" in entry:
        return _read_sb3_pickle(key, entry, allow_unsafe_pickle)
    if isinstance(entry, dict) and entry.get(TAG) in PLAIN_ENVS:
        return PLAIN_ENVS[entry[TAG]].from_plain_description(entry)
    return from_plain(entry, allow_unsafe_pickle)


def _read_sb3_pickle(key: str, entry: dict[str, Any], allow_unsafe_pickle: bool) -> Any:
    """An entry SB3 pickled (files of earlier versions): read with the allowlist of
    :mod:`sb3_muzero.common.legacy_pickle`, or unpickled if that refuses it and ``allow_unsafe_pickle``."""
    try:
        serialized = base64.b64decode(str(entry[":serialized:"]).encode())
    except ValueError as error:
        raise CorruptFileError(f"its pickle is not base64 ({error})") from error
    try:
        return restricted_loads(serialized)
    except RefusedPickle as refused:
        if not allow_unsafe_pickle:
            hint = " Pass env=... to load the model on new envs;" if key == "env" else ""
            raise ValueError(
                f"it is a pickle ({entry.get(':type:', 'of unknown type')}, written by SB3 or an earlier sb3-muzero) "
                f"that holds {refused}, which loading does not build by default.{hint} custom_objects={{{key!r}: ...}} "
                f"replaces it; {UNSAFE_HINT}"
            ) from refused
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise CorruptFileError(f"its pickle is damaged ({type(error).__name__}: {error})") from error
    return unsafe_loads(serialized)

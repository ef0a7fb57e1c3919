"""Pickled entries of files written before plain data (SB3's format), read with an allowlist instead of running them.

SB3 stores what JSON cannot hold as a base64 cloudpickle (``{":type:": ..., ":serialized:": ...}`` in a model's
``data``; a policy file is a torch pickle of its constructor arguments). Unpickling such an entry can run any
code it carries. :func:`restricted_loads` reads these pickles with an unpickler that knows a fixed list of
data types and calls nothing else, as ``torch.load(weights_only=True)`` does for tensors:

- numpy arrays, scalars, dtypes (no object dtypes) and random generators, torch tensors (their storage read
  with ``weights_only=True``), ``collections.deque`` and ``OrderedDict``;
- gymnasium's Box, Discrete, MultiDiscrete, MultiBinary, Dict and Tuple spaces, SB3's schedule classes,
  ``TrainFreq``, rl-zoo3's linear schedule;
- classes as values (``policy_class``, ``activation_fn``, ...): torch module and optimizer classes of modules
  already imported, never called by the pickle itself; SB3's ``_dummy_schedule`` of policy files.

Anything else (a function, a lambda, another class, ``os.system``) raises :class:`RefusedPickle` naming it.
"""

import collections
import functools
import io
import pickle
import sys
from typing import Any, Callable, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule, LinearSchedule

from sb3_muzero.common.plain_data import ZOO_LINEAR_SCHEDULE, find_safe_class


class RefusedPickle(pickle.UnpicklingError):
    """A pickle names something outside the allowlist of :mod:`sb3_muzero.common.legacy_pickle`."""


def _checked_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise RefusedPickle(f"an array of dtype {dtype} (Python objects)")
    return dtype


def _tensor_storage_from_bytes(data: bytes) -> Any:
    """``torch.storage._load_from_bytes``, with ``weights_only=True``."""
    return th.load(io.BytesIO(data), weights_only=True)


def _latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    """``_codecs.encode``, which pickles of protocol 2 (torch's) use for bytes, for the Latin-1 encoding only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise RefusedPickle(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _constant_zero(_: float) -> float:
    """The learning rate schedule of policy files (SB3's ``_dummy_schedule``)."""
    return 0.0


def _numpy_globals() -> dict[tuple[str, str], Callable]:
    from numpy.random import _pickle as random_pickle

    found: dict[tuple[str, str], Callable] = {("numpy", "dtype"): _checked_dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found[(module, "_reconstruct")] = _reconstruct
        found[(module, "scalar")] = _scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        found[(module, "_frombuffer")] = _frombuffer
    for name in ("__generator_ctor", "__bit_generator_ctor", "__randomstate_ctor"):
        if hasattr(random_pickle, name):
            found[("numpy.random._pickle", name)] = getattr(random_pickle, name)
    from numpy.random import bit_generator as bit_generator_module

    unpickle_seed_sequence = getattr(bit_generator_module, "__pyx_unpickle_SeedSequence", None)
    if unpickle_seed_sequence is not None:

        def seed_sequence(cls: Any, *state: Any) -> Any:
            if cls is not np.random.SeedSequence:
                raise RefusedPickle(f"a seed sequence of type {cls!r}")
            return unpickle_seed_sequence(cls, *state)

        found[("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence")] = seed_sequence
        found[("numpy.random.bit_generator", "SeedSequence")] = np.random.SeedSequence
    for bit_generator in (np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937, np.random.Philox, np.random.SFC64):
        found[(bit_generator.__module__, bit_generator.__name__)] = bit_generator
    return found


def _reconstruct(subtype: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise RefusedPickle(f"an array of type {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, _checked_dtype(dtype_code))


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """numpy's ``_frombuffer`` (arrays pickled with protocol 5), for arrays of numbers and bools."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(buffer, (bytes, bytearray)):
        raise RefusedPickle(f"an array of {dtype!r}")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order).copy()


def _scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise RefusedPickle(f"a numpy scalar of {dtype!r}")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


# Built by the pickle (called, or created and then given their state): data types only.
CONSTRUCTIBLE: tuple[type, ...] = (
    collections.OrderedDict,
    collections.deque,
    spaces.Box,
    spaces.Discrete,
    spaces.MultiDiscrete,
    spaces.MultiBinary,
    spaces.Dict,
    spaces.Tuple,
    ConstantSchedule,
    LinearSchedule,
    FloatSchedule,
    TrainFreq,
    TrainFrequencyUnit,
)
_FUNCTIONS: dict[tuple[str, str], Callable] = {
    ("torch._utils", "_rebuild_tensor_v2"): th._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): th._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): th._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _tensor_storage_from_bytes,
    ("_codecs", "encode"): _latin1_bytes,
    ("stable_baselines3.common.policies", "BaseModel._dummy_schedule"): _constant_zero,
}


class RestrictedUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """An unpickler that builds only the allowlisted data types of the module docstring and calls nothing else."""

    dispatch: ClassVar[dict] = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals()
        if (module, name) in allowed:
            return allowed[(module, name)]
        if (module, name) == ("numpy", "ndarray"):
            return _ClassValue(np.ndarray)  # the subtype _reconstruct is given, not called
        for cls in CONSTRUCTIBLE:
            if (cls.__module__, cls.__qualname__) == (module, name):
                return cls
        if (module, name) == ZOO_LINEAR_SCHEDULE:
            from rl_zoo3.utils import SimpleLinearSchedule

            return SimpleLinearSchedule
        try:
            return _ClassValue(find_safe_class(module, name))
        except ValueError as error:
            raise RefusedPickle(f"{module}.{name}") from error

    def load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        stack[-1] = _call(stack[-1], args)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(_new(cls, args))

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        if kwargs:
            raise RefusedPickle(f"{cls!r} built with keyword arguments")
        self.append(_new(cls, args))

    def load_build(self) -> None:
        instance = self.stack[-2]  # under its state
        if not isinstance(instance, (*CONSTRUCTIBLE, _zoo_linear_schedule(), np.ndarray, np.dtype, np.generic)) and not (
            _is_numpy_generator(instance)
        ):
            raise RefusedPickle(f"setting the state of {type(instance).__qualname__}")
        super().load_build()
        if isinstance(instance, np.dtype) and instance.hasobject:
            raise RefusedPickle(f"an array of dtype {instance} (Python objects)")

    def _refuse(self) -> None:
        raise RefusedPickle("an old pickle opcode (INST, OBJ or EXT)")

    def load(self) -> Any:
        value = super().load()
        return value.cls if isinstance(value, _ClassValue) else _unwrap(value)

    for opcode, method in (
        (pickle.REDUCE, load_reduce),
        (pickle.NEWOBJ, load_newobj),
        (pickle.NEWOBJ_EX, load_newobj_ex),
        (pickle.BUILD, load_build),
        (pickle.INST, _refuse),
        (pickle.OBJ, _refuse),
        (pickle.EXT1, _refuse),
        (pickle.EXT2, _refuse),
        (pickle.EXT4, _refuse),
    ):
        dispatch[opcode[0]] = method
    del opcode, method


class _ClassValue:
    """A class named by a pickle, usable as a value only (never called by the pickle)."""

    def __init__(self, cls: type):
        self.cls = cls


def _unwrap(value: Any) -> Any:
    """``value`` with the classes it holds as values put in place of their :class:`_ClassValue`."""
    if isinstance(value, _ClassValue):
        return value.cls
    if type(value) in (dict, collections.OrderedDict):
        for key, item in value.items():
            value[key] = _unwrap(item)
    elif type(value) is list:
        value[:] = [_unwrap(item) for item in value]
    elif type(value) is tuple:
        return tuple(_unwrap(item) for item in value)
    return value


@functools.cache
def _allowed_globals() -> dict[tuple[str, str], Callable]:
    return {**_numpy_globals(), **_FUNCTIONS}


def _zoo_linear_schedule() -> tuple[type, ...]:
    """rl-zoo3's linear schedule class, if rl-zoo3 is imported."""
    utils = sys.modules.get(ZOO_LINEAR_SCHEDULE[0])
    return (utils.SimpleLinearSchedule,) if utils is not None and hasattr(utils, "SimpleLinearSchedule") else ()


def _is_numpy_generator(value: Any) -> bool:
    return isinstance(value, (np.random.Generator, np.random.BitGenerator, np.random.RandomState, np.random.SeedSequence))


def _call(function: Any, args: Any) -> Any:
    if not isinstance(args, tuple):
        raise RefusedPickle(f"a call of {function!r} with {type(args).__name__} arguments")
    allowed = (*_allowed_globals().values(), *CONSTRUCTIBLE, *_zoo_linear_schedule())
    if any(function is candidate for candidate in allowed):
        return function(*_unwrap(args))
    raise RefusedPickle(f"a call of {getattr(function, 'cls', function)!r}")


def _new(cls: Any, args: Any) -> Any:
    if not any(cls is candidate for candidate in (*CONSTRUCTIBLE, *_zoo_linear_schedule())):
        raise RefusedPickle(f"creating a {getattr(cls, 'cls', cls)!r}")
    return cls.__new__(cls, *_unwrap(args))


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`.

    :raise RefusedPickle: it names something outside the allowlist (with what that is)
    """
    return RestrictedUnpickler(io.BytesIO(data)).load()


class restricted_pickle_module:
    """``pickle_module`` for ``torch.load`` that reads policy files of earlier versions with the allowlist."""

    Unpickler = RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError
    __name__ = "sb3_muzero.common.legacy_pickle.restricted_pickle_module"

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()

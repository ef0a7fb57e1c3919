"""Saved values as plain JSON, rebuilt without running anything from the file.

A model file's ``data`` member (and a policy file's constructor arguments) hold the saved attributes. Values
that JSON holds exactly (None, bools, ints, floats, strings, lists, dicts with string keys) are written as they
are; every other supported value is a JSON object whose key ``":plain:"`` names its kind:

==============  ===================================================================================================
kind            fields
==============  ===================================================================================================
``tuple``       ``items``
``dict``        ``items``: ``[key, value]`` pairs (a dict with keys other than strings, or with a ``":plain:"`` key)
``ndarray``     ``dtype``, ``shape``, ``data`` (the bytes in C order, base64); numbers and bools only
``tensor``      the same, for a torch tensor (rebuilt on the CPU)
``deque``       ``items``, ``maxlen``
``space``       a gymnasium ``Box`` (``shape``, ``dtype``, ``low``, ``high``), ``Discrete`` (``n``, ``start``),
                ``MultiDiscrete`` (``nvec``, ``start``, ``dtype``), ``MultiBinary`` (``n``) or ``Dict`` (``spaces``)
``schedule``    SB3's ``ConstantSchedule`` (``value``), ``LinearSchedule`` (``start``, ``end``, ``end_fraction``),
                ``FloatSchedule`` (``of``), rl-zoo3's ``lin_<value>`` schedule (``initial_value``)
``train_freq``  SB3's ``TrainFreq``: ``frequency``, ``unit``
``class``       ``module``, ``name``: a torch module or optimizer class, found in a module already imported (a
                file never makes Python import a module, unless ``allow_unsafe_pickle``)
``pickle``      ``type``, ``data``: what has no plain form, pickled (cloudpickle); read only with
                ``allow_unsafe_pickle=True``, since unpickling can run any code
==============  ===================================================================================================

:func:`to_plain` raises :class:`NotPlain` for values without a plain form; :func:`pickled` writes those.
:func:`from_plain` rebuilds a value and raises :class:`~sb3_muzero.common.files.CorruptFileError` for a malformed
one, and ``ValueError`` for a pickle it may not read.
"""

import base64
import collections
import importlib
import math
import sys
import warnings
from typing import Any

import cloudpickle
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule, LinearSchedule

from sb3_muzero.common.files import CorruptFileError

TAG = ":plain:"
# Classes a file may name: only these kinds are ever built from a class named in a file.
SAFE_CLASS_BASES = (th.nn.Module, th.optim.Optimizer)
PLAIN_DTYPE_KINDS = "biufc"  # bools, integers, unsigned integers, floats, complex numbers
ZOO_LINEAR_SCHEDULE = ("rl_zoo3.utils", "SimpleLinearSchedule")
UNSAFE_HINT = (
    "allow_unsafe_pickle=True reads it, and can run any code the file carries: pass it only for files you trust " "(your own)"
)


class NotPlain(TypeError):
    """A value that has no plain form (:func:`to_plain`)."""


class UnreadablePickle(Exception):
    """A pickle that fails to unpickle (SB3 leaves such an entry out with a warning); the cause says why."""


# --- writing ---------------------------------------------------------------------------------------------------


def to_plain(value: Any) -> Any:
    """The JSON form of ``value``; :class:`NotPlain` if it (or a part of it) has none."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    if isinstance(value, tuple) and type(value) is tuple:
        return _tagged("tuple", items=[to_plain(item) for item in value])
    if isinstance(value, dict) and type(value) in (dict, collections.OrderedDict):
        if all(isinstance(key, str) for key in value) and TAG not in value:
            return {key: to_plain(item) for key, item in value.items()}
        return _tagged("dict", items=[[to_plain(key), to_plain(item)] for key, item in value.items()])
    if isinstance(value, (np.ndarray, np.generic)):
        return _tagged("ndarray", **_array_fields(np.asarray(value)))
    if isinstance(value, th.Tensor):
        return _tagged("tensor", **_array_fields(value.detach().cpu().numpy()))
    if isinstance(value, collections.deque):
        return _tagged("deque", items=[to_plain(item) for item in value], maxlen=value.maxlen)
    if isinstance(value, spaces.Space):
        return _tagged("space", **_space_fields(value))
    if isinstance(value, TrainFreq):
        return _tagged("train_freq", frequency=int(value.frequency), unit=TrainFrequencyUnit(value.unit).value)
    if isinstance(value, type):
        return _tagged("class", **_class_fields(value))
    return _tagged("schedule", **_schedule_fields(value))


def plain_or_pickled(name: str, value: Any) -> Any:
    """The plain form of the saved attribute ``name``; a pickle, with a warning, for a value that has none."""
    try:
        return to_plain(value)
    except NotPlain as reason:
        warnings.warn(
            f"The attribute {name!r} is {reason}, which has no plain form: it is pickled into the file, and loading "
            f"the file will need allow_unsafe_pickle=True (or custom_objects={{{name!r}: ...}} for a model). Numbers "
            "and SB3's schedule classes (ConstantSchedule, LinearSchedule) keep a file free of code.",
            stacklevel=4,
        )
        return pickled(value)


def pickled(value: Any) -> dict[str, Any]:
    """``value`` as a tagged cloudpickle (for what has no plain form; read only with ``allow_unsafe_pickle``)."""
    return _tagged("pickle", type=str(type(value)), data=base64.b64encode(cloudpickle.dumps(value)).decode())


def _tagged(kind: str, **fields: Any) -> dict[str, Any]:
    return {TAG: kind, **fields}


def _array_fields(array: np.ndarray) -> dict[str, Any]:
    if array.dtype.kind not in PLAIN_DTYPE_KINDS or array.dtype.names is not None:
        raise NotPlain(f"an array of dtype {array.dtype}")
    data = np.ascontiguousarray(array).tobytes()
    return dict(dtype=array.dtype.str, shape=list(array.shape), data=base64.b64encode(data).decode())


def _space_fields(space: spaces.Space) -> dict[str, Any]:
    if type(space) is spaces.Box:
        return dict(space="Box", shape=list(space.shape), dtype=np.dtype(space.dtype).str, low=to_plain(space.low),
                    high=to_plain(space.high))  # fmt: skip
    if type(space) is spaces.Discrete:
        return dict(space="Discrete", n=int(space.n), start=int(space.start))
    if type(space) is spaces.MultiDiscrete:
        return dict(space="MultiDiscrete", nvec=to_plain(space.nvec), start=to_plain(space.start),
                    dtype=np.dtype(space.dtype).str)  # fmt: skip
    if type(space) is spaces.MultiBinary:
        return dict(space="MultiBinary", n=to_plain(np.asarray(space.n).tolist()))
    if type(space) is spaces.Dict:
        return dict(space="Dict", spaces=[[key, to_plain(part)] for key, part in space.spaces.items()])
    raise NotPlain(f"a {type(space).__name__} space")


def _schedule_fields(schedule: Any) -> dict[str, Any]:
    if type(schedule) is FloatSchedule:
        return dict(schedule="float", of=to_plain(schedule.value_schedule))
    if type(schedule) is ConstantSchedule:
        return dict(schedule="constant", value=to_plain(schedule.val))
    if type(schedule) is LinearSchedule:
        return dict(schedule="linear", start=to_plain(schedule.start), end=to_plain(schedule.end),
                    end_fraction=to_plain(schedule.end_fraction))  # fmt: skip
    if (type(schedule).__module__, type(schedule).__qualname__) == ZOO_LINEAR_SCHEDULE:
        return dict(schedule="zoo_linear", initial_value=to_plain(schedule.initial_value))
    raise NotPlain(f"a {type(schedule).__qualname__}")


def _class_fields(cls: type) -> dict[str, Any]:
    if not issubclass(cls, SAFE_CLASS_BASES) or "<locals>" in cls.__qualname__:
        raise NotPlain(f"the class {cls.__module__}.{cls.__qualname__}")
    return dict(module=cls.__module__, name=cls.__qualname__)


# --- reading ---------------------------------------------------------------------------------------------------


def from_plain(plain: Any, allow_unsafe_pickle: bool = False) -> Any:
    """The value a :func:`to_plain` (or :func:`pickled`) form describes.

    :raise CorruptFileError: the form is malformed
    :raise ValueError: it is a pickle and ``allow_unsafe_pickle`` is False, or it names a class that may not be used
    """
    if isinstance(plain, list):
        return [from_plain(item, allow_unsafe_pickle) for item in plain]
    if not isinstance(plain, dict):
        if plain is None or isinstance(plain, (bool, int, float, str)):
            return plain
        raise CorruptFileError(f"unexpected JSON value {plain!r}")
    if TAG not in plain:
        return {key: from_plain(item, allow_unsafe_pickle) for key, item in plain.items()}
    kind = plain[TAG]
    reader = _READERS.get(kind) if isinstance(kind, str) else None
    if reader is None:
        raise CorruptFileError(f"unknown kind of value {kind!r}")
    try:
        return reader(plain, allow_unsafe_pickle)
    except (KeyError, TypeError, IndexError, AttributeError, OverflowError, base64.binascii.Error) as error:
        raise CorruptFileError(f"a malformed {kind} ({type(error).__name__}: {error})") from error


def _read_tuple(plain: dict, allow: bool) -> tuple:
    return tuple(from_plain(_list(plain["items"]), allow))


def _read_dict(plain: dict, allow: bool) -> dict:
    pairs = [from_plain(_list(pair), allow) for pair in _list(plain["items"])]
    if any(len(pair) != 2 for pair in pairs):
        raise CorruptFileError("a dict entry is not a [key, value] pair")
    return {_hashable(key): value for key, value in pairs}


def _read_array(plain: dict, allow: bool) -> np.ndarray:
    dtype_text, shape = plain["dtype"], _list(plain["shape"])
    if not isinstance(dtype_text, str) or not all(isinstance(size, int) and size >= 0 for size in shape):
        raise CorruptFileError(f"an array of dtype {dtype_text!r} and shape {shape!r}")
    try:
        dtype = np.dtype(dtype_text)
    except TypeError as error:
        raise CorruptFileError(f"an array of unknown dtype {dtype_text!r}") from error
    if dtype.kind not in PLAIN_DTYPE_KINDS or dtype.names is not None or dtype.subdtype is not None:
        raise CorruptFileError(f"an array of dtype {dtype_text!r}; arrays of numbers and bools only")
    data = base64.b64decode(_string(plain["data"]).encode(), validate=True)
    if len(data) != math.prod(shape) * dtype.itemsize:
        raise CorruptFileError(f"an array of shape {shape} {dtype} with {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _read_ndarray(plain: dict, allow: bool) -> Any:
    array = _read_array(plain, allow)
    return array[()] if array.ndim == 0 else array


def _read_tensor(plain: dict, allow: bool) -> th.Tensor:
    return th.from_numpy(_read_array(plain, allow))


def _read_deque(plain: dict, allow: bool) -> collections.deque:
    maxlen = plain["maxlen"]
    if maxlen is not None and not (isinstance(maxlen, int) and maxlen >= 0):
        raise CorruptFileError(f"a deque of maxlen {maxlen!r}")
    return collections.deque(from_plain(_list(plain["items"]), allow), maxlen=maxlen)


def _read_space(plain: dict, allow: bool) -> spaces.Space:
    kind = plain["space"]
    try:
        if kind == "Box":
            low, high = _read_array(plain["low"], allow), _read_array(plain["high"], allow)
            return spaces.Box(low, high, tuple(_list(plain["shape"])), np.dtype(_string(plain["dtype"])))
        if kind == "Discrete":
            return spaces.Discrete(_int(plain["n"]), start=_int(plain["start"]))
        if kind == "MultiDiscrete":
            nvec, start = _read_array(plain["nvec"], allow), _read_array(plain["start"], allow)
            return spaces.MultiDiscrete(nvec, dtype=np.dtype(_string(plain["dtype"])), start=start)
        if kind == "MultiBinary":
            n = plain["n"]
            return spaces.MultiBinary(_int(n) if not isinstance(n, list) else [_int(size) for size in n])
        if kind == "Dict":
            return spaces.Dict({_string(key): _read_space(part, allow) for key, part in _list(plain["spaces"])})
    except (ValueError, AssertionError) as error:
        raise CorruptFileError(f"an invalid {kind} space ({error})") from error
    raise CorruptFileError(f"a space of unknown kind {kind!r}")


def _read_schedule(plain: dict, allow: bool) -> Any:
    kind = plain["schedule"]
    if kind == "float":
        inner = from_plain(plain["of"], allow)
        if not (_is_number(inner) or callable(inner)):
            raise CorruptFileError(f"a schedule of {inner!r}")
        return FloatSchedule(inner)
    if kind == "constant":
        return ConstantSchedule(_number(plain["value"]))
    if kind == "linear":
        return LinearSchedule(_number(plain["start"]), _number(plain["end"]), _number(plain["end_fraction"]))
    if kind == "zoo_linear":
        try:
            from rl_zoo3.utils import SimpleLinearSchedule
        except ImportError as error:
            raise ValueError(f"The file holds rl-zoo3's linear schedule, which needs rl-zoo3 ({error})") from error
        return SimpleLinearSchedule(_number(plain["initial_value"]))
    raise CorruptFileError(f"a schedule of unknown kind {kind!r}")


def _read_train_freq(plain: dict, allow: bool) -> TrainFreq:
    try:
        unit = TrainFrequencyUnit(plain["unit"])
    except ValueError as error:
        raise CorruptFileError(f"a train frequency unit {plain['unit']!r}") from error
    return TrainFreq(_int(plain["frequency"]), unit)


def _read_class(plain: dict, allow: bool) -> type:
    return find_safe_class(_string(plain["module"]), _string(plain["name"]), allow_import=allow)


def _read_pickle(plain: dict, allow: bool) -> Any:
    if not allow:
        raise ValueError(f"it holds a pickled {plain.get('type', 'object')}, and unpickling can run code; {UNSAFE_HINT}")
    return unsafe_loads(base64.b64decode(_string(plain["data"]).encode()))


def unsafe_loads(data: bytes) -> Any:
    """cloudpickle's ``loads``, which runs whatever the pickle says (only with ``allow_unsafe_pickle=True``).

    :raise UnreadablePickle: the pickle does not unpickle
    """
    try:
        return cloudpickle.loads(data)
    except Exception as error:
        raise UnreadablePickle(f"{type(error).__name__}: {error}") from error


_READERS = {
    "tuple": _read_tuple,
    "dict": _read_dict,
    "ndarray": _read_ndarray,
    "tensor": _read_tensor,
    "deque": _read_deque,
    "space": _read_space,
    "schedule": _read_schedule,
    "train_freq": _read_train_freq,
    "class": _read_class,
    "pickle": _read_pickle,
}


def find_safe_class(module_name: str, name: str, allow_import: bool = False) -> type:
    """The class ``module_name.name`` if it is a torch module or optimizer class of a module already imported.

    :param allow_import: import the module if it is not imported yet (importing runs the module's code)
    :raise ValueError: the module is not imported, or the name is no such class
    """
    module = sys.modules.get(module_name)
    if module is None and allow_import:
        module = importlib.import_module(module_name)
    if module is None:
        raise ValueError(
            f"the file names the class {module_name}.{name}, whose module is not imported; loading never imports a "
            f"module a file names: import {module_name} first (or {UNSAFE_HINT})"
        )
    found: Any = module
    for part in name.split("."):
        found = getattr(found, part, None)
    if not (isinstance(found, type) and issubclass(found, SAFE_CLASS_BASES)):
        raise ValueError(
            f"the file names {module_name}.{name}, which is not a torch module or optimizer class; only those are "
            "built from the classes a file names"
        )
    return found


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise CorruptFileError(f"expected a list, got {value!r}")
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise CorruptFileError(f"expected a string, got {value!r}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise CorruptFileError(f"expected an integer, got {value!r}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _number(value: Any) -> float:
    if not _is_number(value):
        raise CorruptFileError(f"expected a number, got {value!r}")
    return value


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        raise CorruptFileError(f"a dict key {key!r}")
    return key

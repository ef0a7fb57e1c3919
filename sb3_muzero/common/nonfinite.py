"""NaN and inf in what the envs return: refused with the env's index, or left out of the replay.

``on_nonfinite="raise"`` (the default) stops at the first non-finite observation, reward or final
observation of a time limit, naming the env and the timestep. ``on_nonfinite="skip"`` keeps training:
a step with one of those is not stored (its env starts a new episode at its next stored step), and
an observation with one of those is searched from with its non-finite entries set to 0, since every
env of the vector has to take an action.
"""

from typing import Any, Optional, Union

import numpy as np

NONFINITE_MODES = ("raise", "skip")

Observations = Union[np.ndarray, dict[str, np.ndarray]]


def nonfinite_rows(batch: Observations) -> np.ndarray:
    """[n] bool: the rows of a batch [n, ...] (or of any part of a dict of such batches) holding NaN or inf."""
    parts = [np.asarray(part) for part in (batch.values() if isinstance(batch, dict) else [batch])]
    bad = np.zeros(len(parts[0]), dtype=bool)
    for part in parts:
        if part.dtype.kind in "fc":
            bad |= ~np.isfinite(part).reshape(len(part), -1).all(axis=1)
    return bad


def searchable_observations(observations: Observations, mode: str, timestep: int) -> Observations:
    """The observations to search from: unchanged if finite; else an error, or a copy with the non-finite entries at 0."""
    bad = nonfinite_rows(observations)
    if not bad.any():
        return observations
    if mode == "raise":
        env = int(np.flatnonzero(bad)[0])
        _refuse("observation", _row(observations, env), env, timestep)
    if isinstance(observations, dict):
        return {key: _zero_nonfinite(value) for key, value in observations.items()}
    return _zero_nonfinite(observations)


def steps_to_store(observations: Observations, rewards: np.ndarray, truncated: np.ndarray, infos: list[dict[str, Any]],
                   mode: str, timestep: int) -> Optional[np.ndarray]:  # fmt: skip
    """[n_envs] bool, the steps that may be stored (None: all of them), or an error naming the first env with a
    non-finite observation, reward or (where ``truncated``) final observation."""
    rewards = np.asarray(rewards)
    finals = {
        int(i): infos[i]["terminal_observation"] for i in np.flatnonzero(truncated) if "terminal_observation" in infos[i]
    }
    final_rows = np.zeros(len(rewards), dtype=bool)
    for i, final in finals.items():
        final_rows[i] = nonfinite_rows(_row(final, None))[0]
    checks = {
        "observation": (nonfinite_rows(observations), lambda env: _row(observations, env)),
        "reward": (~np.isfinite(rewards), lambda env: rewards[env]),
        "final observation": (final_rows, lambda env: finals[env]),
    }
    bad = np.zeros(len(rewards), dtype=bool)
    for what, (rows, value_of) in checks.items():
        if mode == "raise" and rows.any():
            env = int(np.flatnonzero(rows)[0])
            _refuse(what, value_of(env), env, timestep)
        bad |= rows
    return ~bad if bad.any() else None


def _row(observations: Observations, env: Optional[int]) -> Observations:
    """Row ``env`` of a batch (or of each part of a dict of batches); ``None``: make one observation a batch of one."""
    select = (lambda value: np.asarray(value)[None]) if env is None else (lambda value: np.asarray(value)[env])
    if isinstance(observations, dict):
        return {key: select(value) for key, value in observations.items()}
    return select(observations)


def _zero_nonfinite(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    return np.where(np.isfinite(array), array, 0).astype(array.dtype) if array.dtype.kind in "fc" else array


def _describe(value: Union[Observations, float]) -> str:
    """Where ``value`` is not finite, briefly (observations can be large)."""
    if isinstance(value, dict):
        parts = [f"{key!r}: {_describe(part)}" for key, part in value.items() if not np.isfinite(part).all()]
        return "{" + ", ".join(parts) + "}"
    array = np.asarray(value)
    if array.ndim == 0:
        return repr(array.item())
    nonfinite = ~np.isfinite(array)
    first = tuple(int(i) for i in np.argwhere(nonfinite)[0])
    return f"{np.count_nonzero(nonfinite)} of {array.size} entries not finite, the first {array[first].item()!r} at {first}"


def _refuse(what: str, value: Union[Observations, float], env: int, timestep: int) -> None:
    raise ValueError(
        f"Env {env} returned a non-finite {what} at timestep {timestep} ({_describe(value)}); MuZero needs finite "
        "observations and rewards. Fix the env (VecCheckNan finds where it happens), or pass on_nonfinite='skip' to "
        "leave such steps out of the replay buffer."
    )

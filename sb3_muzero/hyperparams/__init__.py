"""rl-zoo3 hyperparameters of MuZero: ``muzero.yml`` (in the repository, a link to ``hyperparams/muzero.yml``).

:func:`muzero_settings` reads one section the way rl-zoo3 does, for code that trains without rl-zoo3.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

HYPERPARAMS_FILE = Path(__file__).with_name("muzero.yml")
# rl-zoo3 keys that describe how to build the envs or run the experiment, not MuZero arguments.
ENV_KEYS = ("env_wrapper", "frame_stack", "normalize", "vec_env_wrapper", "callback", "env_kwargs", "monitor_kwargs")


@dataclass
class MuZeroSettings:
    """One section of ``muzero.yml``: what rl-zoo3 would pass to ``MuZero`` and how long it would train."""

    section: str
    policy: str
    n_envs: int
    n_timesteps: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    env_options: dict[str, Any] = field(default_factory=dict)

    def with_overrides(self, overrides: dict[str, Any]) -> MuZeroSettings:
        """These settings with ``overrides`` (section keys, as :func:`parse_overrides` reads them) in place:
        ``policy``, ``n_envs`` and ``n_timesteps`` replace the fields, the rest replace or add ``MuZero`` arguments."""
        fields = {key: overrides[key] for key in ("policy", "n_envs", "n_timesteps") if key in overrides}
        fields = {key: value if key == "policy" else int(value) for key, value in fields.items()}
        kwargs = {key: value for key, value in overrides.items() if key not in fields}
        return replace(self, **fields, kwargs={**self.kwargs, **kwargs})


def muzero_settings(env_id: str, path: Optional[Path] = None) -> MuZeroSettings:
    """The section rl-zoo3 uses for ``env_id``: its own, ``atari`` for Atari ids, else ``default``.

    ``policy_kwargs`` written as a string (``"dict(net_arch=[128])"``, rl-zoo3's format) is evaluated and a
    ``learning_rate`` written ``lin_<value>`` becomes a linear schedule from ``value`` to 0, as rl-zoo3 does;
    rl-zoo3's env and experiment keys (``env_wrapper``, ``frame_stack``, ``normalize``, ...) go to ``env_options``.
    """
    import yaml

    sections = yaml.safe_load((path or HYPERPARAMS_FILE).read_text())
    name = env_id if env_id in sections else "atari" if is_atari_id(env_id) else "default"
    settings = dict(sections[name])
    env_options = {key: settings.pop(key) for key in ENV_KEYS if key in settings}
    settings = {key: zoo_value(key, value) for key, value in settings.items()}
    return MuZeroSettings(
        section=name,
        policy=settings.pop("policy"),
        n_envs=int(settings.pop("n_envs", 1)),
        n_timesteps=int(settings.pop("n_timesteps")),
        kwargs=settings,
        env_options=env_options,
    )


def zoo_value(key: str, value: Any) -> Any:
    """A hyperparameter as rl-zoo3 reads it from its yml files: ``policy_kwargs`` from ``"dict(...)"``, a
    ``learning_rate`` of ``"lin_<value>"`` as a linear schedule from ``value`` to 0; other values as they are."""
    if key == "policy_kwargs" and isinstance(value, str):
        return eval(value, {"dict": dict})
    if key == "learning_rate" and isinstance(value, str):
        from stable_baselines3.common.utils import LinearSchedule

        kind, _, initial = value.partition("_")
        if kind != "lin":
            raise ValueError(f"learning_rate {value!r}: supported are a number and 'lin_<initial value>'")
        return LinearSchedule(float(initial), 0.0, 1.0)
    return value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items (command lines' ``--set``) as settings: each value a Python literal
    (``num_simulations=8``, ``policy_kwargs=dict(channels=8)`` or ``{'channels': 8}``) or else the text itself
    (``learning_rate=lin_1e-3``), read as :func:`zoo_value` reads the yml's values.

    :raise ValueError: an item without ``=``
    """
    malformed = [item for item in items if "=" not in item]
    if malformed:
        raise ValueError(f"--set takes KEY=VALUE items, got {malformed}")
    return {key: zoo_value(key, _literal(value)) for key, value in (item.split("=", 1) for item in items)}


def _literal(text: str) -> Any:
    """A Python literal, or the text itself (``lin_1e-3``, or ``dict(...)``, which :func:`zoo_value` reads)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def is_atari_id(env_id: str) -> bool:
    """Whether ``env_id`` has one of the Atari id forms ``make_atari_vec_env`` takes (``*NoFrameskip-v4``, ``ALE/*``).

    Decided from the name, without importing ale-py; rl-zoo3 itself checks the env's registered entry point,
    which for these ids is ale-py's ``AtariEnv``.
    """
    return "NoFrameskip" in env_id or env_id.startswith("ALE/")

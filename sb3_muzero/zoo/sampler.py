"""The Optuna sampler of MuZero's hyperparameters for rl-zoo3 (``-optimize``), and its converter.

rl-zoo3 calls the sampler once per trial and passes what it returns to ``MuZero(...)`` on top of the
hyperparameter file's section; the converter turns a finished trial's ``params`` back into those keyword
arguments (``--trial-id``, ``load_trial``). The sampled ``policy_kwargs`` replace the file's.
"""

from typing import Any, Optional

# Hidden layers shared by the representation, dynamics and prediction networks.
NET_ARCHS: dict[str, list[int]] = {"small": [64], "medium": [128], "large": [256], "deep": [128, 128]}
LATENT_DIMS = (32, 64, 128)
BATCH_SIZES = (32, 64, 128, 256)
NUM_SIMULATIONS = (8, 16, 25, 50)
TD_STEPS = (5, 10, 20, 50)


def sample_muzero_params(
    trial: Any, n_actions: int = 0, n_envs: int = 1, additional_args: Optional[dict[str, Any]] = None
) -> dict[str, Any]:
    """Sample MuZero's hyperparameters: optimisation, search, targets, exploration schedule and network size.

    The signature is rl-zoo3's; outside rl-zoo3, ``sample_muzero_params(trial)`` is enough.

    :param trial: the Optuna trial
    :param n_actions: rl-zoo3's number of actions (unused)
    :param n_envs: rl-zoo3's number of envs (unused)
    :param additional_args: rl-zoo3's extra arguments (unused)
    :return: keyword arguments for :class:`~sb3_muzero.MuZero`
    """
    params = {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", BATCH_SIZES),
        "replay_ratio": trial.suggest_float("replay_ratio", 0.1, 1.0, log=True),
        "num_simulations": trial.suggest_categorical("num_simulations", NUM_SIMULATIONS),
        "num_unroll_steps": trial.suggest_int("num_unroll_steps", 3, 10),
        "td_steps": trial.suggest_categorical("td_steps", TD_STEPS),
        "one_minus_gamma": trial.suggest_float("one_minus_gamma", 1e-3, 3e-2, log=True),
        "temperature_initial": trial.suggest_float("temperature_initial", 0.5, 1.5),
        "temperature_final": trial.suggest_float("temperature_final", 0.0, 0.5),
        "temperature_fraction": trial.suggest_float("temperature_fraction", 0.1, 1.0),
        "net_arch": trial.suggest_categorical("net_arch", list(NET_ARCHS)),
        "latent_dim": trial.suggest_categorical("latent_dim", LATENT_DIMS),
    }
    hyperparams = convert_muzero_params(params)
    trial.set_user_attr("gamma", hyperparams["gamma"])
    trial.set_user_attr("policy_kwargs", repr(hyperparams["policy_kwargs"]))
    return hyperparams


def convert_muzero_params(params: dict[str, Any]) -> dict[str, Any]:
    """Turn sampled (or stored) trial parameters into MuZero's keyword arguments.

    ``one_minus_gamma`` becomes ``gamma``; ``net_arch`` (a name of :data:`NET_ARCHS`) and ``latent_dim`` become
    ``policy_kwargs``. Other parameters pass through.
    """
    hyperparams = dict(params)
    if "one_minus_gamma" in hyperparams:
        hyperparams["gamma"] = 1.0 - hyperparams.pop("one_minus_gamma")
    policy_kwargs = dict(hyperparams.get("policy_kwargs") or {})
    if "net_arch" in hyperparams:
        policy_kwargs["net_arch"] = list(NET_ARCHS[hyperparams.pop("net_arch")])
    if "latent_dim" in hyperparams:
        policy_kwargs["latent_dim"] = int(hyperparams.pop("latent_dim"))
    if policy_kwargs:
        hyperparams["policy_kwargs"] = policy_kwargs
    return hyperparams

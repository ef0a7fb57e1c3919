"""The Optuna sampler of MuZero's hyperparameters for rl-zoo3 (``-optimize``), and its converter.

rl-zoo3 calls the sampler once per trial and passes what it returns to ``MuZero(...)`` on top of the
hyperparameter file's section; the converter turns a finished trial's ``params`` back into those keyword
arguments (``--trial-id``, ``load_trial``). Under rl-zoo3, the registration binds ``policy`` and
``policy_kwargs`` to the file's section, so that the sampled network size goes into the file's
``policy_kwargs`` instead of replacing them.
"""

from typing import Any, Optional

# Hidden layers shared by the representation, dynamics and prediction networks (MlpPolicy, MultiInputPolicy).
NET_ARCHS: dict[str, list[int]] = {"small": [64], "medium": [128], "large": [256], "deep": [128, 128]}
LATENT_DIMS = (32, 64, 128)
# Channels of CnnPolicy's residual network.
CHANNELS = (16, 32, 64)
BATCH_SIZES = (32, 64, 128, 256)
NUM_SIMULATIONS = (8, 16, 25, 50)
SEARCH_ALGORITHMS = ("puct", "gumbel")
MAX_CONSIDERED_ACTIONS = (4, 8, 16)
GUMBEL_C_VISITS = (25.0, 50.0, 100.0)
TD_STEPS = (5, 10, 20, 50)
REANALYSE_RATIOS = (0.0, 0.5, 1.0)  # the fraction of each batch whose targets are searched again
POLICY_TARGET_SMOOTHINGS = (0.0, 0.1, 0.2)  # label smoothing of the policy targets in the loss


def sample_muzero_params(
    trial: Any,
    n_actions: int = 0,
    n_envs: int = 1,
    additional_args: Optional[dict[str, Any]] = None,
    policy: Any = "MlpPolicy",
    policy_kwargs: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """Sample MuZero's hyperparameters: optimisation, search (PUCT or Gumbel, and Gumbel's settings when it is Gumbel),
    targets (with the fraction reanalysed and the policy targets' smoothing), exploration schedule and network size.

    The first four parameters are rl-zoo3's; outside rl-zoo3, ``sample_muzero_params(trial)`` is enough.

    :param trial: the Optuna trial
    :param n_actions: rl-zoo3's number of actions (unused)
    :param n_envs: rl-zoo3's number of envs (unused)
    :param additional_args: rl-zoo3's extra arguments (unused)
    :param policy: the policy (name or class): the network size sampled is ``channels`` for ``CnnPolicy``,
        ``net_arch`` and ``latent_dim`` otherwise
    :param policy_kwargs: policy arguments the sampled ones are added to
    :return: keyword arguments for :class:`~sb3_muzero.MuZero`
    """
    params = {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", BATCH_SIZES),
        "replay_ratio": trial.suggest_float("replay_ratio", 0.1, 1.0, log=True),
        "num_simulations": trial.suggest_categorical("num_simulations", NUM_SIMULATIONS),
        "search_algorithm": trial.suggest_categorical("search_algorithm", SEARCH_ALGORITHMS),
        "num_unroll_steps": trial.suggest_int("num_unroll_steps", 3, 10),
        "td_steps": trial.suggest_categorical("td_steps", TD_STEPS),
        "reanalyse_ratio": trial.suggest_categorical("reanalyse_ratio", REANALYSE_RATIOS),
        "policy_target_smoothing": trial.suggest_categorical("policy_target_smoothing", POLICY_TARGET_SMOOTHINGS),
        "one_minus_gamma": trial.suggest_float("one_minus_gamma", 1e-3, 3e-2, log=True),
        "temperature_initial": trial.suggest_float("temperature_initial", 0.5, 1.5),
        "temperature_final": trial.suggest_float("temperature_final", 0.0, 0.5),
        "temperature_fraction": trial.suggest_float("temperature_fraction", 0.1, 1.0),
    }
    if params["search_algorithm"] == "gumbel":
        params["max_considered_actions"] = trial.suggest_categorical("max_considered_actions", MAX_CONSIDERED_ACTIONS)
        params["gumbel_c_visit"] = trial.suggest_categorical("gumbel_c_visit", GUMBEL_C_VISITS)
        params["gumbel_c_scale"] = trial.suggest_float("gumbel_c_scale", 0.03, 0.3, log=True)
        params["gumbel_min_q_range"] = trial.suggest_float("gumbel_min_q_range", 0.01, 10.0, log=True)
    if _is_cnn_policy(policy):
        params["channels"] = trial.suggest_categorical("channels", CHANNELS)
    else:
        params["net_arch"] = trial.suggest_categorical("net_arch", list(NET_ARCHS))
        params["latent_dim"] = trial.suggest_categorical("latent_dim", LATENT_DIMS)
    hyperparams = convert_muzero_params({**params, "policy_kwargs": policy_kwargs})
    trial.set_user_attr("gamma", hyperparams["gamma"])
    trial.set_user_attr("policy_kwargs", repr(hyperparams["policy_kwargs"]))
    return hyperparams


def convert_muzero_params(params: dict[str, Any]) -> dict[str, Any]:
    """Turn sampled (or stored) trial parameters into MuZero's keyword arguments.

    ``one_minus_gamma`` becomes ``gamma``; ``net_arch`` (a name of :data:`NET_ARCHS`), ``latent_dim`` and
    ``channels`` go into ``policy_kwargs`` (on top of a ``policy_kwargs`` entry of ``params``, if any). Other
    parameters pass through.
    """
    hyperparams = dict(params)
    if "one_minus_gamma" in hyperparams:
        hyperparams["gamma"] = 1.0 - hyperparams.pop("one_minus_gamma")
    policy_kwargs = dict(hyperparams.pop("policy_kwargs", None) or {})
    if "net_arch" in hyperparams:
        policy_kwargs["net_arch"] = list(NET_ARCHS[hyperparams.pop("net_arch")])
    for name in ("latent_dim", "channels"):
        if name in hyperparams:
            policy_kwargs[name] = int(hyperparams.pop(name))
    if policy_kwargs:
        hyperparams["policy_kwargs"] = policy_kwargs
    return hyperparams


def _is_cnn_policy(policy: Any) -> bool:
    if isinstance(policy, str):
        return policy == "CnnPolicy"
    from sb3_muzero.muzero.policies import CnnPolicy

    return isinstance(policy, type) and issubclass(policy, CnnPolicy)

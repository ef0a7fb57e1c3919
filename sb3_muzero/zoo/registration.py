"""MuZero in rl-zoo3: the ``muzero`` entry of ``ALGOS``, its Optuna sampler, its hyperparameter file and defaults.

rl-zoo3 has no plug-in mechanism: it reads its ``--algo`` choices from ``rl_zoo3.utils.ALGOS``, its Optuna
samplers from ``rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER`` and, without ``-conf``, its hyperparameters from
``hyperparams/<algo>.yml`` inside its own package. :func:`register_loaded` adds MuZero to those of the three
modules that are already imported (the start-up hook calls it each time one of them is); :func:`register`
imports them first. Both are idempotent.

With ``-optimize``, the sampler is bound to the file's section: it samples the network size that fits its
policy, and adds it to the section's ``policy_kwargs``.

MuZero's defaults in the experiment manager, each only where the command line does not set it:

- hyperparameters: this package's ``hyperparams/muzero.yml`` (``-conf`` still wins);
- torch threads: :data:`DEFAULT_NUM_THREADS` except on Atari (``--num-threads``): the fully connected
  networks are small; the Atari section's convolutions gain from more threads;
- evaluation during training: every ``n_timesteps / DEFAULT_EVALUATIONS`` env steps, at most rl-zoo3's 25,000
  (``--eval-freq``), so that a run shorter than 25,000 steps is evaluated too, and at least every
  ``MIN_VECTOR_STEPS_BETWEEN_EVALUATIONS`` vector steps (``-n 100`` with 8 envs: once, after 80 steps);
- progress: without ``-P`` (rl-zoo3's progress bar), a line every 10 seconds with the env steps, env steps per second
  and the returns of the last episodes (:class:`~sb3_muzero.common.progress.ProgressLines`);
- self-play actors (``actors: N`` in the file, or ``-params actors:N``): each actor builds the envs rl-zoo3 would
  build for training (:class:`~sb3_muzero.zoo.actor_env.ZooActorEnv`), unless ``actor_env`` is given;
- hyperparameter search: :data:`DEFAULT_EVALUATIONS` intermediate evaluations per trial, reported to Optuna
  for pruning (``--n-evaluations``; rl-zoo3 would make one per 100,000 steps), and
  ``min(10, max(1, n_trials // 4))`` start-up trials for the sampler and the pruner (``--n-startup-trials``;
  rl-zoo3's 10 would leave a study of 10 trials or fewer without TPE and without pruning).
"""

import functools
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

from sb3_muzero.hyperparams import HYPERPARAMS_FILE

ALGO = "muzero"
HYPERPARAMS_PATH = HYPERPARAMS_FILE  # the package's muzero.yml, read by rl-zoo3 without -conf
DEFAULT_NUM_THREADS = 1
DEFAULT_EVALUATIONS = 10
MIN_VECTOR_STEPS_BETWEEN_EVALUATIONS = 10  # so that short runs (-n 100) do not evaluate at every vector step
MARKER = "_sb3_muzero_patched"
RL_ZOO3_MODULES = ("rl_zoo3.utils", "rl_zoo3.hyperparams_opt", "rl_zoo3.exp_manager")


def register() -> None:
    """Import rl-zoo3 and register MuZero with it (``--algo muzero``)."""
    try:
        for name in RL_ZOO3_MODULES:
            __import__(name)
    except ImportError as error:
        raise ImportError(f"rl-zoo3 is needed to register MuZero with it: pip install 'sb3-muzero[zoo]' ({error})") from error
    register_loaded()


def run_rl_zoo3(script: str) -> None:
    """Register MuZero, then run ``python -m rl_zoo3.<script>`` (train, enjoy, record_video, push_to_hub) on
    ``sys.argv``."""
    import runpy

    register()
    if script == "push_to_hub":
        provide_generate_metadata()
    runpy.run_module(f"rl_zoo3.{script}", run_name="__main__", alter_sys=True)


def provide_generate_metadata() -> None:
    """Give ``huggingface_sb3.push_to_hub`` back the ``generate_metadata`` that rl-zoo3's ``push_to_hub`` imports.

    rl-zoo3 2.9 imports ``generate_metadata`` from it, but sb3-team-hf-integration 3.2 (which provides
    ``huggingface_sb3`` for rl-zoo3 2.9) renamed it ``_generate_metadata`` and returns a ``ModelCardData``: without
    this, ``python -m rl_zoo3.push_to_hub`` stops at its imports for every algorithm. Where the name is missing,
    it becomes ``_generate_metadata`` returning the dict that rl-zoo3's ``metadata_save`` writes.
    """
    import importlib

    hub = importlib.import_module("huggingface_sb3.push_to_hub")
    if not hasattr(hub, "generate_metadata") and hasattr(hub, "_generate_metadata"):

        def generate_metadata(model_name: str, env_id: str, mean_reward: float, std_reward: float) -> dict[str, Any]:
            return hub._generate_metadata(model_name, env_id, mean_reward, std_reward).to_dict()

        hub.generate_metadata = generate_metadata


def register_loaded() -> None:
    """Register MuZero with the rl-zoo3 modules imported so far; modules still being imported are skipped."""
    utils = sys.modules.get("rl_zoo3.utils")
    if getattr(utils, "ALGOS", None) is not None:
        _register_algorithm(utils.ALGOS)
    hyperparams_opt = sys.modules.get("rl_zoo3.hyperparams_opt")
    if getattr(hyperparams_opt, "HYPERPARAMS_CONVERTER", None) is not None:
        from sb3_muzero.zoo.sampler import convert_muzero_params, sample_muzero_params

        hyperparams_opt.HYPERPARAMS_SAMPLER[ALGO] = sample_muzero_params
        hyperparams_opt.HYPERPARAMS_CONVERTER[ALGO] = convert_muzero_params
    exp_manager = sys.modules.get("rl_zoo3.exp_manager")
    if getattr(exp_manager, "ExperimentManager", None) is not None:
        _patch_experiment_manager(exp_manager.ExperimentManager)


def _register_algorithm(algos: dict[str, Any]) -> None:
    from sb3_muzero import MuZero

    current = algos.get(ALGO)
    if current is not None and current is not MuZero and not current.__module__.startswith("sb3_muzero"):
        warnings.warn(f"rl-zoo3 already maps --algo {ALGO} to {current!r}; sb3-muzero leaves it", stacklevel=2)
        return
    algos[ALGO] = MuZero


def _patch_experiment_manager(manager_class: type) -> None:
    """Wrap ``__init__``, ``create_callbacks``, ``hyperparameters_optimization`` and ``_preprocess_action_noise`` (the
    last step before the model is made from the hyperparameters) for MuZero (once per class)."""
    if getattr(manager_class.__init__, MARKER, False):
        return
    manager_class.__init__ = _wrap(manager_class.__init__, after=_apply_defaults)
    manager_class.create_callbacks = _wrap(
        manager_class.create_callbacks, before=_apply_evaluation_default, after=_add_progress_lines
    )
    manager_class.hyperparameters_optimization = _wrap(manager_class.hyperparameters_optimization, before=_bind_sampler)
    manager_class._preprocess_action_noise = _with_actor_env(manager_class._preprocess_action_noise)


def _wrap(
    method: Callable, *, before: Callable[[Any], None] | None = None, after: Callable[[Any], None] | None = None
) -> Callable:
    """``method`` with ``before(manager)`` run ahead of it and ``after(manager)`` behind it when the algo is MuZero: one
    wrapper per method, so ``__wrapped__`` is rl-zoo3's own."""

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        if before is not None and self.algo == ALGO:
            before(self)
        result = method(self, *args, **kwargs)
        if after is not None and self.algo == ALGO:
            after(self)
        return result

    setattr(wrapper, MARKER, True)
    return wrapper


def _with_actor_env(method: Callable) -> Callable:
    """Give a MuZero with actors rl-zoo3's envs, built in each actor (see :mod:`sb3_muzero.zoo.actor_env`)."""

    @functools.wraps(method)
    def wrapper(self, hyperparams: dict[str, Any], saved_hyperparams: dict[str, Any], env: Any) -> dict[str, Any]:
        hyperparams = method(self, hyperparams, saved_hyperparams, env)
        if self.algo == ALGO and hyperparams.get("actors") and hyperparams.get("actor_env") is None:
            from sb3_muzero.zoo.actor_env import ZooActorEnv

            hyperparams = {**hyperparams, "actor_env": ZooActorEnv(self, env.num_envs)}
        return hyperparams

    setattr(wrapper, MARKER, True)
    return wrapper


def _apply_defaults(manager: Any) -> None:
    """MuZero's defaults for what the constructor has set (see the module docstring)."""
    if manager.config == str(_rl_zoo3_default_config(manager.algo)) and not Path(manager.config).is_file():
        manager.config = str(HYPERPARAMS_PATH)
    if not _typed("--num-threads") and not manager.is_atari(manager.env_name.gym_id):
        import torch as th

        th.set_num_threads(DEFAULT_NUM_THREADS)
        _say(manager, f"torch on {DEFAULT_NUM_THREADS} thread(s) (--num-threads)")
    if manager.optimize_hyperparameters:
        if manager.n_evaluations is None:
            manager.n_evaluations = DEFAULT_EVALUATIONS
            _say(manager, f"{DEFAULT_EVALUATIONS} intermediate evaluations per trial, for pruning (--n-evaluations)")
        if not _typed("--n-startup-trials"):
            manager.n_startup_trials = min(manager.n_startup_trials, max(1, manager.n_trials // 4))
            _say(manager, f"{manager.n_startup_trials} start-up trial(s) for the sampler and pruner (--n-startup-trials)")


def _apply_evaluation_default(manager: Any) -> None:
    """Evaluate ``DEFAULT_EVALUATIONS`` times during training (``n_timesteps`` and ``n_envs`` are known once the file is
    read), at most once every :data:`MIN_VECTOR_STEPS_BETWEEN_EVALUATIONS` vector steps."""
    if _typed("--eval-freq"):
        return
    interval = max(manager.n_timesteps // DEFAULT_EVALUATIONS, MIN_VECTOR_STEPS_BETWEEN_EVALUATIONS * manager.n_envs)
    if interval < manager.eval_freq and interval <= manager.n_timesteps:
        manager.eval_freq = interval
        if not manager.optimize_hyperparameters:
            _say(manager, f"evaluation every {manager.eval_freq} steps (--eval-freq)")


def _add_progress_lines(manager: Any) -> None:
    """Without rl-zoo3's progress bar (``-P``), print a progress line every few seconds: env steps, env steps per
    second, the last episodes' returns (SB3's own log tables wait for episodes, which can take minutes on Atari)."""
    if not manager.show_progress and manager.verbose > 0:
        from sb3_muzero.common.progress import ProgressLines

        manager.callbacks.append(ProgressLines())


def _bind_sampler(manager: Any) -> None:
    """Let the sampler see the file's policy and add the sampled network size to the file's ``policy_kwargs``."""
    from sb3_muzero.zoo.sampler import sample_muzero_params

    samplers = sys.modules["rl_zoo3.hyperparams_opt"].HYPERPARAMS_SAMPLER
    settings = manager._hyperparams
    samplers[ALGO] = functools.partial(
        sample_muzero_params, policy=settings.get("policy", "MlpPolicy"), policy_kwargs=settings.get("policy_kwargs")
    )


def _say(manager: Any, message: str) -> None:
    if manager.verbose > 0:
        print(f"MuZero default: {message}")


def _rl_zoo3_default_config(algo: str) -> Path:
    """Where rl-zoo3 looks for ``<algo>.yml`` without ``-conf`` (its package, or the folder above for a checkout)."""
    package = Path(sys.modules["rl_zoo3.exp_manager"].__file__).parent
    root = package if (package / "hyperparams").is_dir() else package.parent
    return root / "hyperparams" / f"{algo}.yml"


def _typed(option: str, argv: list[str] | None = None) -> bool:
    """Whether the command line sets ``option``, also as ``option=value`` or an abbreviation argparse accepts."""
    argv = sys.argv[1:] if argv is None else argv
    for token in argv:
        if token == "--":
            break
        name = token.split("=", 1)[0]
        if name.startswith("--") and len(name) > 3 and option.startswith(name) and _unambiguous(name, option):
            return True
    return False


def _unambiguous(prefix: str, option: str) -> bool:
    """False for prefixes of ``option`` that rl-zoo3's other long options share (argparse would refuse them)."""
    return not any(other != option and other.startswith(prefix) for other in _RL_ZOO3_LONG_OPTIONS)


# The long options of rl-zoo3's train, enjoy and record_video that share a prefix with the options above.
_RL_ZOO3_LONG_OPTIONS = (
    "--num-threads",
    "--n-timesteps",
    "--n-trials",
    "--n-jobs",
    "--n-startup-trials",
    "--n-evaluations",
    "--n-eval-envs",
    "--eval-freq",
    "--eval-episodes",
    "--eval-env-kwargs",
    "--env",
    "--env-kwargs",
)

__all__ = [
    "ALGO",
    "DEFAULT_EVALUATIONS",
    "DEFAULT_NUM_THREADS",
    "HYPERPARAMS_PATH",
    "provide_generate_metadata",
    "register",
    "register_loaded",
    "run_rl_zoo3",
]

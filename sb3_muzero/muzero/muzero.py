import contextlib
import functools
import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Optional, TypeVar, Union

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import is_image_space_channels_first
from stable_baselines3.common.type_aliases import (
    GymEnv,
    MaybeCallback,
    PyTorchObs,
    RolloutReturn,
    Schedule,
    TrainFreq,
    TrainFrequencyUnit,
)
from stable_baselines3.common.utils import LinearSchedule, obs_as_tensor, should_collect_more_steps
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecFrameStack, VecTransposeImage

from sb3_muzero.common.denormals import denormals_flushed
from sb3_muzero.common.interrupts import interrupts_deferred
from sb3_muzero.common.nonfinite import NONFINITE_MODES
from sb3_muzero.common.numbers import is_int
from sb3_muzero.mcts import SearchSettings
from sb3_muzero.mcts.roots import to_numpy
from sb3_muzero.muzero.augmentation import augment, check_augmentations
from sb3_muzero.muzero.latent import scale_gradient
from sb3_muzero.muzero.losses import cross_entropy
from sb3_muzero.muzero.persistence import PersistenceMixin
from sb3_muzero.muzero.policies import CnnPolicy, MlpPolicy, MultiInputPolicy, MuZeroPolicy, computation_dtype
from sb3_muzero.muzero.reanalyse import reanalyse
from sb3_muzero.muzero.self_play import make_transition, policy_entropy, search_step
from sb3_muzero.muzero.support import h_inverse
from sb3_muzero.replay import MuZeroReplayBuffer, ReplaySample

if TYPE_CHECKING:  # the distributed package (and Ray) are imported only when learn() starts actors
    from sb3_muzero.distributed.learner import ActorPool
    from sb3_muzero.distributed.stats import ActorStats

SelfMuZero = TypeVar("SelfMuZero", bound="MuZero")

OPTIMIZERS: dict[str, type[th.optim.Optimizer]] = {"adam": th.optim.Adam, "adamw": th.optim.AdamW, "sgd": th.optim.SGD}
SUPPORTED_OBSERVATION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary, spaces.Dict)
# Hyperparameters checked at construction (the search settings are checked by SearchSettings): integers with their
# minimum, and reals with (low, high, low excluded); reals must be finite, but for those in INFINITY_ALLOWED.
INTEGER_MINIMUMS = dict(
    num_unroll_steps=1,
    td_steps=1,
    buffer_size=1,
    batch_size=1,
    learning_starts=0,
    target_update_interval=0,
    actors=0,
    chunk_steps=1,
    weight_sync_interval=1,
    reanalyse_age_per_td_step=0,
)
REAL_INTERVALS = dict(
    replay_ratio=(0.0, np.inf, True),
    temperature_initial=(0.0, np.inf, False),
    temperature_final=(0.0, np.inf, False),
    temperature_fraction=(0.0, 1.0, False),
    value_loss_coef=(0.0, np.inf, False),
    reward_loss_coef=(0.0, np.inf, False),
    policy_loss_coef=(0.0, np.inf, False),
    consistency_loss_coef=(0.0, np.inf, False),
    policy_target_smoothing=(0.0, 1.0, False),
    prioritized_replay_alpha=(0.0, np.inf, False),
    prioritized_replay_beta=(0.0, 1.0, False),
    max_grad_norm=(0.0, np.inf, True),
    weight_decay=(0.0, np.inf, False),
    reanalyse_ratio=(0.0, 1.0, False),
)
INFINITY_ALLOWED = ("max_grad_norm",)  # no clipping
LEARNING_RATE_CHECKPOINTS = np.linspace(1.0, 0.0, 11)  # progress_remaining where the learning rate is checked


class UpdateLosses(NamedTuple):
    """What the forward passes of one gradient step give: per-sample losses [B] (summed over the unroll), the
    importance weights [B], the weighted mean loss, the value targets [B, K+1] (array and tensor) and the value the
    network predicts for the first observation [B]."""

    value: th.Tensor
    reward: th.Tensor
    policy: th.Tensor
    consistency: th.Tensor
    weights: th.Tensor
    total: th.Tensor
    value_targets_array: np.ndarray
    value_targets: th.Tensor
    predicted_value: th.Tensor


class MuZero(PersistenceMixin, OffPolicyAlgorithm):
    """
    MuZero: planning with a learned model.

    Paper: https://arxiv.org/abs/1911.08265 (Schrittwieser et al., 2020, "Mastering Atari, Go, Chess and
    Shogi by Planning with a Learned Model"). Every env step runs a batched Monte-Carlo tree search over
    all envs with the learned model; training unrolls the model K steps along stored trajectories
    towards n-step value, reward and search-policy targets, sampled from a prioritized replay.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, MultiInputPolicy)
    :param env: The environment to learn from (if registered in Gym, can be str); Discrete actions only
    :param learning_rate: learning rate, a float or a function of the remaining progress (from 1 to 0)
    :param buffer_size: number of env steps the replay keeps
    :param learning_starts: how many env steps to collect before training starts
    :param batch_size: unrolls per gradient step
    :param gamma: the discount factor, in (0, 1]
    :param train_freq: train every ``train_freq`` vector steps (or a tuple ``(n, "step")``)
    :param replay_ratio: gradient steps per env step (fractions accumulate across calls)
    :param num_simulations: search simulations per env step
    :param num_unroll_steps: K, model steps unrolled per training sample
    :param td_steps: n of the n-step value targets
    :param pb_c_init: PUCT constant c1
    :param pb_c_base: PUCT constant c2
    :param root_dirichlet_alpha: concentration of the Dirichlet noise added to the root priors in self-play
    :param root_exploration_fraction: weight of that noise
    :param temperature_initial: visit-count temperature of the self-play actions at the start of training
    :param temperature_final: temperature at the end of the schedule
    :param temperature_fraction: fraction of the training over which the temperature goes linearly from the
        initial to the final value
    :param value_loss_coef: weight of the value loss
    :param reward_loss_coef: weight of the reward loss
    :param policy_loss_coef: weight of the policy loss
    :param consistency_loss_coef: weight of the self-supervised consistency loss between the latents the dynamics
        predict and the latents of the observations that really followed (EfficientZero); 0 turns it off
    :param policy_target_smoothing: the policy loss's targets are ``(1 - s) * target + s / A`` (label smoothing over
        the ``A`` actions), so no action's prior falls far below ``s / A``: against a collapse of the prior when the
        search's Q values are still noise (with Gumbel's targets ``softmax(logits + sigma(q))`` an action whose
        logit has collapsed is neither searched nor taught again); 0 trains on the search's targets as they are
    :param augmentation: augmentations of image observations during training: any of "shift" (random shift by
        up to 4 pixels) and "intensity" (random brightness)
    :param mixed_precision: run the forward passes of the gradient steps (the networks, the target network's bootstrap
        values, the consistency targets) under ``torch.autocast`` with bfloat16, image networks' weights in channels-last
        layout; parameters, gradients, optimizer state, losses and targets stay float32, and the search is unchanged.
        Several times faster convolutions on CPUs with AMX or AVX-512 BF16 (and on GPUs with bfloat16), slower on
        CPUs without them (see ``benchmarks/bench_atari_network.py``)
    :param optimizer: "adam", "adamw" or "sgd" (with momentum 0.9); ``policy_kwargs["optimizer_class"]`` overrides it
    :param weight_decay: L2 weight decay of the optimizer
    :param max_grad_norm: the maximum norm of the gradients (clipped above it)
    :param target_update_interval: gradient steps between copies to a target network that recomputes the
        bootstrap values of the value targets; 0 bootstraps from the stored search values (no target network)
    :param reanalyse_ratio: the fraction of the unrolls of each batch whose targets are searched again (MuZero
        Reanalyze): their policy targets from a search with the current network, their value targets bootstrapping
        from the root value of a search with the target network, all in one batched search; 0 trains on the stored
        statistics (see :mod:`sb3_muzero.muzero.reanalyse`)
    :param reanalyse_age_per_td_step: EfficientZero's off-policy correction for the reanalysed unrolls: their n-step
        horizon is ``max(1, td_steps - age // reanalyse_age_per_td_step)``, the age counted in gradient steps since
        the step was stored; 0 keeps ``td_steps``
    :param reanalyse_noise: PUCT: mix the acting search's Dirichlet noise into the priors of the reanalysed roots, drawn
        from a generator of its own (``reanalyse_rng``), as EfficientZero does; False searches them without noise.
        Gumbel: not read (reanalyse searches with temperature 0, no Gumbel noise)
    :param prioritized_replay_alpha: priority exponent (0 = uniform sampling)
    :param prioritized_replay_beta: initial importance-sampling exponent, annealed linearly to 1 over training
    :param search_backend: "auto", "cpu" or "cuda" (see :class:`sb3_muzero.mcts.SearchSettings`)
    :param search_algorithm: "puct" (MuZero's search) or "gumbel" (Gumbel MuZero: Sequential Halving at the root, the
        improved policy softmax(logits + sigma(completed Q)) as the policy target; the temperature scales its root
        Gumbel noise, and the Dirichlet noise is not used)
    :param max_considered_actions: Gumbel: root actions sampled without replacement and searched
    :param gumbel_c_visit: Gumbel: c_visit of sigma(q) = (c_visit + max N) * c_scale * q
    :param gumbel_c_scale: Gumbel: c_scale of sigma(q)
    :param gumbel_min_q_range: Gumbel: the least range sigma rescales completed Q values by (in units of reward): Q
        values that differ by less are not stretched to the full scale
    :param on_nonfinite: what a NaN or inf in an observation or reward does: "raise" an error naming the env, or
        "skip" the step (not stored; see :mod:`sb3_muzero.common.nonfinite`)
    :param actors: number of self-play actors on Ray (``pip install "sb3-muzero[distributed]"``); 0 (the default)
        steps the envs in this process. With ``actors=N``, ``learn`` starts N Ray actors, each with its own copy of the
        envs and of the network, and this process only trains (see :mod:`sb3_muzero.distributed`)
    :param actor_env: how an actor builds its envs: a function called as ``actor_env(seed=seed)`` that returns a
        VecEnv, and that Ray can pickle (e.g. ``functools.partial(make_vec_env, "CartPole-v1", n_envs=8)``). Default:
        a copy of ``env`` (a ``DummyVecEnv`` of envs that pickle, or ``make_atari_vec_env``'s env, rebuilt)
    :param chunk_steps: vector steps of its envs an actor makes before sending them to the replay, all at once
    :param weight_sync_interval: gradient steps after which an actor gets the new weights (with its next chunk)
    :param ray_address: the Ray cluster to join (``"auto"``, ``"<head ip>:6379"``); None starts Ray on this machine
        unless ``RAY_ADDRESS`` is set. Used only when Ray is not initialized yet
    :param ray_actor_options: Ray options of each actor (``num_cpus``, ``num_gpus``, ``resources``,
        ``scheduling_strategy``, ...), on top of ``max_restarts=-1`` and ``scheduling_strategy="SPREAD"``
    :param replay_buffer_kwargs: keyword arguments for :class:`~sb3_muzero.replay.MuZeroReplayBuffer`
        (``frame_stack``, ``force_memory``, ...)
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes to average
        the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation
    :param verbose: Verbosity level: 0 for no output, 1 for info messages (such as device or wrappers used), 2 for
        debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run.
        Setting it to auto, the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    # Reanalyse searched without noise before reanalyse_noise existed (see PersistenceMixin).
    EARLIER_FILES_DEFAULTS: ClassVar[dict[str, Any]] = {"reanalyse_noise": False}
    policy: MuZeroPolicy
    replay_buffer: MuZeroReplayBuffer  # type: ignore[assignment]

    def __init__(
        self,
        policy: Union[str, type[MuZeroPolicy]],
        env: Union[GymEnv, str],
        learning_rate: Union[float, Schedule] = 1e-3,
        buffer_size: int = 100_000,
        learning_starts: int = 500,
        batch_size: int = 128,
        gamma: float = SearchSettings.gamma,
        train_freq: Union[int, tuple[int, str]] = 1,
        replay_ratio: float = 1.0,
        num_simulations: int = SearchSettings.num_simulations,
        num_unroll_steps: int = 5,
        td_steps: int = 10,
        pb_c_init: float = SearchSettings.pb_c_init,
        pb_c_base: float = SearchSettings.pb_c_base,
        root_dirichlet_alpha: float = SearchSettings.root_dirichlet_alpha,
        root_exploration_fraction: float = SearchSettings.root_exploration_fraction,
        temperature_initial: float = 1.0,
        temperature_final: float = 0.25,
        temperature_fraction: float = 0.5,
        value_loss_coef: float = 0.25,
        reward_loss_coef: float = 1.0,
        policy_loss_coef: float = 1.0,
        consistency_loss_coef: float = 0.0,
        policy_target_smoothing: float = 0.0,
        augmentation: Sequence[str] = (),
        mixed_precision: bool = False,
        optimizer: str = "adam",
        weight_decay: float = 1e-4,
        max_grad_norm: float = 5.0,
        target_update_interval: int = 200,
        reanalyse_ratio: float = 0.0,
        reanalyse_age_per_td_step: int = 0,
        reanalyse_noise: bool = True,
        prioritized_replay_alpha: float = 1.0,
        prioritized_replay_beta: float = 1.0,
        search_backend: str = SearchSettings.search_backend,
        search_algorithm: str = SearchSettings.search_algorithm,
        max_considered_actions: int = SearchSettings.max_considered_actions,
        gumbel_c_visit: float = SearchSettings.gumbel_c_visit,
        gumbel_c_scale: float = SearchSettings.gumbel_c_scale,
        gumbel_min_q_range: float = SearchSettings.gumbel_min_q_range,
        on_nonfinite: str = "raise",
        actors: int = 0,
        actor_env: Optional[Callable[..., VecEnv]] = None,
        chunk_steps: int = 8,
        weight_sync_interval: int = 10,
        ray_address: Optional[str] = None,
        ray_actor_options: Optional[dict[str, Any]] = None,
        replay_buffer_kwargs: Optional[dict[str, Any]] = None,
        stats_window_size: int = 100,
        tensorboard_log: Optional[str] = None,
        policy_kwargs: Optional[dict[str, Any]] = None,
        verbose: int = 0,
        seed: Optional[int] = None,
        device: Union[th.device, str] = "auto",
        _init_setup_model: bool = True,
    ):
        warn_if_no_gpu(device)
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=1.0,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=-1,
            replay_buffer_kwargs=replay_buffer_kwargs,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            support_multi_env=True,
        )
        self.replay_ratio = replay_ratio
        self.num_simulations = num_simulations
        self.num_unroll_steps = num_unroll_steps
        self.td_steps = td_steps
        self.pb_c_init = pb_c_init
        self.pb_c_base = pb_c_base
        self.root_dirichlet_alpha = root_dirichlet_alpha
        self.root_exploration_fraction = root_exploration_fraction
        self.temperature_initial = temperature_initial
        self.temperature_final = temperature_final
        self.temperature_fraction = temperature_fraction
        self.value_loss_coef = value_loss_coef
        self.reward_loss_coef = reward_loss_coef
        self.policy_loss_coef = policy_loss_coef
        self.consistency_loss_coef = consistency_loss_coef
        self.policy_target_smoothing = policy_target_smoothing
        self.augmentation = check_augmentations(augmentation)
        self.mixed_precision = mixed_precision
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.max_grad_norm = max_grad_norm
        self.target_update_interval = target_update_interval
        self.reanalyse_ratio = reanalyse_ratio
        self.reanalyse_age_per_td_step = reanalyse_age_per_td_step
        self.reanalyse_noise = reanalyse_noise
        self.prioritized_replay_alpha = prioritized_replay_alpha
        self.prioritized_replay_beta = prioritized_replay_beta
        self.search_backend = search_backend
        self.search_algorithm = search_algorithm
        self.max_considered_actions = max_considered_actions
        self.gumbel_c_visit = gumbel_c_visit
        self.gumbel_c_scale = gumbel_c_scale
        self.gumbel_min_q_range = gumbel_min_q_range
        self.on_nonfinite = on_nonfinite
        self.actors = actors
        self.actor_env = actor_env
        self.chunk_steps = chunk_steps
        self.weight_sync_interval = weight_sync_interval
        self.ray_address = ray_address
        self.ray_actor_options = ray_actor_options
        self._actor_pool: Optional[ActorPool] = None  # while learn() runs with actors
        self.actor_stats: Optional[ActorStats] = None  # what the actors of the last learn() did
        self._replay_streams = "envs"  # whose envs the replay's episode streams follow: "envs" or "actors"
        self.temperature = temperature_initial
        self.target_policy: Optional[MuZeroPolicy] = None
        self._pending_gradient_steps = 0.0
        if _init_setup_model:
            self._setup_model()

    # --- construction -------------------------------------------------------------------------------

    def _get_policy_from_name(self, policy_name: str) -> type[BasePolicy]:
        if policy_name not in self.policy_aliases:
            raise ValueError(
                f"Unknown policy {policy_name!r}; supported: {', '.join(self.policy_aliases)} or a MuZeroPolicy class"
            )
        return self.policy_aliases[policy_name]

    def _check_arguments(self) -> None:
        """Refuse unsupported spaces and hyperparameters with a message naming what is supported."""
        if not (isinstance(self.policy_class, type) and issubclass(self.policy_class, MuZeroPolicy)):
            raise ValueError(
                f"policy must be a MuZeroPolicy class or one of {', '.join(self.policy_aliases)}, got {self.policy_class}"
            )
        self._check_spaces()
        self._check_hyperparameters()

    def _check_spaces(self) -> None:
        if not isinstance(self.action_space, spaces.Discrete):
            raise ValueError(
                f"MuZero supports Discrete action spaces only, got {self.action_space}; "
                "Box, MultiDiscrete and MultiBinary actions are not supported"
            )
        observation_spaces = self.observation_space.spaces.values() if isinstance(self.observation_space, spaces.Dict) else []
        if not isinstance(self.observation_space, SUPPORTED_OBSERVATION_SPACES) or any(
            not isinstance(space, spaces.Box) for space in observation_spaces
        ):
            raise ValueError(
                f"MuZero supports Box, Discrete, MultiDiscrete and MultiBinary observations, and Dict observations of Box "
                f"parts; got {self.observation_space}"
            )
        if self.augmentation and not (
            isinstance(self.observation_space, spaces.Box)
            and len(self.observation_space.shape) == 3
            and is_image_space_channels_first(self.observation_space)
        ):
            raise ValueError(
                f"augmentation {self.augmentation} needs image observations [C, H, W] (channel-first), got "
                f"{self.observation_space}"
            )

    def _check_hyperparameters(self) -> None:
        _ = self.search_settings  # SearchSettings checks the search's own hyperparameters
        for name, minimum in INTEGER_MINIMUMS.items():
            value = getattr(self, name)
            if not (is_int(value) and value >= minimum):
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        for name, (low, high, low_open) in REAL_INTERVALS.items():
            value = getattr(self, name)
            infinite_ok = name in INFINITY_ALLOWED
            if not (
                isinstance(value, (int, float))
                and (math.isfinite(value) or (infinite_ok and value == math.inf))
                and (low < value if low_open else low <= value)
                and value <= high
            ):
                upper = ("inf]" if infinite_ok else "inf)") if high == np.inf else f"{high}]"
                raise ValueError(f"{name} must be in {'(' if low_open else '['}{low}, {upper}, got {value!r}")
        for name in ("mixed_precision", "reanalyse_noise"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.mixed_precision and not bfloat16_autocast_available(self.device):
            raise ValueError(
                f"mixed_precision=True needs bfloat16 autocast on the device, which {self.device} does not support; "
                "use mixed_precision=False"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {self.optimizer!r}; supported: {', '.join(OPTIMIZERS)}")
        if self.on_nonfinite not in NONFINITE_MODES:
            raise ValueError(f"Unknown on_nonfinite {self.on_nonfinite!r}; supported: {', '.join(NONFINITE_MODES)}")
        if self.actor_env is not None and not callable(self.actor_env):
            raise ValueError(f"actor_env must be a function actor_env(seed=...) -> VecEnv, got {self.actor_env!r}")
        if not (self.ray_actor_options is None or isinstance(self.ray_actor_options, dict)):
            raise ValueError(f"ray_actor_options must be a dict of Ray actor options, got {self.ray_actor_options!r}")

    def _check_learning_rate(self) -> None:
        """The learning rate is finite and >= 0 over the whole run (checked at 11 points of its schedule)."""
        for progress in LEARNING_RATE_CHECKPOINTS:
            rate = self.lr_schedule(float(progress))
            if not (math.isfinite(rate) and rate >= 0):
                raise ValueError(
                    f"learning_rate gives {rate:.4g} at progress_remaining={progress:.1f}: learning rates must be finite "
                    "and >= 0 over the whole run (progress_remaining goes from 1 to 0)"
                )

    def _setup_model(self) -> None:
        self._check_arguments()
        self._setup_lr_schedule()
        self._check_learning_rate()
        self.set_random_seed(self.seed)
        if self.replay_buffer is None:
            replay_kwargs = dict(alpha=self.prioritized_replay_alpha, frame_stack=detect_frame_stack(self.env))
            replay_kwargs.update(self.replay_buffer_kwargs)
            self.replay_buffer = MuZeroReplayBuffer(
                self.buffer_size, self.observation_space, self.action_space, gamma=self.gamma, **replay_kwargs
            )
        self.policy = self._make_policy()
        self.policy.search_rng = self.search_rng
        if self.target_update_interval > 0:
            self.target_policy = self._make_policy()
            self.target_policy.load_state_dict(self.policy.state_dict())
            self.target_policy.set_training_mode(False)
        self._convert_train_freq()
        self.temperature_schedule = LinearSchedule(self.temperature_initial, self.temperature_final, self.temperature_fraction)

    def _make_policy(self) -> MuZeroPolicy:
        policy = self.policy_factory()().to(self.device)
        if self.mixed_precision:
            policy.to(memory_format=th.channels_last)  # convolution weights only; what bfloat16 convolutions run fastest on
        return policy

    def _autocast(self) -> contextlib.AbstractContextManager:
        """The context of the gradient steps' forward passes: bfloat16 autocast with ``mixed_precision``, else a no-op.
        Without autocast's weight cache, so that a weight first cast under ``no_grad`` (the consistency targets) still
        gets its gradient where it is used with one."""
        if not self.mixed_precision:
            return contextlib.nullcontext()
        return th.autocast(device_type=self.device.type, dtype=th.bfloat16, cache_enabled=False)

    def policy_factory(self) -> Callable[[], MuZeroPolicy]:
        """A function that builds a new policy of this model's class and settings (on the CPU, untrained); it pickles,
        so that actors can build their copy of the network."""
        policy_kwargs = dict(self.policy_kwargs)
        if "optimizer_class" not in policy_kwargs:
            policy_kwargs["optimizer_class"] = OPTIMIZERS[self.optimizer]
            optimizer_kwargs = {"momentum": 0.9} if self.optimizer == "sgd" else {}
            policy_kwargs["optimizer_kwargs"] = {**optimizer_kwargs, "weight_decay": self.weight_decay,
                                                 **policy_kwargs.get("optimizer_kwargs", {})}  # fmt: skip
        if self.consistency_loss_coef > 0:
            policy_kwargs.setdefault("projection_dim", 64)
        return functools.partial(
            self.policy_class, self.observation_space, self.action_space, self.lr_schedule,
            search_settings=self.search_settings, **policy_kwargs,
        )  # fmt: skip

    @property
    def search_settings(self) -> SearchSettings:
        """The search settings of this model's hyperparameters (checked)."""
        return SearchSettings(
            num_simulations=self.num_simulations,
            gamma=self.gamma,
            pb_c_init=self.pb_c_init,
            pb_c_base=self.pb_c_base,
            root_dirichlet_alpha=self.root_dirichlet_alpha,
            root_exploration_fraction=self.root_exploration_fraction,
            search_backend=self.search_backend,
            search_algorithm=self.search_algorithm,
            max_considered_actions=self.max_considered_actions,
            gumbel_c_visit=self.gumbel_c_visit,
            gumbel_c_scale=self.gumbel_c_scale,
            gumbel_min_q_range=self.gumbel_min_q_range,
        )

    def set_random_seed(self, seed: Optional[int] = None) -> None:
        """Seed Python, NumPy, torch, the action space, the env, the search, the replay sampling and reanalyse's noise."""
        super().set_random_seed(seed)
        search_seed, replay_seed, reanalyse_seed = np.random.SeedSequence(seed).spawn(3)
        self.search_rng = np.random.default_rng(search_seed)
        self.replay_rng = np.random.default_rng(replay_seed)
        self.reanalyse_rng = np.random.default_rng(reanalyse_seed)
        if getattr(self, "policy", None) is not None:
            self.policy.search_rng = self.search_rng

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "policy.optimizer"]
        if self.target_policy is not None:
            state_dicts.append("target_policy")
        return state_dicts, []

    def _excluded_save_params(self) -> list[str]:
        # _last_search: the statistics of a step already stored when a save happens (between two steps); actor_env: a
        # function, which a file would have to pickle (give it again to MuZero.load, as the env)
        excluded = ["target_policy", "temperature_schedule", "_actor_pool", "actor_stats", "_last_search", "actor_env"]
        return [*super()._excluded_save_params(), *excluded]

    # --- self-play ----------------------------------------------------------------------------------

    def _setup_learn(self, total_timesteps: int, callback: MaybeCallback = None, reset_num_timesteps: bool = True,
                     tb_log_name: str = "run", progress_bar: bool = False):  # fmt: skip
        vec_normalize = self._vec_normalize_env
        if vec_normalize is not None and vec_normalize.norm_reward:
            raise ValueError("MuZero does not support VecNormalize(norm_reward=True); normalize observations only")
        if self._actor_pool is not None:  # new actors, new envs: every actor's env starts a new episode
            self.replay_buffer.start_new_episodes(self._actor_pool.num_streams)
            self._replay_streams = "actors"
        elif reset_num_timesteps or self._last_obs is None or self._replay_streams != "envs":
            self.replay_buffer.start_new_episodes(self.n_envs)
            self._replay_streams = "envs"
        end, callback = super()._setup_learn(int(total_timesteps), callback, reset_num_timesteps, tb_log_name, progress_bar)
        if end <= self.learning_starts:
            warnings.warn(
                f"This learn() call ends at {end:,} env steps, not past learning_starts={self.learning_starts:,}: "
                "it only collects, no gradient step will run; give a budget above learning_starts (or lower it)"
            )
        return end, callback

    def learn(
        self: SelfMuZero,
        total_timesteps: Union[int, float],
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "MuZero",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfMuZero:
        """SB3's ``learn``; with ``actors > 0``, the envs are stepped by Ray actors for the length of this call.
        Float32 denormals are flushed to 0 on the calling thread meanwhile (:mod:`sb3_muzero.common.denormals`)."""
        with denormals_flushed():
            return self._learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)

    def _learn(
        self: SelfMuZero,
        total_timesteps: Union[int, float],
        callback: MaybeCallback,
        log_interval: int,
        tb_log_name: str,
        reset_num_timesteps: bool,
        progress_bar: bool,
    ) -> SelfMuZero:
        learn = functools.partial(
            super().learn,
            total_timesteps=int(total_timesteps),
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
        if not self.actors:
            return learn()
        self._check_hyperparameters()  # load(..., actors=N) sets them without the constructor's checks
        try:
            from sb3_muzero.distributed.learner import ActorPool
        except ImportError as error:
            raise ImportError(f"actors={self.actors} needs Ray: pip install 'sb3-muzero[distributed]' ({error})") from error

        with ActorPool(self) as pool:
            self._actor_pool, self.actor_stats = pool, pool.stats
            try:
                return learn()
            finally:
                self._actor_pool = None

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        train_freq: TrainFreq,
        replay_buffer: ReplayBuffer,
        action_noise: Optional[ActionNoise] = None,
        learning_starts: int = 0,
        log_interval: Optional[int] = None,
    ) -> RolloutReturn:
        """SB3's ``collect_rollouts`` with each env step stored before the callbacks see it, and Ctrl-C held back from
        ``env.step`` until the step is stored: an interrupt (or a callback that raises, or stops training) leaves
        the counters, the last observations and the replay consistent, so ``learn(..., reset_num_timesteps=False)``
        goes on storing only true transitions. (MuZero has no action noise and no gSDE.) With actors, the next chunk
        of steps an actor sent instead."""
        if self._actor_pool is not None:
            return self._actor_pool.collect_rollout(callback, log_interval)
        self.policy.set_training_mode(False)
        num_collected_steps, num_collected_episodes = 0, 0
        assert train_freq.frequency > 0, "Should at least collect one step or episode."
        if env.num_envs > 1:
            assert train_freq.unit == TrainFrequencyUnit.STEP, "You must use only one env when doing episodic training."
        callback.on_rollout_start()
        while should_collect_more_steps(train_freq, num_collected_steps, num_collected_episodes):
            actions, buffer_actions = self._sample_action(learning_starts, action_noise, env.num_envs)
            with interrupts_deferred():
                new_obs, rewards, dones, infos = env.step(actions)
                self.num_timesteps += env.num_envs
                num_collected_steps += 1
                self._update_info_buffer(infos, dones)
                self._store_transition(replay_buffer, buffer_actions, new_obs, rewards, dones, infos)  # type: ignore[arg-type]
                self._update_current_progress_remaining(self.num_timesteps, self._total_timesteps)
                self._on_step()
                ended = int(np.sum(dones))
                num_collected_episodes += ended
                self._episode_num += ended
            callback.update_locals(locals())
            if not callback.on_step():
                return RolloutReturn(num_collected_steps * env.num_envs, num_collected_episodes, continue_training=False)
            if log_interval is not None and self._episode_num // log_interval > (self._episode_num - ended) // log_interval:
                self.dump_logs()  # the episode count passed a multiple of log_interval
        callback.on_rollout_end()
        return RolloutReturn(num_collected_steps * env.num_envs, num_collected_episodes, continue_training=True)

    def _on_step(self) -> None:
        self.temperature = self.temperature_schedule(self._current_progress_remaining)
        self.logger.record("rollout/temperature", self.temperature)

    def _sample_action(self, learning_starts: int, action_noise=None, n_envs: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Search from the last observations with root noise; remember the search statistics for the replay."""
        assert self._last_obs is not None, "self._last_obs was not set"
        searched = search_step(self.policy, self._last_obs, self.temperature, self.on_nonfinite, self.num_timesteps)
        self._last_search = searched
        self.logger.record_mean("search/root_value", float(searched.root_values.mean()))
        self.logger.record_mean("search/policy_target_entropy", float(policy_entropy(searched.policy_target).mean()))
        return searched.actions, searched.actions

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: Union[np.ndarray, dict[str, np.ndarray]],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Store the searched step: observation, action, reward, policy target, root value, how it ended."""
        if self._vec_normalize_env is not None:
            new_obs_ = self._vec_normalize_env.get_original_obs()
        else:
            self._last_original_obs, new_obs_ = self._last_obs, new_obs
        transition = make_transition(self.policy, self._last_original_obs, self._last_search, reward, dones, infos,
                                     self.on_nonfinite, self.num_timesteps)  # fmt: skip
        self.replay_buffer.add(*transition, stored_at_update=self._n_updates)
        self._last_obs = new_obs
        if self._vec_normalize_env is not None:
            self._last_original_obs = new_obs_

    # --- training -----------------------------------------------------------------------------------

    def train(self, gradient_steps: int, batch_size: int = 128) -> None:
        """``replay_ratio`` gradient steps per env step; ``gradient_steps`` is the number of env steps just collected."""
        self._pending_gradient_steps += self.replay_ratio * gradient_steps
        num_steps = int(self._pending_gradient_steps)
        self._pending_gradient_steps -= num_steps
        if num_steps == 0:
            return
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        beta = self.prioritized_replay_beta + (1.0 - self.prioritized_replay_beta) * (1.0 - self._current_progress_remaining)
        totals: dict[str, float] = {}
        for _ in range(num_steps):
            sample = self.replay_buffer.sample(
                batch_size, self.num_unroll_steps, self.td_steps, beta, self.replay_rng,
                with_next_observations=self.consistency_loss_coef > 0,
                with_bootstrap_observations=self.target_policy is not None and self.reanalyse_ratio < 1,
            )  # fmt: skip
            sample, reanalysed = self._reanalyse(sample)
            for key, value in {**reanalysed, **self._gradient_step(sample)}.items():
                totals[key] = totals.get(key, 0.0) + value
            self._n_updates += 1
            if self.target_policy is not None and self._n_updates % self.target_update_interval == 0:
                self.target_policy.load_state_dict(self.policy.state_dict())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/beta", beta)
        for key, value in totals.items():
            self.logger.record(f"train/{key}", value / num_steps)

    def _reanalyse(self, sample: ReplaySample) -> tuple[ReplaySample, dict[str, float]]:
        """The batch with fresh targets for ``reanalyse_ratio`` of its unrolls, and what to log (the time it took, in
        milliseconds, how far the targets moved; see :mod:`sb3_muzero.muzero.reanalyse`)."""
        if self.reanalyse_ratio == 0:
            return sample, {}
        start = time.perf_counter()
        sample, stats = reanalyse(
            sample, self.replay_buffer, self.policy, self.target_policy,
            lambda observations: obs_as_tensor(self._normalize_observations(observations), self.device),
            ratio=self.reanalyse_ratio, td_steps=self.td_steps, age_per_td_step=self.reanalyse_age_per_td_step,
            update=self._n_updates, rng=self.replay_rng, noise_rng=self.reanalyse_rng if self.reanalyse_noise else None,
        )  # fmt: skip
        return sample, {**stats, "reanalyse_ms": (time.perf_counter() - start) * 1e3}

    def _gradient_step(self, sample: ReplaySample) -> dict[str, float]:
        """One update on a batch of K-step unrolls, as in the paper's ``update_weights``; returns the losses."""
        with self._autocast():
            losses = self._losses(sample)
        loss, weights = losses.total, losses.weights
        self.policy.optimizer.zero_grad()
        loss.backward()
        gradient_norm = th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        if not th.isfinite(gradient_norm):
            self.policy.optimizer.zero_grad()
            cause = f"its loss is {loss.item():.4g}, its gradients not finite"
            raise self._refused_update(sample, losses.value_targets_array, cause)
        self.policy.optimizer.step()

        # Priorities: how far the stored search value was from the value target (MuZero appendix G).
        value_target_now = losses.value_targets_array[:, 0]
        self.replay_buffer.update_priorities(sample.slots, sample.root_values - value_target_now)
        return {
            "loss": loss.item(),
            "value_loss": (weights * losses.value).mean().item(),
            "reward_loss": (weights * losses.reward).mean().item(),
            "policy_loss": (weights * losses.policy).mean().item(),
            "consistency_loss": (weights * losses.consistency).mean().item(),
            "value_error": (losses.predicted_value - losses.value_targets[:, 0]).abs().mean().item(),
        }

    def _losses(self, sample: ReplaySample) -> UpdateLosses:
        """The forward passes of one update, and its losses."""
        observations, next_observations = self._training_observations(sample)
        to_tensor = lambda array: th.as_tensor(array, device=self.device)  # noqa: E731
        value_targets_array = self._value_targets(sample)
        if not np.isfinite(value_targets_array).all():
            raise self._refused_update(sample, value_targets_array, "its value targets are not finite")
        value_targets = to_tensor(value_targets_array)
        value_mask, policy_mask = to_tensor(sample.value_mask), to_tensor(sample.policy_mask)
        policy_targets, actions = self._smoothed(to_tensor(sample.policy_targets)), to_tensor(sample.actions)
        reward_targets, reward_mask = to_tensor(sample.reward_targets), to_tensor(sample.reward_mask)

        # Initial step: the representation of the observation, then the prediction.
        latent, policy_logits, value_logits = self.policy.initial_inference(observations)
        value_loss = self.policy.head_loss(value_logits, value_targets[:, 0]) * value_mask[:, 0]
        policy_loss = cross_entropy(policy_logits, policy_targets[:, 0]) * policy_mask[:, 0]
        reward_loss = th.zeros_like(value_loss)
        consistency_loss = th.zeros_like(value_loss)
        predicted_value = self.policy.to_scalar(value_logits.detach())
        encoded_next = self._encode(next_observations) if next_observations is not None else None

        # Recurrent steps: the dynamics follow the stored actions; each step's loss is scaled by 1/K and the
        # gradient entering the dynamics by 1/2.
        scale = 1.0 / self.num_unroll_steps
        for k in range(1, self.num_unroll_steps + 1):
            latent = scale_gradient(latent, 0.5)
            latent, reward_logits, policy_logits, value_logits = self.policy.recurrent_inference(latent, actions[:, k - 1])
            value_loss = value_loss + scale * self.policy.head_loss(value_logits, value_targets[:, k]) * value_mask[:, k]
            reward_loss = (
                reward_loss + scale * self.policy.head_loss(reward_logits, reward_targets[:, k - 1]) * reward_mask[:, k - 1]
            )
            policy_loss = policy_loss + scale * cross_entropy(policy_logits, policy_targets[:, k]) * policy_mask[:, k]
            if encoded_next is not None:
                next_mask = to_tensor(sample.next_observation_mask[:, k - 1])
                consistency_loss = (
                    consistency_loss + scale * self.policy.consistency_loss(latent, encoded_next[k - 1]) * next_mask
                )

        weights = to_tensor(sample.weights)
        per_sample = (
            self.value_loss_coef * value_loss
            + self.reward_loss_coef * reward_loss
            + self.policy_loss_coef * policy_loss
            + self.consistency_loss_coef * consistency_loss
        )
        loss = (weights * per_sample).mean()
        return UpdateLosses(value_loss, reward_loss, policy_loss, consistency_loss, weights, loss, value_targets_array,
                            value_targets, predicted_value)  # fmt: skip

    def _smoothed(self, policy_targets: th.Tensor) -> th.Tensor:
        """The policy targets [B, K+1, A] mixed with the uniform distribution by ``policy_target_smoothing`` (rows of
        zeros, the masked unroll steps, stay zero)."""
        if self.policy_target_smoothing == 0:
            return policy_targets
        row_sums = policy_targets.sum(dim=-1, keepdim=True)
        uniform = row_sums / policy_targets.shape[-1]
        return (1.0 - self.policy_target_smoothing) * policy_targets + self.policy_target_smoothing * uniform

    def _refused_update(self, sample: ReplaySample, value_targets: np.ndarray, cause: str) -> FloatingPointError:
        """The error for update ``_n_updates + 1``, which would make the parameters or priorities NaN or infinite
        (``cause`` says how), with the sizes that usually cause it."""
        largest_reward, largest_value = float(np.abs(sample.reward_targets).max()), float(np.abs(value_targets).max())
        representable = ""
        if self.policy.value_representation == "categorical":
            limit = float(h_inverse(th.tensor(float(self.policy.support_size), dtype=th.float64)))
            representable = (
                f"; the value and reward supports represent up to +-{limit:.4g} (support_size={self.policy.support_size})"
            )
        return FloatingPointError(
            f"Update {self._n_updates + 1} would make the parameters or priorities NaN or infinite ({cause}), so it was not "
            f"applied. Its batch has rewards up to {largest_reward:.4g} and value targets up to {largest_value:.4g} in "
            f"magnitude{representable}: rewards this large overflow the float32 arithmetic of the targets and losses. "
            "Scale or clip the env's rewards (e.g. a gymnasium TransformReward wrapper)."
        )

    def _training_observations(self, sample: ReplaySample) -> tuple[PyTorchObs, Optional[PyTorchObs]]:
        """The sampled observations [B, ...] and, for the consistency loss, the next ones time-major [K, B, ...], as
        tensors (normalized by VecNormalize if the env has one; augmented together if augmentation is on)."""
        observations = obs_as_tensor(self._normalize_observations(sample.observations), self.device)
        next_observations = None
        if self.consistency_loss_coef > 0:
            next_batch_major = obs_as_tensor(self._normalize_observations(sample.next_observations), self.device)
            next_observations = map_observations(next_batch_major, lambda tensor: tensor.transpose(0, 1))
        if self.augmentation:  # Box images only: tensors
            sequence = observations.unsqueeze(0)
            if next_observations is not None:
                sequence = th.cat([sequence, next_observations])  # [1 + K, B, C, H, W], contiguous
            sequence = augment(sequence, self.augmentation, dtype=computation_dtype(self.device.type))
            observations, next_observations = sequence[0], (sequence[1:] if next_observations is not None else None)
        return observations, next_observations

    def _encode(self, next_observations: PyTorchObs) -> list[th.Tensor]:
        """The latents (without gradient) of observations [K, B, ...] (or a dict of those), as K tensors [B, ...]."""
        first = next(iter(next_observations.values())) if isinstance(next_observations, dict) else next_observations
        steps, batch = first.shape[:2]
        flat = map_observations(next_observations, lambda tensor: tensor.reshape(steps * batch, *tensor.shape[2:]))
        with th.no_grad():
            latents = self.policy.represent(flat)
        return list(latents.view(steps, batch, *latents.shape[1:]).unbind(0))

    def _value_targets(self, sample: ReplaySample) -> np.ndarray:
        """[B, K+1] n-step value targets, bootstrapped from the target network when there is one."""
        if self.target_policy is None:
            return sample.value_targets
        bootstrap_value = sample.bootstrap_value.copy()
        stored = sample.bootstrap_slot >= 0
        if stored.any():
            if sample.bootstrap_observations is None:
                raise ValueError("The target network bootstraps from observations: sample(with_bootstrap_observations=True)")
            tensor = obs_as_tensor(self._normalize_observations(sample.bootstrap_observations), self.device)
            bootstrap_value[stored] = to_numpy(self.target_policy.value(tensor))
        return sample.value_partial + sample.bootstrap_discount * bootstrap_value

    def _normalize_observations(self, observations):
        if self._vec_normalize_env is None:
            return observations
        return self._vec_normalize_env.normalize_obs(observations)


def map_observations(observations: PyTorchObs, function: Callable[[th.Tensor], th.Tensor]) -> PyTorchObs:
    """``function`` applied to a tensor of observations, or to each part of a dict of them."""
    if isinstance(observations, dict):
        return {key: function(value) for key, value in observations.items()}
    return function(observations)


def bfloat16_autocast_available(device: th.device) -> bool:
    """Whether ``torch.autocast`` with bfloat16 runs on ``device`` (what ``mixed_precision`` needs)."""
    if not th.amp.is_autocast_available(device.type):
        return False
    return device.type != "cuda" or th.cuda.is_bf16_supported()


def warn_if_no_gpu(device: Union[th.device, str]) -> None:
    """Warn when ``device`` asks for a GPU that torch does not see (SB3 then runs on the CPU without a word)."""
    if device != "auto" and th.device(device).type == "cuda" and not th.cuda.is_available():
        warnings.warn(
            f"device={str(device)!r} asks for a GPU, but torch sees none (torch.cuda.is_available() is False): "
            "MuZero runs on the CPU",
            stacklevel=3,
        )


def detect_frame_stack(env: Optional[VecEnv]) -> int:
    """How many frames the env stacks along the first axis of its observations (1 if it does not stack).

    Knows SB3's ``VecFrameStack`` (channel-first, or channel-last under the ``VecTransposeImage`` SB3 adds for
    image observations; over Dict observations the stacks are stored whole) and envs that say so with a
    ``frame_stack`` attribute.
    """
    transposed = False
    while env is not None:
        if isinstance(env, VecFrameStack):
            channels_first = getattr(env.stacked_obs, "channels_first", None)  # None: Dict observations, stacked whole
            return env.stacked_obs.n_stack if channels_first or (channels_first is not None and transposed) else 1
        transposed = transposed or isinstance(env, VecTransposeImage)
        if not isinstance(env, VecEnvWrapper):
            frame_stack = getattr(env, "frame_stack", 1)
            return frame_stack if isinstance(frame_stack, int) else 1
        env = env.venv
    return 1

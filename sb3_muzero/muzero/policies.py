"""MuZero policies: representation h, dynamics g and prediction f, and the batched search that acts with them."""

import json
import pickle
from typing import Any, Optional

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
    create_mlp,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.common.utils import ConstantSchedule, get_device
from torch import nn

from sb3_muzero.common.files import CorruptFileError, atomic_write, check_zip_archive
from sb3_muzero.common.legacy_pickle import RefusedPickle, restricted_pickle_module
from sb3_muzero.common.numbers import is_int
from sb3_muzero.common.plain_data import UNSAFE_HINT, from_plain, plain_or_pickled
from sb3_muzero.mcts import RecurrentOutput, RootInput, SearchResult, SearchSettings, search
from sb3_muzero.muzero.latent import scale_latent
from sb3_muzero.muzero.losses import cross_entropy
from sb3_muzero.muzero.residual import ENCODERS, ResidualDynamics, ResidualPrediction
from sb3_muzero.muzero.support import at_least_float32, h, h_inverse, scalar_to_support, support_to_scalar

VALUE_REPRESENTATIONS = ("categorical", "scalar")
PLAIN_ARGUMENTS = "plain_data"  # the constructor arguments in a policy file, as plain JSON
# Values and rewards beyond h^-1(support_size) are clipped to the support; MuZero's Atari network uses 300.
MAX_SUPPORT_SIZE = 10_000


def computation_dtype(device_type: str) -> th.dtype:
    """The float type inputs are computed in on ``device_type``: the lower precision of an enclosing
    ``torch.autocast`` (what its first layer would cast them to), else float32."""
    return th.get_autocast_dtype(device_type) if th.is_autocast_enabled(device_type) else th.float32


def support_size_message(support_size: int) -> str:
    """Why ``support_size`` is refused, with the memory its distributions would take."""
    bins = 2 * support_size + 1
    megabytes = bins * 4 / 2**20
    covered = float(h_inverse(th.tensor(float(MAX_SUPPORT_SIZE), dtype=th.float64)))
    return (
        f"support_size must be at most {MAX_SUPPORT_SIZE} (which covers values up to +-{covered:.3g}), got {support_size}: "
        f"each value and reward distribution would have {bins:,} bins ({megabytes:.1f} MiB in float32), and training "
        f"holds 2 x (num_unroll_steps + 1) x batch_size of them with their gradients (e.g. "
        f"{3 * 2 * 6 * 128 * megabytes / 1024:.1f} GiB for 5 unroll steps and a batch of 128)"
    )


class MlpDynamics(nn.Module):
    """g: (latent [B, L], action [B]) -> (next latent [B, L], reward logits [B, R]); actions one-hot encoded."""

    def __init__(
        self, latent_dim: int, num_actions: int, net_arch: list[int], reward_dim: int, activation_fn: type[nn.Module]
    ):
        super().__init__()
        self.num_actions = num_actions
        self.trunk = nn.Sequential(*create_mlp(latent_dim + num_actions, latent_dim, net_arch, activation_fn))
        self.reward_head = nn.Sequential(*create_mlp(latent_dim, reward_dim, net_arch[-1:], activation_fn))

    def forward(self, latent: th.Tensor, action: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        encoded = nn.functional.one_hot(action.long(), self.num_actions).to(latent.dtype)
        next_latent = scale_latent(self.trunk(th.cat([latent, encoded], dim=1)))
        return next_latent, self.reward_head(next_latent)


class MlpPrediction(nn.Module):
    """f: latent [B, L] -> (policy logits [B, A], value logits [B, V])."""

    def __init__(self, latent_dim: int, num_actions: int, net_arch: list[int], value_dim: int, activation_fn: type[nn.Module]):
        super().__init__()
        self.trunk = nn.Sequential(*create_mlp(latent_dim, -1, net_arch, activation_fn))
        hidden = net_arch[-1] if net_arch else latent_dim
        self.policy_head = nn.Linear(hidden, num_actions)
        self.value_head = nn.Linear(hidden, value_dim)

    def forward(self, latent: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        hidden = self.trunk(latent)
        return self.policy_head(hidden), self.value_head(hidden)


class Projection(nn.Module):
    """EfficientZero's projection of latents [B, L] to [B, P], with a predictor head on the online branch."""

    def __init__(self, latent_dim: int, projection_dim: int):
        super().__init__()
        hidden = 2 * projection_dim

        def mlp(in_dim: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, projection_dim)
            )

        self.project = mlp(latent_dim)
        self.predict = mlp(projection_dim)

    def forward(self, latent: th.Tensor, with_predictor: bool) -> th.Tensor:
        projected = self.project(latent)
        return self.predict(projected) if with_predictor else projected


class MuZeroPolicy(BasePolicy):
    """The three MuZero networks and the search that turns them into a policy.

    :param observation_space: Observation space
    :param action_space: Discrete action space
    :param lr_schedule: Learning rate schedule (``lr_schedule(1)`` is the initial rate)
    :param net_arch: hidden layer sizes, an int list shared by the three networks or a dict with keys
        ``representation``, ``dynamics`` and ``prediction``
    :param latent_dim: size of the latent state
    :param activation_fn: Activation function
    :param support_size: values and rewards are distributions over ``-support_size..support_size`` of ``h(x)``
    :param value_representation: "categorical" (MuZero's distributions) or "scalar" (one output in ``h`` space,
        squared error)
    :param projection_dim: size of the projection used by the self-supervised consistency loss (EfficientZero);
        0 builds no projection (the algorithm sets it when the loss is on)
    :param search_settings: how to search (set by the algorithm)
    :param features_extractor_class: Features extractor to use
    :param features_extractor_kwargs: Keyword arguments to pass to the features extractor
    :param normalize_images: Whether to divide images by 255
    :param optimizer_class: The optimizer to use
    :param optimizer_kwargs: Additional keyword arguments, excluding the learning rate, to pass to the optimizer
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        net_arch: Optional[list[int] | dict[str, list[int]]] = None,
        latent_dim: int = 64,
        activation_fn: type[nn.Module] = nn.ReLU,
        support_size: int = 20,
        value_representation: str = "categorical",
        projection_dim: int = 0,
        search_settings: Optional[SearchSettings | dict[str, Any]] = None,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: Optional[dict[str, Any]] = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: Optional[dict[str, Any]] = None,
    ):
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            normalize_images=normalize_images,
        )
        if value_representation not in VALUE_REPRESENTATIONS:
            raise ValueError(f"Unknown value_representation {value_representation!r}; supported: {VALUE_REPRESENTATIONS}")
        if not is_int(support_size) or support_size < 1:
            raise ValueError(f"support_size must be an integer >= 1, got {support_size!r}")
        if support_size > MAX_SUPPORT_SIZE:
            raise ValueError(support_size_message(support_size))
        if not is_int(latent_dim) or latent_dim < 1:
            raise ValueError(f"latent_dim must be an integer >= 1, got {latent_dim!r}")
        self.net_arch = net_arch
        self.latent_dim = latent_dim
        self.activation_fn = activation_fn
        self.support_size = support_size
        self.value_representation = value_representation
        self.projection_dim = projection_dim
        if isinstance(search_settings, dict):
            search_settings = SearchSettings.from_dict(search_settings)
        self.search_settings = search_settings or SearchSettings()
        self.search_rng = np.random.default_rng()
        self._build(lr_schedule)

    # --- networks --------------------------------------------------------------------------------------

    def _layer_sizes(self) -> dict[str, list[int]]:
        sizes = self._named_layer_sizes()
        for name, layers in sizes.items():
            if not all(is_int(size) and size >= 1 for size in layers):
                raise ValueError(f"net_arch sizes must be integers >= 1, got {layers} for the {name} network")
        return sizes

    def _named_layer_sizes(self) -> dict[str, list[int]]:
        if self.net_arch is None:
            return {
                name: [64] if self.features_extractor_class == NatureCNN else [128]
                for name in ("representation", "dynamics", "prediction")
            }
        if isinstance(self.net_arch, dict):
            missing = {"representation", "dynamics", "prediction"} - set(self.net_arch)
            if missing:
                raise ValueError(
                    f"net_arch dict needs the keys representation, dynamics and prediction; missing {sorted(missing)}"
                )
            return {name: list(self.net_arch[name]) for name in ("representation", "dynamics", "prediction")}
        return {name: list(self.net_arch) for name in ("representation", "dynamics", "prediction")}

    @property
    def num_actions(self) -> int:
        return int(self.action_space.n)

    @property
    def distribution_dim(self) -> int:
        """Outputs of the value and reward heads."""
        return 2 * self.support_size + 1 if self.value_representation == "categorical" else 1

    def _build(self, lr_schedule: Schedule) -> None:
        """Create the representation, dynamics and prediction networks, the projection and the optimizer."""
        self.features_extractor = self.make_features_extractor()
        latent_size = self._make_networks()
        if self.projection_dim > 0:
            self.projection = Projection(latent_size, self.projection_dim)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]

    def _make_networks(self) -> int:
        """Set ``representation`` (features -> latent), ``dynamics`` and ``prediction``; return the latent's size."""
        sizes = self._layer_sizes()
        features_dim = self.features_extractor.features_dim
        self.representation = nn.Sequential(
            *create_mlp(features_dim, self.latent_dim, sizes["representation"], self.activation_fn)
        )
        self.dynamics = MlpDynamics(
            self.latent_dim, self.num_actions, sizes["dynamics"], self.distribution_dim, self.activation_fn
        )
        self.prediction = MlpPrediction(
            self.latent_dim, self.num_actions, sizes["prediction"], self.distribution_dim, self.activation_fn
        )
        return self.latent_dim

    def extract_features(self, obs: PyTorchObs, features_extractor: BaseFeaturesExtractor) -> th.Tensor:
        """SB3's ``extract_features``; images are divided by 255 as float32, or straight in the lower precision of an
        enclosing ``torch.autocast`` (which the first layer would cast them to), in one new tensor."""
        if isinstance(obs, th.Tensor) and self.normalize_images and is_image_space(self.observation_space):
            return features_extractor(obs.to(computation_dtype(obs.device.type), copy=True).div_(255.0))
        return super().extract_features(obs, features_extractor)

    def represent(self, obs: PyTorchObs) -> th.Tensor:
        """h: observations -> latent states [B, ...] scaled to [0, 1]."""
        return scale_latent(self.representation(self.extract_features(obs, self.features_extractor)))

    def initial_inference(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """Observations -> (latent [B, L], policy logits [B, A], value logits [B, V])."""
        latent = self.represent(obs)
        policy_logits, value_logits = self.prediction(latent)
        return latent, policy_logits, value_logits

    def recurrent_inference(self, latent: th.Tensor, action: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        """(latent [B, L], action [B]) -> (next latent [B, L], reward logits [B, V], policy logits [B, A],
        value logits [B, V])."""
        next_latent, reward_logits = self.dynamics(latent, action)
        policy_logits, value_logits = self.prediction(next_latent)
        return next_latent, reward_logits, policy_logits, value_logits

    def consistency_loss(self, predicted_latent: th.Tensor, encoded_latent: th.Tensor) -> th.Tensor:
        """Per-sample negative cosine similarity between the projected, predicted latents [B, ...] of the dynamics
        and the projected latents [B, ...] of the real observations, the latter without gradient (SimSiam)."""
        prediction = self.projection(predicted_latent.flatten(1), with_predictor=True)
        with th.no_grad():
            target = self.projection(encoded_latent.flatten(1), with_predictor=False)
        return -nn.functional.cosine_similarity(prediction.float(), target.float(), dim=-1)

    def to_scalar(self, outputs: th.Tensor) -> th.Tensor:
        """Value or reward head outputs [B, V] -> scalars [B] (float32; float64 for float64 outputs)."""
        if self.value_representation == "categorical":
            return support_to_scalar(outputs, self.support_size)
        return h_inverse(at_least_float32(outputs.squeeze(-1)))

    def head_loss(self, outputs: th.Tensor, targets: th.Tensor) -> th.Tensor:
        """Per-sample loss of value or reward head outputs [B, V] against scalar targets [B]: cross-entropy with the
        two-hot targets, or squared error in ``h`` space."""
        if self.value_representation == "categorical":
            return cross_entropy(outputs, scalar_to_support(targets, self.support_size))
        return (outputs.squeeze(-1).to(targets.dtype) - h(targets)) ** 2

    # --- acting ----------------------------------------------------------------------------------------

    @th.no_grad()
    def value(self, obs: PyTorchObs) -> th.Tensor:
        """The predicted value [B] of observations (no search)."""
        return self.to_scalar(self.initial_inference(obs)[2])

    @th.no_grad()
    def search_root(self, obs: PyTorchObs) -> RootInput:
        """The search's root for every observation of the batch: policy logits [B, A], value [B], latent [B, ...]."""
        latent, policy_logits, value_logits = self.initial_inference(obs)
        return RootInput(policy_logits, self.to_scalar(value_logits), latent)

    def search_step(self, latent: th.Tensor, action) -> RecurrentOutput:
        """The search's model step (its ``recurrent_fn``): latent [B, ...] and action [B] (a tensor, or a numpy array)
        -> reward [B], value [B], policy logits [B, A], next latent [B, ...]. Call it under ``th.no_grad()`` (the
        search does), unless gradients are wanted."""
        action = th.as_tensor(action, device=latent.device)
        next_latent, reward_logits, policy_logits, value_logits = self.recurrent_inference(latent, action)
        return RecurrentOutput(self.to_scalar(reward_logits), self.to_scalar(value_logits), policy_logits, next_latent)

    @th.no_grad()
    def run_search(self, obs: PyTorchObs, temperature: float, add_noise: bool) -> SearchResult:
        """Search from every observation of the batch and choose actions by visit-count ``temperature``."""
        return search(self.search_root(obs), self.search_step, self.search_settings, rng=self.search_rng,
                      temperature=temperature, add_noise=add_noise)  # fmt: skip

    def forward(self, obs: PyTorchObs, deterministic: bool = True) -> th.Tensor:
        return self._predict(obs, deterministic=deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = True) -> th.Tensor:
        """Search without noise; the most visited action if deterministic, else a sample from the visit counts."""
        result = self.run_search(observation, temperature=0.0 if deterministic else 1.0, add_noise=False)
        return th.as_tensor(result.action, device=self.device)

    def save(self, path: str) -> None:
        """SB3's ``policy.save`` with the constructor arguments as plain data (no pickle), written to a temporary file
        renamed into place (never half-written)."""
        arguments = {name: plain_or_pickled(name, value) for name, value in self._get_constructor_parameters().items()}
        with atomic_write(path) as file:
            th.save({"state_dict": self.state_dict(), PLAIN_ARGUMENTS: json.dumps(arguments)}, file)

    @classmethod
    def load(cls, path: str, device: th.device | str = "auto", allow_unsafe_pickle: bool = False) -> "MuZeroPolicy":
        """SB3's ``policy.load``, after checking that the file is complete (torch's format is a zip archive), without
        running anything from it: tensors are read with ``weights_only=True``, the constructor arguments from their
        plain description (or, in files of earlier versions, with the allowlist of
        :mod:`sb3_muzero.common.legacy_pickle`).

        :param allow_unsafe_pickle: also read arguments the file pickles beyond that allowlist (unpickling can run any
            code the file carries: only for files you trust)
        :raise CorruptFileError: the file is truncated or damaged
        :raise ValueError: the file holds a pickle and ``allow_unsafe_pickle`` is False
        """
        check_zip_archive(path, "", (), "policy")
        device = get_device(device)
        state_dict, arguments = _read_policy_file(path, device, allow_unsafe_pickle)
        policy = cls(**arguments)
        policy.load_state_dict(state_dict)
        policy.to(device)
        return policy

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                net_arch=self.net_arch,
                latent_dim=self.latent_dim,
                activation_fn=self.activation_fn,
                support_size=self.support_size,
                value_representation=self.value_representation,
                projection_dim=self.projection_dim,
                search_settings=self.search_settings.as_dict(),
                lr_schedule=ConstantSchedule(0.0),  # a policy file has no optimizer state: SB3's dummy schedule
                optimizer_class=self.optimizer_class,
                optimizer_kwargs=self.optimizer_kwargs,
                features_extractor_class=self.features_extractor_class,
                features_extractor_kwargs=self.features_extractor_kwargs,
            )
        )
        return data


def _read_policy_file(path: str, device: th.device, allow_unsafe_pickle: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state dict, constructor arguments) of a policy file, of this version or an earlier one."""
    try:
        saved = th.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:  # a file of an earlier version: SB3's, with the arguments pickled
        saved = _read_pickled_policy_file(path, device, allow_unsafe_pickle)
        return saved["state_dict"], saved["data"]
    if not isinstance(saved, dict) or "state_dict" not in saved or PLAIN_ARGUMENTS not in saved:
        raise CorruptFileError(f"Cannot read policy '{path}': it is no policy file (no state_dict and {PLAIN_ARGUMENTS})")
    try:
        arguments = from_plain(json.loads(saved[PLAIN_ARGUMENTS]), allow_unsafe_pickle)
    except CorruptFileError as error:
        raise CorruptFileError(f"Cannot read policy '{path}': its arguments are malformed: {error}") from error
    except (TypeError, ValueError) as error:
        raise ValueError(f"Cannot load policy '{path}': {error}") from error
    return saved["state_dict"], arguments


def _read_pickled_policy_file(path: str, device: th.device, allow_unsafe_pickle: bool) -> dict[str, Any]:
    try:
        return th.load(path, map_location=device, weights_only=False, pickle_module=restricted_pickle_module)
    except RefusedPickle as refused:
        if not allow_unsafe_pickle:
            raise ValueError(
                f"Cannot load policy '{path}': it is a file of SB3 or an earlier sb3-muzero whose pickled arguments hold "
                f"{refused}, which loading does not build by default; {UNSAFE_HINT}"
            ) from refused
    return th.load(path, map_location=device, weights_only=False)


MlpPolicy = MuZeroPolicy


class CnnPolicy(MuZeroPolicy):
    """MuZero's residual Atari network (:mod:`sb3_muzero.muzero.residual`) for image observations.

    The representation is the features extractor: ``encoder="residual"``
    (:class:`~sb3_muzero.muzero.residual.AtariEncoder`, the paper's network: 84x84 frames -> a 6x6 latent, small
    frames halved fewer times) or ``encoder="strided"`` (:class:`~sb3_muzero.muzero.residual.StridedEncoder`,
    DQN's strided convolutions -> a 7x7 latent, sized for CPUs), unless ``features_extractor_class`` names
    another. Observations are channel-first [C, H, W], or channel-last [H, W, C] as SB3 detects it, which the
    encoders transpose. Dynamics and prediction are residual towers with small heads.

    :param channels: channels of the latent
    :param num_blocks: residual blocks per stage of the representation, and in the dynamics and the prediction
    :param normalization: "batch", "layer" or "none"
    :param head_channels: channels the heads reduce the latent to
    :param head_hidden: hidden layer sizes of the heads' MLPs
    :param encoder: "residual" or "strided"
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        channels: int = 64,
        num_blocks: int = 1,
        normalization: str = "batch",
        head_channels: int = 16,
        head_hidden: Optional[list[int]] = None,
        encoder: str = "residual",
        **kwargs,
    ):
        if encoder not in ENCODERS:
            raise ValueError(f"Unknown encoder {encoder!r}; supported: {', '.join(ENCODERS)}")
        self.channels, self.num_blocks, self.normalization = channels, num_blocks, normalization
        self.head_channels, self.head_hidden = head_channels, list(head_hidden or [32])
        self.encoder = encoder
        kwargs.setdefault("features_extractor_class", ENCODERS[encoder])
        if kwargs["features_extractor_class"] is ENCODERS[encoder]:
            encoder_kwargs = dict(channels=channels, num_blocks=num_blocks, normalization=normalization)
            kwargs["features_extractor_kwargs"] = {**encoder_kwargs, **(kwargs.get("features_extractor_kwargs") or {})}
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _make_networks(self) -> int:
        latent_shape = getattr(self.features_extractor, "latent_shape", None)
        if latent_shape is None:
            raise ValueError(
                f"CnnPolicy needs a features extractor that outputs a spatial latent (with a latent_shape attribute, like "
                f"AtariEncoder), got {self.features_extractor_class.__name__}; use MlpPolicy for flat features"
            )
        self.representation = nn.Identity()
        heads = dict(head_channels=self.head_channels, head_hidden=self.head_hidden)
        self.dynamics = ResidualDynamics(latent_shape, self.num_actions, self.num_blocks, self.normalization,
                                         self.distribution_dim, **heads)  # fmt: skip
        self.prediction = ResidualPrediction(latent_shape, self.num_actions, self.num_blocks, self.normalization,
                                             self.distribution_dim, **heads)  # fmt: skip
        return int(np.prod(latent_shape))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(channels=self.channels, num_blocks=self.num_blocks, normalization=self.normalization,
                    head_channels=self.head_channels, head_hidden=self.head_hidden, encoder=self.encoder)  # fmt: skip
        return data


class MultiInputPolicy(MuZeroPolicy):
    """MuZero policy for Dict observations of Box parts: SB3's CombinedExtractor before the representation network."""

    def __init__(self, observation_space: spaces.Dict, action_space: spaces.Discrete, lr_schedule: Schedule, **kwargs):
        kwargs.setdefault("features_extractor_class", CombinedExtractor)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)


__all__ = ["CnnPolicy", "MlpPolicy", "MuZeroPolicy", "MultiInputPolicy", "SearchSettings"]

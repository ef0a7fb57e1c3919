"""Networks for image observations: MuZero's Atari architecture (appendix E), scaled for 84x84 inputs.

Two representations (``encoder`` of :class:`~sb3_muzero.muzero.policies.CnnPolicy`):

- ``"residual"`` (:class:`AtariEncoder`, the paper's): downsamples the frame stack to a small spatial latent
  (84x84 -> 6x6) with strided convolutions, residual blocks and average pooling (small frames are halved
  fewer times, to keep at least a 3x3 latent: :func:`halvings_for`);
- ``"strided"`` (:class:`StridedEncoder`, sized for CPUs): DQN's three strided convolutions straight down
  to the latent (84x84 -> 7x7), without the residual blocks at high resolution that cost most of a gradient
  step on a CPU.

The dynamics adds the action as an extra plane and keeps the latent's shape; the heads reduce the channels
with 1x1 convolutions before small MLPs (EfficientZero's layout). Normalisation is batch norm, layer norm
(over channels and space) or none.
"""

from typing import Optional

import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space_channels_first
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from sb3_muzero.muzero.latent import scale_latent

NORMALIZATIONS = ("batch", "layer", "none")


def normalization_layer(kind: str, channels: int) -> nn.Module:
    """Batch norm, layer norm over (channels, height, width) of each sample, or nothing."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"Unknown normalization {kind!r}; supported: {', '.join(NORMALIZATIONS)}")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with normalisation and a skip connection; ``stride=2`` halves the resolution."""

    def __init__(self, in_channels: int, out_channels: int, normalization: str, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.norm1 = normalization_layer(normalization, out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.norm2 = normalization_layer(normalization, out_channels)
        self.skip: Optional[nn.Module] = None
        if stride != 1 or in_channels != out_channels:
            self.skip = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)

    def forward(self, x: th.Tensor) -> th.Tensor:
        out = th.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return th.relu(out + (x if self.skip is None else self.skip(x)))


def residual_tower(channels: int, num_blocks: int, normalization: str) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(channels, channels, normalization) for _ in range(num_blocks)))


MAX_HALVINGS = 4  # MuZero's Atari downsampling: 84x84 -> 6x6
MIN_LATENT_SIZE = 3  # smaller inputs are halved fewer times, so that the latent keeps at least 3x3 positions


def halvings_for(height: int, width: int, max_halvings: int = MAX_HALVINGS, min_size: int = MIN_LATENT_SIZE) -> int:
    """How many times an encoder may halve a ``height x width`` input (each halving rounding up): the most, up to
    ``max_halvings``, that keep both sides at ``min_size`` or more (84x84: 4, to 6x6; 10x10: 2, to 3x3)."""
    halvings = 0
    while halvings < max_halvings and halved(min(height, width), halvings + 1) >= min_size:
        halvings += 1
    return halvings


def halved(size: int, times: int) -> int:
    """``size`` after ``times`` halvings, each rounding up."""
    for _ in range(times):
        size = (size + 1) // 2
    return size


def channel_first_shape(observation_space: spaces.Box) -> tuple[tuple[int, int, int], bool]:
    """((channels, height, width), whether the observations are channel-last) of image observations, the layout
    decided as SB3 decides it (``is_image_space_channels_first``: the smallest axis holds the channels).

    :raise ValueError: the observations are not 3-dimensional
    """
    shape = tuple(getattr(observation_space, "shape", None) or ())
    if len(shape) != 3:
        raise ValueError(f"CnnPolicy needs image observations [C, H, W] (or [H, W, C]), got {observation_space}")
    if is_image_space_channels_first(observation_space):
        return shape, False
    height, width, channels = shape
    return (channels, height, width), True


class AtariEncoder(BaseFeaturesExtractor):
    """The representation network for frame stacks [B, C_in, H, W] -> latent [B, channels, ~H/16, ~W/16].

    Downsampling as in MuZero's Atari network: a stride-2 convolution, a stride-2 residual block,
    residual blocks, two average poolings with residual blocks between; then ``num_blocks`` residual
    blocks at the latent resolution. Inputs too small for four halvings are halved fewer times
    (:func:`halvings_for`): the first halvings keep their stride 2, the others run at stride 1 (the poolings
    are left out), with the same parameters. Channel-last observations [B, H, W, C] (float images, which SB3
    does not transpose) are transposed first.

    :param observation_space: image observations, channel-first (or channel-last)
    :param channels: channels of the latent
    :param num_blocks: residual blocks at each stage
    :param normalization: "batch" or "layer"
    """

    def __init__(self, observation_space: spaces.Box, channels: int = 64, num_blocks: int = 1, normalization: str = "batch"):
        (in_channels, height, width), self.channels_last = channel_first_shape(observation_space)
        halvings = halvings_for(height, width)
        latent_shape = (channels, halved(height, halvings), halved(width, halvings))
        super().__init__(observation_space, features_dim=int(th.tensor(latent_shape).prod()))
        self.latent_shape = latent_shape
        strides = [2 if step < halvings else 1 for step in range(MAX_HALVINGS)]
        half = max(channels // 2, 1)
        self.net = nn.Sequential(
            conv3x3(in_channels, half, stride=strides[0]),
            normalization_layer(normalization, half),
            nn.ReLU(),
            ResidualBlock(half, channels, normalization, stride=strides[1]),
            residual_tower(channels, num_blocks, normalization),
            _pooling(strides[2]),
            residual_tower(channels, num_blocks, normalization),
            _pooling(strides[3]),
            residual_tower(channels, num_blocks, normalization),
        )

    def forward(self, observations: th.Tensor) -> th.Tensor:
        if self.channels_last:
            observations = observations.permute(0, 3, 1, 2)
        return self.net(observations)


def _pooling(stride: int) -> nn.Module:
    """The encoder's average pooling that halves the resolution, or nothing where the input is too small for it."""
    return nn.AvgPool2d(kernel_size=3, stride=2, padding=1) if stride == 2 else nn.Identity()


class StridedEncoder(BaseFeaturesExtractor):
    """The representation sized for CPUs: frame stacks [B, C_in, H, W] -> latent [B, channels, h, w].

    DQN's convolutions (Mnih et al., 2015): 8x8 stride 4, 4x4 stride 2, 3x3 stride 1, each followed by
    normalisation and a ReLU (84x84 -> 7x7), then ``num_blocks`` residual blocks at the latent resolution.

    :param observation_space: image observations of at least 36x36, channel-first (or channel-last, transposed first)
    :param channels: channels of the latent
    :param num_blocks: residual blocks after the convolutions
    :param normalization: "batch", "layer" or "none"
    :param hidden_channels: channels of the first two convolutions
    """

    KERNELS = ((8, 4), (4, 2), (3, 1))  # (kernel size, stride) of each convolution
    MIN_SIZE = 36  # the smallest input the three convolutions keep at least one pixel of

    def __init__(self, observation_space: spaces.Box, channels: int = 32, num_blocks: int = 1, normalization: str = "batch",
                 hidden_channels: tuple[int, int] = (32, 64)):  # fmt: skip
        (in_channels, height, width), self.channels_last = channel_first_shape(observation_space)
        if min(height, width) < self.MIN_SIZE:
            raise ValueError(
                f"encoder='strided' needs frames of at least {self.MIN_SIZE}x{self.MIN_SIZE}, got {height}x{width}; "
                "use encoder='residual' for smaller frames"
            )
        latent_shape = (channels, *(self._output_size(size) for size in (height, width)))
        super().__init__(observation_space, features_dim=int(th.tensor(latent_shape).prod()))
        self.latent_shape = latent_shape
        sizes = (in_channels, *hidden_channels, channels)
        layers: list[nn.Module] = []
        for index, (kernel, stride) in enumerate(self.KERNELS):
            layers.append(nn.Conv2d(sizes[index], sizes[index + 1], kernel_size=kernel, stride=stride, bias=False))
            layers += [normalization_layer(normalization, sizes[index + 1]), nn.ReLU()]
        self.net = nn.Sequential(*layers, residual_tower(channels, num_blocks, normalization))

    @classmethod
    def _output_size(cls, size: int) -> int:
        for kernel, stride in cls.KERNELS:
            size = (size - kernel) // stride + 1
        return size

    def forward(self, observations: th.Tensor) -> th.Tensor:
        if self.channels_last:
            observations = observations.permute(0, 3, 1, 2)
        return self.net(observations)


ENCODERS = {"residual": AtariEncoder, "strided": StridedEncoder}


class Head(nn.Module):
    """1x1 convolution to ``head_channels``, normalisation, then an MLP on the flattened map.  [B, C, H, W] -> [B, out]"""

    def __init__(
        self, latent_shape: tuple[int, int, int], head_channels: int, hidden: list[int], out_dim: int, normalization: str
    ):
        super().__init__()
        channels, height, width = latent_shape
        layers: list[nn.Module] = []
        in_dim = head_channels * height * width
        for size in hidden:
            layers += [nn.Linear(in_dim, size), nn.ReLU()]
            in_dim = size
        self.reduce = nn.Sequential(
            nn.Conv2d(channels, head_channels, kernel_size=1), normalization_layer(normalization, head_channels), nn.ReLU()
        )
        self.mlp = nn.Sequential(*layers, nn.Linear(in_dim, out_dim))

    def forward(self, latent: th.Tensor) -> th.Tensor:
        return self.mlp(self.reduce(latent).flatten(1))


class ResidualDynamics(nn.Module):
    """g: (latent [B, C, H, W], action [B]) -> (next latent [B, C, H, W], reward logits [B, R]).

    The action enters as one extra plane holding ``action / num_actions``.
    """

    def __init__(self, latent_shape, num_actions: int, num_blocks: int, normalization: str, reward_dim: int,
                 head_channels: int, head_hidden: list[int]):  # fmt: skip
        super().__init__()
        channels = latent_shape[0]
        self.num_actions = num_actions
        self.conv = conv3x3(channels + 1, channels)
        self.norm = normalization_layer(normalization, channels)
        self.tower = residual_tower(channels, num_blocks, normalization)
        self.reward_head = Head(latent_shape, head_channels, head_hidden, reward_dim, normalization)

    def forward(self, latent: th.Tensor, action: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        plane = (action.to(latent.dtype) / self.num_actions).view(-1, 1, 1, 1).expand(-1, 1, *latent.shape[2:])
        x = th.relu(self.norm(self.conv(th.cat([latent, plane], dim=1))) + latent)
        next_latent = scale_latent(self.tower(x))
        return next_latent, self.reward_head(next_latent)


class ResidualPrediction(nn.Module):
    """f: latent [B, C, H, W] -> (policy logits [B, A], value logits [B, V])."""

    def __init__(self, latent_shape, num_actions: int, num_blocks: int, normalization: str, value_dim: int,
                 head_channels: int, head_hidden: list[int]):  # fmt: skip
        super().__init__()
        self.tower = residual_tower(latent_shape[0], num_blocks, normalization)
        self.policy_head = Head(latent_shape, head_channels, head_hidden, num_actions, normalization)
        self.value_head = Head(latent_shape, head_channels, head_hidden, value_dim, normalization)

    def forward(self, latent: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        hidden = self.tower(latent)
        return self.policy_head(hidden), self.value_head(hidden)

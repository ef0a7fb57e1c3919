"""Data augmentation of image observations for training (as EfficientZero does on Atari).

- ``shift``: pad 4 pixels by replicating the border, then crop back at a random offset (DrQ).
- ``intensity``: multiply each sample by ``1 + 0.05 * clip(N(0, 1), -2, 2)``.

One random draw per sample is shared by all the images of that sample (the observation and the
observations that followed it), so the consistency loss compares like with like. Random numbers come
from torch's generator, which the algorithm seeds.
"""

from collections.abc import Sequence

import torch as th
from torch.nn import functional as F

AUGMENTATIONS = ("shift", "intensity")
SHIFT_PADDING = 4
INTENSITY_SCALE = 0.05


def check_augmentations(names: Sequence[str]) -> tuple[str, ...]:
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"Unknown augmentation(s) {unknown}; supported: {', '.join(AUGMENTATIONS)}")
    return tuple(names)


def augment(images: th.Tensor, names: Sequence[str]) -> th.Tensor:
    """Augment float images [B, T, C, H, W] (T images per sample, augmented alike); returns the same shape."""
    batch, steps, channels, height, width = images.shape
    flat = images.reshape(batch, steps * channels, height, width)
    if "shift" in names:
        flat = _random_shift(flat)
    if "intensity" in names:
        noise = th.randn(batch, 1, 1, 1, device=images.device).clamp(-2.0, 2.0)
        flat = flat * (1.0 + INTENSITY_SCALE * noise)
    return flat.reshape(batch, steps, channels, height, width)


def _random_shift(images: th.Tensor) -> th.Tensor:
    """Replicate-pad [B, C, H, W] by SHIFT_PADDING and crop H x W at a random offset per sample."""
    batch, channels, height, width = images.shape
    padded = F.pad(images, (SHIFT_PADDING,) * 4, mode="replicate")
    offsets = th.randint(0, 2 * SHIFT_PADDING + 1, (batch, 2), device=images.device)
    rows = (offsets[:, 0, None] + th.arange(height, device=images.device)).view(batch, 1, height, 1)
    columns = (offsets[:, 1, None] + th.arange(width, device=images.device)).view(batch, 1, 1, width)
    cropped_rows = padded.gather(2, rows.expand(batch, channels, height, padded.shape[3]))
    return cropped_rows.gather(3, columns.expand(batch, channels, height, width))

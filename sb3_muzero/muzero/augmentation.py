"""Data augmentation of image observations for training (as EfficientZero does on Atari).

- ``shift``: pad 4 pixels by replicating the border, then crop back at a random offset (DrQ).
- ``intensity``: multiply each sample by ``1 + 0.05 * clip(N(0, 1), -2, 2)``.

One random draw per sample is shared by all the images of that sample (the observation and the
observations that followed it), so the consistency loss compares like with like. Random numbers come
from torch's generator, which the algorithm seeds.
"""

from collections.abc import Sequence

import torch as th

AUGMENTATIONS = ("shift", "intensity")
SHIFT_PADDING = 4
INTENSITY_SCALE = 0.05


def check_augmentations(names: Sequence[str]) -> tuple[str, ...]:
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"Unknown augmentation(s) {unknown}; supported: {', '.join(AUGMENTATIONS)}")
    return tuple(names)


def augment(images: th.Tensor, names: Sequence[str]) -> th.Tensor:
    """Augment images [B, T, C, H, W] (T images per sample, augmented alike; uint8 or float); returns the same shape,
    as float when ``intensity`` is on (else in the input's dtype).

    Shifting before the conversion to float moves a quarter of the bytes; the results are the same.
    """
    batch, steps, channels, height, width = images.shape
    flat = images.reshape(batch, steps * channels, height, width)
    if "shift" in names:
        flat = _random_shift(flat)
    if "intensity" in names:
        noise = th.randn(batch, 1, 1, 1, device=images.device).clamp(-2.0, 2.0)
        flat = flat.float() * (1.0 + INTENSITY_SCALE * noise)
    return flat.reshape(batch, steps, channels, height, width)


def _random_shift(images: th.Tensor) -> th.Tensor:
    """Crop [B, C, H, W] at a random offset per sample from the images replicate-padded by SHIFT_PADDING.

    The padding is never built: a padded pixel's row (column) is the image's row clamped to the image, so each
    sample is two ``index_select`` of clamped rows and columns, which works on uint8 and reads each pixel once.
    """
    batch, _, height, width = images.shape
    offsets = th.randint(0, 2 * SHIFT_PADDING + 1, (batch, 2), device=images.device)
    rows = (offsets[:, :1] - SHIFT_PADDING + th.arange(height, device=images.device)).clamp(0, height - 1)  # [B, H]
    columns = (offsets[:, 1:] - SHIFT_PADDING + th.arange(width, device=images.device)).clamp(0, width - 1)  # [B, W]
    cropped = th.empty_like(images)
    for b in range(batch):
        cropped[b] = images[b].index_select(1, rows[b]).index_select(2, columns[b])
    return cropped

"""Data augmentation of image observations for training (as EfficientZero does on Atari).

- ``shift``: pad 4 pixels by replicating the border, then crop back at a random offset (DrQ).
- ``intensity``: multiply each sample by ``1 + 0.05 * clip(N(0, 1), -2, 2)``.

One random draw per sample is shared by all the images of that sample (the observation and the
observations that followed it, time-major: [T, B, C, H, W]), so the consistency loss compares like with
like. Random numbers come from torch's generator, which the algorithm seeds.
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


def augment(images: th.Tensor, names: Sequence[str], dtype: th.dtype = th.float32) -> th.Tensor:
    """Augment images [T, B, C, H, W] (T images per sample b, augmented alike; uint8 or float); returns the same
    shape, as ``dtype`` when ``intensity`` is on (else in the input's dtype).

    Shifting before the conversion to float moves a quarter of the bytes. The results are those of shifting and
    scaling float images.
    """
    batch = images.shape[1]
    if "shift" in names:
        images = _random_shift(images)
    if "intensity" in names:
        noise = th.randn(1, batch, 1, 1, 1, device=images.device).clamp(-2.0, 2.0)
        images = images.to(dtype, copy=True).mul_((1.0 + INTENSITY_SCALE * noise).to(dtype))  # a new tensor, scaled in place
    return images


def _random_shift(images: th.Tensor) -> th.Tensor:
    """Crop [T, B, C, H, W] at a random offset per sample b from the images replicate-padded by SHIFT_PADDING.

    The padding is never built: a padded pixel's row (column) is the image's row clamped to the image, so a
    sample's crop reads pixel ``rows[b, y] * W + columns[b, x]`` of each flattened image: one ``gather`` for the
    whole batch, which works on uint8 and reads each pixel once.
    """
    steps, batch, channels, height, width = images.shape
    offsets = th.randint(0, 2 * SHIFT_PADDING + 1, (batch, 2), device=images.device)
    rows = (offsets[:, :1] - SHIFT_PADDING + th.arange(height, device=images.device)).clamp(0, height - 1)  # [B, H]
    columns = (offsets[:, 1:] - SHIFT_PADDING + th.arange(width, device=images.device)).clamp(0, width - 1)  # [B, W]
    pixels = (rows[:, :, None] * width + columns[:, None, :]).reshape(1, batch, 1, height * width)  # [1, B, 1, H*W]
    flat = images.reshape(steps, batch, channels, height * width)
    shifted = flat.gather(3, pixels.expand(steps, batch, channels, height * width))
    return shifted.reshape(steps, batch, channels, height, width)

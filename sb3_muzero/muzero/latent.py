"""Operations on latent states shared by every MuZero network."""

import torch as th


def scale_latent(latent: th.Tensor) -> th.Tensor:
    """Min-max scale every latent state to [0, 1] over all its features (MuZero appendix G).  [B, ...] -> [B, ...]"""
    flat = latent.flatten(1)
    low = flat.min(dim=1, keepdim=True).values
    high = flat.max(dim=1, keepdim=True).values
    return ((flat - low) / (high - low).clamp_min(1e-5)).view_as(latent)


def scale_gradient(tensor: th.Tensor, scale: float) -> th.Tensor:
    """The identity forward; multiplies the gradient flowing back by ``scale``."""
    return tensor * scale + tensor.detach() * (1 - scale)

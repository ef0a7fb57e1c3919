"""Values and rewards as categorical distributions over an integer support (MuZero appendix F).

A scalar ``x`` is squashed by the invertible ``h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x`` (Pohlen et
al., 2018), then written as a "two-hot" distribution over the integers ``-S..S``: the two atoms around
``h(x)`` share the mass so that the distribution's mean is ``h(x)``. A predicted distribution maps
back to a scalar through its mean and ``h^-1``.
"""

import torch as th

EPSILON = 0.001


def at_least_float32(tensor: th.Tensor) -> th.Tensor:
    """``tensor`` as float32, or as it is if it is float64 (lower precisions, such as autocast's bfloat16, go up)."""
    return tensor if tensor.dtype == th.float64 else tensor.float()


def h(x: th.Tensor) -> th.Tensor:
    """The squashing transform h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x."""
    return th.sign(x) * (th.sqrt(th.abs(x) + 1) - 1) + EPSILON * x


def h_inverse(y: th.Tensor) -> th.Tensor:
    """The exact inverse of :func:`h`."""
    root = (th.sqrt(1 + 4 * EPSILON * (th.abs(y) + 1 + EPSILON)) - 1) / (2 * EPSILON)
    return th.sign(y) * (root**2 - 1)


def scalar_to_support(x: th.Tensor, support_size: int) -> th.Tensor:
    """Two-hot distributions of ``h(x)`` over ``-support_size..support_size``.  ``[...] -> [..., 2S+1]``

    Values beyond the support are clipped to its ends.
    """
    y = h(x).clamp(-support_size, support_size)
    lower = y.floor()
    upper_weight = y - lower
    probabilities = th.zeros(*x.shape, 2 * support_size + 1, dtype=x.dtype, device=x.device)
    lower_index = (lower + support_size).long()
    probabilities.scatter_(-1, lower_index.unsqueeze(-1), (1 - upper_weight).unsqueeze(-1))
    upper_index = (lower_index + 1).clamp(max=2 * support_size)
    probabilities.scatter_add_(-1, upper_index.unsqueeze(-1), upper_weight.unsqueeze(-1))
    return probabilities


def support_to_scalar(logits: th.Tensor, support_size: int) -> th.Tensor:
    """The scalar a categorical prediction stands for: ``h^-1`` of its mean, in float32 (or float64 for float64
    logits, whatever the logits' lower precision).  ``[..., 2S+1] -> [...]``"""
    logits = at_least_float32(logits)
    atoms = th.arange(-support_size, support_size + 1, dtype=logits.dtype, device=logits.device)
    return h_inverse((th.softmax(logits, dim=-1) * atoms).sum(-1))

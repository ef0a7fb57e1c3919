"""Loss terms shared by the networks and the algorithm."""

import torch as th


def cross_entropy(logits: th.Tensor, target_distribution: th.Tensor) -> th.Tensor:
    """Per-sample cross-entropy of logits [B, N] against target distributions [B, N]: ``-sum(p * log softmax(logits))``."""
    return -(target_distribution * th.log_softmax(logits, dim=-1)).sum(-1)

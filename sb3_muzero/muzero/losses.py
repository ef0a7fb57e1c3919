"""Loss terms shared by the networks and the algorithm."""

import torch as th


def cross_entropy(logits: th.Tensor, target_distribution: th.Tensor) -> th.Tensor:
    """Per-sample cross-entropy of logits [B, N] against target distributions [B, N]: ``-sum(p * log softmax(logits))``,
    in the targets' precision (float32 targets and bfloat16 logits of mixed precision: float32)."""
    return -(target_distribution * th.log_softmax(logits.to(target_distribution.dtype), dim=-1)).sum(-1)

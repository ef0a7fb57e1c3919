"""The action a search acts with, from the root visit counts."""

import numpy as np


def choose_action(rng: np.random.Generator, visit_counts: np.ndarray, temperature: float) -> np.ndarray:
    """One action per row from root visit counts.

    :param visit_counts: [B, A] visit counts (each row has at least one visit)
    :param temperature: 0 = most visited action (lowest index on ties), else sample with p ~ N ** (1 / T)
    :return: [B] int64 actions
    """
    if temperature == 0:
        return np.argmax(visit_counts, axis=1).astype(np.int64)
    counts = visit_counts.astype(np.float64)
    weights = visit_weights(counts, counts.max(axis=1, keepdims=True), temperature)
    cumulative = np.cumsum(weights, axis=1)
    threshold = rng.random(visit_counts.shape[0]) * cumulative[:, -1]
    action = (cumulative <= threshold[:, None]).sum(axis=1)
    # A threshold rounded up to the total would pick past the end: take the last visited action then.
    last_visited = visit_counts.shape[1] - 1 - np.argmax(weights[:, ::-1] > 0, axis=1)
    return np.minimum(action, last_visited).astype(np.int64)


def visit_weights(counts: np.ndarray, largest: np.ndarray, temperature: float) -> np.ndarray:
    """Sampling weights ``(counts / largest) ** (1 / temperature)``, proportional to ``counts ** (1 / temperature)``.

    :param counts: float64 visit counts, e.g. [B, A]
    :param largest: float64 largest count of each row, broadcastable to ``counts`` (e.g. [B, 1])
    :param temperature: > 0
    """
    # Raising counts scaled to [0, 1] keeps large 1 / temperature from overflowing.
    return (counts / largest) ** (1.0 / temperature)


def visit_distribution(visit_counts: np.ndarray) -> np.ndarray:
    """PUCT's policy target: [B, A] float32 visit counts divided by their row sums (in float32)."""
    counts = visit_counts.astype(np.float32)
    return counts / counts.sum(axis=1, keepdims=True)

"""Root preparation: the checks of the search's inputs, the legal-action mask and the root noise (PUCT's Dirichlet
noise, Gumbel's Gumbel noise and the rest of what Gumbel's root selection reads)."""

from typing import Optional

import numpy as np

from sb3_muzero.mcts.settings import SearchSettings
from sb3_muzero.mcts.tables import considered_visits_table
from sb3_muzero.mcts.types import GumbelSelection, RootInput


def check_root(root: RootInput, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Refuse roots and temperatures the search does not support; return the root logits [B, A] and value [B] as
    float64 host arrays."""
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    prior_logits = to_numpy(root.prior_logits)
    value = to_numpy(root.value)
    if prior_logits.ndim != 2 or np.issubdtype(prior_logits.dtype, np.integer):
        raise ValueError(
            f"root prior_logits must be float logits of shape [batch, num_actions], got shape {prior_logits.shape}: "
            "the search supports discrete action sets only (continuous actions are not supported)"
        )
    if prior_logits.shape[1] < 1 or prior_logits.shape[0] < 1:
        raise ValueError(f"root prior_logits must have at least one tree and one action, got shape {prior_logits.shape}")
    if value.shape != prior_logits.shape[:1]:
        raise ValueError(f"root value must have shape [batch] = {prior_logits.shape[:1]}, got {value.shape}")
    if not (np.isfinite(prior_logits).all() and np.isfinite(value).all()):
        raise ValueError("root prior_logits and value must be finite (found NaN or inf)")
    return prior_logits.astype(np.float64), value.astype(np.float64)


def to_numpy(array) -> np.ndarray:
    """A host numpy view (or copy) of a numpy array, torch tensor or array-like."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    elif hasattr(array, "get"):  # CuPy
        array = array.get()
    return np.asarray(array)


def legal_mask(legal_actions_mask: Optional[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """The [B, A] bool mask of legal root actions; every row must allow at least one action."""
    if legal_actions_mask is None:
        return np.ones(shape, dtype=bool)
    mask = to_numpy(legal_actions_mask)
    if mask.shape != shape:
        raise ValueError(f"legal_actions_mask must have shape [batch, num_actions] = {shape}, got {mask.shape}")
    mask = mask.astype(bool)
    empty_rows = np.flatnonzero(~mask.any(axis=1))
    if empty_rows.size:
        raise ValueError(f"legal_actions_mask allows no action for trees {empty_rows.tolist()}: at least one is needed")
    return mask


def dirichlet_noise(rng: np.random.Generator, alpha: float, legal: np.ndarray) -> np.ndarray:
    """Dirichlet(alpha) noise over the legal actions of each row, 0 elsewhere.

    :param legal: [B, A] bool
    :return: [B, A] float64, each row summing to 1 over its legal actions
    """
    gamma = rng.standard_gamma(alpha, size=legal.shape) * legal
    total = gamma.sum(axis=1, keepdims=True)
    # With a tiny alpha every draw of a row can underflow to 0: fall back to a uniform row.
    uniform = legal / legal.sum(axis=1, keepdims=True)
    return np.where(total > 0, gamma / np.where(total > 0, total, 1.0), uniform)


def gumbel_selection(
    rng: np.random.Generator, settings: SearchSettings, prior_logits: np.ndarray, legal: np.ndarray, temperature: float
) -> GumbelSelection:
    """What Gumbel's selection reads besides the tree, for every backend alike.

    The noise is :func:`gumbel_noise`, ``temperature * rng.gumbel(size=[B, A])`` (the only draw: none when
    ``temperature == 0``), so that temperature 1 is mctx's ``gumbel_scale=1`` and temperature 0 searches without noise.

    :param prior_logits: [B, A] float64 root logits (host)
    :param legal: [B, A] bool
    """
    largest = np.where(legal, prior_logits, -np.inf).max(axis=1, keepdims=True)
    root_logits = np.where(legal, prior_logits - largest, -np.inf)
    gumbel_logits = gumbel_noise(rng, temperature, prior_logits.shape) + root_logits
    num_considered = np.minimum(settings.max_considered_actions, legal.sum(axis=1)).astype(np.int32)
    table = considered_visits_table(settings.max_considered_actions, settings.num_simulations)
    constants = (float(settings.gumbel_c_visit), float(settings.gumbel_c_scale), float(settings.gumbel_min_q_range))
    return GumbelSelection(table, num_considered, gumbel_logits, root_logits, *constants)


def gumbel_noise(rng: np.random.Generator, temperature: float, shape: tuple[int, int]) -> np.ndarray:
    """[B, A] float64: ``temperature * rng.gumbel(size=shape)``, the only draw of a Gumbel search (none, and zeros,
    when ``temperature == 0``)."""
    return temperature * rng.gumbel(size=shape) if temperature > 0 else np.zeros(shape)

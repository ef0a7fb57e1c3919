"""Batched Monte-Carlo tree search as in MuZero (Schrittwieser et al., 2020, appendix B and pseudocode).

Semantics
---------
Every tree of the batch is searched independently, with one call of the learned model per
simulation for the whole batch. ``N(n)`` is the visit count of node ``n``, ``W(n)`` the sum of the
returns backed up through it, ``r(n)`` the reward predicted for the transition into it and
``P(n, a)`` the prior of action ``a`` at ``n``. All arithmetic is float64, with the operations in
the order written here: backends that follow it agree with the reference search bit for bit.

Root (node 0)
    ``P(root, .)`` is the softmax of the root logits over the legal actions; illegal actions have
    prior 0 and are never selected. With noise,
    ``P(root, a) <- (1 - noise_fraction) * P(root, a) + noise_fraction * eta_a``, ``eta ~ Dirichlet(alpha)``
    over the legal actions. The root counts as visited once with the network's value:
    ``N(root) = 1``, ``W(root) = v(root)``. The legal-action mask applies at the root only: inside
    the tree every action can be taken, since the model has learned what they do.

Selection
    From the root, repeatedly take the action maximising (ties go to the lowest action index)::

        exploration(N(n)) * (P(n, a) / (1 + N(child))) + normalise(Q(n, a))
        exploration(N) = (log((N + pb_c_base + 1) / pb_c_base) + pb_c_init) * sqrt(N)
        Q(n, a)        = r(child) + discount * W(child) / N(child)

    until the chosen child has not been expanded yet. An unvisited child has no Q: its value term is
    0, the bottom of the normalised scale, and the search reports its Q as 0.

Expansion
    The model maps (latent of the parent, action) to (reward, value, logits, latent). The new node
    gets ``r`` = reward and ``P(new, .)`` = softmax of the logits over all actions, computed as
    ``exp(logit - max logit) * (1 / sum of the exps)`` (the root's the same, over its legal actions).

Backup
    ``G = value``; for every node from the new one up to the root: ``W += G``, ``N += 1``, then, except
    at the root, ``Q(node) = r(node) + discount * W(node) / N(node)`` widens the tree's min-max range
    and ``G = r(node) + discount * G``.

Normalisation
    ``normalise(q) = (q - min) * (1 / (max - min))``, where min and max are the extremes of every Q
    backed up in this tree so far (so every visited child scores in [0, 1]); 0 while ``max <= min``.
    The reciprocal of the range is taken once per tree and selection, as the backends do.

Result
    Root visit counts (a row sums to ``num_simulations``), root value ``W(root) / N(root)``, root
    child Q values and an action: the most visited root child when ``temperature == 0`` (ties to the
    lowest index), otherwise a sample with probability proportional to ``N(child) ** (1 / temperature)``.

Backends
    ``backend="cpu"`` runs Numba kernels over numpy arrays and returns numpy arrays. ``backend="cuda"``
    runs the same kernels as CUDA kernels (CuPy) with the trees on the latent's GPU: the simulation
    loop makes no host synchronisation, the root statistics of the result are torch tensors on that
    GPU, and only the chosen actions come back to the host. Both take the same random numbers from
    ``rng``: the Dirichlet noise first, then ``rng.random(B)`` to sample the actions when
    ``temperature > 0``. See :mod:`sb3_muzero.mcts.backends.cuda` for how exact the CUDA backend is.

Where this differs from the paper's pseudocode, on purpose: the root starts with one visit carrying
the network value (so the first simulation follows the priors instead of a tie-break, as in mctx);
the min-max range is taken over Q, the quantity it normalises, not over node values (as in
EfficientZero); a degenerate range scores 0 instead of the raw Q, so the exploration trade-off does
not depend on the scale of the rewards; ties go to the lowest action index. Single-player games with
discrete actions only: two-player games (a negative discount in mctx) and continuous actions are not
supported.
"""

from typing import Optional

import numpy as np

from sb3_muzero.common.numbers import is_int
from sb3_muzero.mcts.backends import get_backend
from sb3_muzero.mcts.latents import LatentStore
from sb3_muzero.mcts.types import RecurrentFn, RootInput, SearchResult


def search(
    root: RootInput,
    recurrent_fn: RecurrentFn,
    num_simulations: int,
    *,
    discount: float,
    rng: np.random.Generator,
    pb_c_init: float = 1.25,
    pb_c_base: float = 19652.0,
    dirichlet_alpha: float = 0.25,
    noise_fraction: float = 0.0,
    legal_actions_mask: Optional[np.ndarray] = None,
    temperature: float = 0.0,
    backend: str = "auto",
) -> SearchResult:
    """Run ``num_simulations`` simulations on every tree of the batch and choose an action per tree.

    :param root: initial inference for the batch: prior logits [B, A], value [B], latent [B, ...]
    :param recurrent_fn: ``recurrent_fn(latent [B, ...], action [B]) -> RecurrentOutput``; called once per
        simulation with the whole batch. ``action`` is an int64 array of the same kind as the latent
        (numpy array, or torch tensor on the latent's device).
    :param num_simulations: number of simulations per tree (>= 1)
    :param discount: discount factor in (0, 1]
    :param rng: generator for the root noise and the action sampling
    :param pb_c_init: PUCT constant c1
    :param pb_c_base: PUCT constant c2
    :param dirichlet_alpha: concentration of the root Dirichlet noise
    :param noise_fraction: weight of the root noise in the root priors (0 = no noise)
    :param legal_actions_mask: [B, A] bool, legal actions at the root (None = all legal)
    :param temperature: visit-count temperature of the chosen action (0 = most visited)
    :param backend: "cpu" (Numba), "cuda" (CuPy kernels; the latent must be a torch tensor on a CUDA device)
        or "auto" (CUDA when the latent lives on a CUDA device and CuPy is installed, else CPU)
    :return: the chosen actions (a host int64 array) and the root statistics: numpy arrays on the CPU backend,
        torch tensors on the latent's device on the CUDA backend
    """
    prior_logits, root_value = check_search_arguments(
        root, num_simulations, discount, pb_c_init, pb_c_base, dirichlet_alpha, noise_fraction, temperature
    )
    batch_size, num_actions = prior_logits.shape
    legal = legal_mask(legal_actions_mask, prior_logits.shape)
    noise = dirichlet_noise(rng, dirichlet_alpha, legal) if noise_fraction > 0 else None
    engine = get_backend(backend, root.latent)
    if engine.ON_DEVICE:  # the device reads the root where it lies: CUDA tensors are not copied
        prior_logits, root_value = root.prior_logits, root.value

    device = getattr(root.latent, "device", None)
    tree = engine.new_tree(batch_size, num_simulations + 1, num_actions, device=device)
    exploration = engine.exploration_table(num_simulations + 1, pb_c_init, pb_c_base, device=device)
    latents = LatentStore(root.latent, num_simulations + 1)
    parent, action = engine.init_roots(tree, prior_logits, root_value, legal, noise, noise_fraction, exploration)
    for simulation in range(1, num_simulations + 1):
        output = recurrent_fn(latents.gather(parent), latents.like_latent(action))
        latents.store(simulation, output.latent)
        # One backend call: expand the new nodes, back their values up, select the next leaves.
        parent, action = engine.expand_and_select(
            tree, simulation, output.reward, output.value, output.prior_logits, discount, exploration,
            select_next=simulation < num_simulations,
        )  # fmt: skip
    visit_counts, search_value, q_values = engine.read_root(tree)
    action = engine.choose_action(rng, visit_counts, temperature, num_simulations)
    return SearchResult(action, visit_counts, search_value, q_values)


def check_search_arguments(
    root: RootInput,
    num_simulations: int,
    discount: float,
    pb_c_init: float,
    pb_c_base: float,
    dirichlet_alpha: float,
    noise_fraction: float,
    temperature: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Refuse what the search does not support; return the root logits [B, A] and value [B] as float64."""
    if not is_int(num_simulations) or num_simulations < 1:
        raise ValueError(f"num_simulations must be an integer >= 1, got {num_simulations!r}")
    if not 0.0 < discount <= 1.0:
        raise ValueError(
            f"discount must be in (0, 1], got {discount!r}; two-player games "
            "(a negative discount, as in mctx) are not supported: the search is single-player"
        )
    if pb_c_base <= 0 or not np.isfinite(pb_c_init):
        raise ValueError(f"pb_c_base must be > 0 and pb_c_init finite, got pb_c_base={pb_c_base!r}, pb_c_init={pb_c_init!r}")
    if not 0.0 <= noise_fraction <= 1.0:
        raise ValueError(f"noise_fraction must be in [0, 1], got {noise_fraction!r}")
    if noise_fraction > 0 and not dirichlet_alpha > 0:
        raise ValueError(f"dirichlet_alpha must be > 0 when noise is used, got {dirichlet_alpha!r}")
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

"""Batched Monte-Carlo tree search as in MuZero (Schrittwieser et al., 2020, appendix B and pseudocode), with PUCT
(``search_algorithm="puct"``, the default) or as in Gumbel MuZero (Danihelka et al., 2022, "Policy improvement by
planning with Gumbel"; ``search_algorithm="gumbel"``, see the section "Gumbel" below).

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
    ``P(root, a) <- (1 - fraction) * P(root, a) + fraction * eta_a``, ``eta ~ Dirichlet(alpha)``
    over the legal actions (``fraction`` and ``alpha``: ``root_exploration_fraction`` and
    ``root_dirichlet_alpha`` of the settings). The root counts as visited once with the network's value:
    ``N(root) = 1``, ``W(root) = v(root)``. The legal-action mask applies at the root only: inside
    the tree every action can be taken, since the model has learned what they do.

Selection
    From the root, repeatedly take the action maximising (ties go to the lowest action index)::

        exploration(N(n)) * (P(n, a) / (1 + N(child))) + normalise(Q(n, a))
        exploration(N) = (log((N + pb_c_base + 1) / pb_c_base) + pb_c_init) * sqrt(N)
        Q(n, a)        = r(child) + gamma * W(child) / N(child)

    until the chosen child has not been expanded yet. An unvisited child has no Q: its value term is
    0, the bottom of the normalised scale, and the search reports its Q as 0.

Expansion
    The model maps (latent of the parent, action) to (reward, value, logits, latent). The new node
    gets ``r`` = reward and ``P(new, .)`` = softmax of the logits over all actions, computed as
    ``exp(logit - max logit) * (1 / sum of the exps)`` (the root's the same, over its legal actions).

Backup
    ``G = value``; for every node from the new one up to the root: ``W += G``, ``N += 1``, then, except
    at the root, ``Q(node) = r(node) + gamma * W(node) / N(node)`` widens the tree's min-max range
    and ``G = r(node) + gamma * G``.

Normalisation
    ``normalise(q) = (q - min) * (1 / (max - min))``, where min and max are the extremes of every Q
    backed up in this tree so far (so every visited child scores in [0, 1]); 0 while ``max <= min``.
    The reciprocal of the range is taken once per tree and selection, as the backends do.

Result
    Root visit counts (a row sums to ``num_simulations``), root value ``W(root) / N(root)``, root
    child Q values, the policy target ``N(child) / sum N`` (float32, the network's target) and an action:
    the most visited root child when ``temperature == 0`` (ties to the lowest index), otherwise a sample
    with probability proportional to ``N(child) ** (1 / temperature)``.

Gumbel (``search_algorithm="gumbel"``)
    Expansion, backup, Q, the root's first visit and the result's visit counts, root value and Q values are
    PUCT's; selection, the action and the policy target follow Gumbel MuZero, as mctx's
    ``gumbel_muzero_policy`` with its defaults but one, the least range of the min-max rescale
    (``tests/test_gumbel_oracle.py`` compares them with ``gumbel_min_q_range=1e-8``, mctx's). There is no
    Dirichlet noise. For a node ``n`` with visited children ``V`` (``N > 0``), ``v(n)`` the network's value
    of ``n`` when it was expanded (the root value at the root) and ``P`` its priors:

    completed Q
        ``mixed = v(n)`` if ``V`` is empty, else
        ``(v(n) + sum N * (sum_V p Q / sum_V p)) / (sum N + 1)`` with ``p = max(P, tiny)`` (the smallest
        normal float64) and the sums over ``V`` in the order of first visits. Every action outside ``V``
        (unvisited, or illegal at the root) has Q ``mixed``; ``lo`` and ``hi`` are the extremes of these
        completed Q values over all actions.
    sigma
        ``sigma(q) = ((c_visit + max_V N) * c_scale) * ((q - lo) / max(hi - lo, min_q_range))``, with
        ``gumbel_c_visit``, ``gumbel_c_scale`` and ``gumbel_min_q_range`` (50, 0.1 and 1). The least range keeps
        Q values that differ by a fraction of a reward from being stretched to the full scale of ``sigma``
        (``(c_visit + max N) * c_scale``, over 5 logits): mctx's 1e-8 stretches an untrained model's noise that
        far, and the improved policy then settles on arbitrary actions before the model has learned what they
        do (``tests/test_identity.py``).
    Root: Sequential Halving with Gumbel
        ``m = min(max_considered_actions, legal actions)``; at the simulation that finds ``sum N = j`` root
        visits, the considered visit count is ``c = table[m][j]`` (:func:`sb3_muzero.mcts.tables.considered_visits`,
        mctx's table). Among the legal actions with ``N = c``, take the largest
        ``max(-1e9, (g + l) + sigma(Q))``, ties to the lowest index: ``g`` the root's Gumbel noise, ``l`` the
        root logits minus their largest legal one. The first ``m`` simulations so visit the top ``m`` actions
        by ``g + l`` (Gumbel-Top-k), and later ones halve them, best first.
    Below the root
        The largest ``pi(a) - N(a) / (1 + sum N)``, ties to the lowest index, with ``pi = softmax(logits +
        sigma)`` computed from the priors as ``P(a) exp(sigma(a) - s) / Z``, ``s`` the largest sigma and ``Z``
        the visited children's terms (in the order of first visits) plus ``U exp(sigma_u - s)``, ``U`` the sum
        of the unvisited children's priors (in action order) and ``sigma_u`` their common sigma.
    Result
        The action is the Sequential Halving winner: the above root choice among the actions with the
        largest visit count, on the final tree. The policy target is
        ``softmax(l + sigma(completed Q))`` over the legal actions (``exp(x - max x) / sum``), 0 for illegal
        ones, in float32.
    Noise
        ``temperature`` scales the Gumbel noise: ``g = temperature * rng.gumbel(size=[B, A])``, the search's
        only draw (temperature 1 is mctx's ``gumbel_scale=1``; temperature 0, as in ``predict(...,
        deterministic=True)``, searches without noise and draws nothing). ``add_noise`` is not read.

Backends
    ``search_backend="cpu"`` runs Numba kernels over numpy arrays and returns numpy arrays.
    ``search_backend="cuda"`` runs the same kernels as CUDA kernels (CuPy) with the trees on the latent's GPU: the simulation
    loop makes no host synchronisation, the root statistics of the result are torch tensors on that
    GPU, and only the chosen actions come back to the host. Both take the same random numbers from
    ``rng``: with PUCT, the Dirichlet noise first, then ``rng.random(B)`` to sample the actions when
    ``temperature > 0``; with Gumbel, the Gumbel noise alone, drawn on the host and handed to the
    kernels, so that every backend searches with the same noise. See :mod:`sb3_muzero.mcts.backends.cuda`
    for how exact the CUDA backend is.
    Every backend provides the functions of :class:`~sb3_muzero.mcts.backends.interface.SearchBackend`.

Layout
    This module is the driver: it imports the pieces (root preparation in :mod:`~sb3_muzero.mcts.roots`,
    the action choice in :mod:`~sb3_muzero.mcts.action_choice`, tables in :mod:`~sb3_muzero.mcts.tables`,
    the backends, the settings in :mod:`~sb3_muzero.mcts.settings`) and none of them imports it.

Where Gumbel's arithmetic is grouped differently from mctx's (the same formulas): node values are ``W / N``
rather than running means, ``softmax(logits + sigma)`` below the root is computed from the priors with the
unvisited children summed together, and the mixed value divides once. Values may differ from mctx's in the last
bits; actions, visits and policy targets agree on the oracle's trees.

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

from sb3_muzero.mcts.backends import get_backend
from sb3_muzero.mcts.latents import LatentStore
from sb3_muzero.mcts.roots import check_root, dirichlet_noise, gumbel_selection, legal_mask
from sb3_muzero.mcts.settings import DEFAULT_SEARCH_SETTINGS, SearchSettings
from sb3_muzero.mcts.types import RecurrentFn, RootInput, SearchResult


def search(
    root: RootInput,
    recurrent_fn: RecurrentFn,
    settings: SearchSettings = DEFAULT_SEARCH_SETTINGS,
    *,
    rng: np.random.Generator,
    temperature: float = 0.0,
    add_noise: bool = False,
    legal_actions_mask: Optional[np.ndarray] = None,
) -> SearchResult:
    """Run ``settings.num_simulations`` simulations on every tree of the batch and choose an action per tree.

    :param root: initial inference for the batch: prior logits [B, A], value [B], latent [B, ...]
    :param recurrent_fn: ``recurrent_fn(latent [B, ...], action [B]) -> RecurrentOutput``; called once per
        simulation with the whole batch. ``action`` is an int64 array of the same kind as the latent
        (numpy array, or torch tensor on the latent's device).
    :param settings: simulations, discount (gamma), search algorithm and its constants, root noise and backend
    :param rng: generator for the root noise and the action sampling
    :param temperature: PUCT: visit-count temperature of the chosen action (0 = most visited); Gumbel: the scale of
        the root's Gumbel noise (0 = no noise)
    :param add_noise: PUCT: mix Dirichlet noise into the root priors (``settings.root_exploration_fraction`` of it);
        Gumbel: not read (its noise is the Gumbel noise)
    :param legal_actions_mask: [B, A] bool, legal actions at the root (None = all legal)
    :return: the chosen actions (a host int64 array), the root statistics and the policy target: numpy arrays on the
        CPU backend, torch tensors on the latent's device on the CUDA backend
    """
    if not isinstance(settings, SearchSettings):
        raise TypeError(f"settings must be a SearchSettings, got {type(settings).__name__} ({settings!r})")
    prior_logits, root_value = check_root(root, temperature)
    batch_size, num_actions = prior_logits.shape
    num_simulations = settings.num_simulations
    gumbel = settings.search_algorithm == "gumbel"
    legal = legal_mask(legal_actions_mask, prior_logits.shape)
    noise_fraction = settings.root_exploration_fraction if add_noise and not gumbel else 0.0
    noise = dirichlet_noise(rng, settings.root_dirichlet_alpha, legal) if noise_fraction > 0 else None
    engine = get_backend(settings.search_backend, root.latent)
    device = getattr(root.latent, "device", None)
    if gumbel:
        selection = engine.gumbel_selection(gumbel_selection(rng, settings, prior_logits, legal, temperature), device=device)
    else:
        selection = engine.exploration_table(num_simulations + 1, settings.pb_c_init, settings.pb_c_base, device=device)
    if engine.ON_DEVICE:  # the device reads the root where it lies: CUDA tensors are not copied
        prior_logits, root_value = root.prior_logits, root.value

    tree = engine.new_tree(batch_size, num_simulations + 1, num_actions, device=device)
    latents = LatentStore(root.latent, num_simulations + 1)
    parent, action = engine.init_roots(tree, prior_logits, root_value, legal, noise, noise_fraction, selection)
    for simulation in range(1, num_simulations + 1):
        output = recurrent_fn(latents.gather(parent), latents.like_latent(action))
        latents.store(simulation, output.latent)
        # One backend call: expand the new nodes, back their values up, select the next leaves.
        parent, action = engine.expand_and_select(
            tree, simulation, output.reward, output.value, output.prior_logits, settings.gamma, selection,
            select_next=simulation < num_simulations,
        )  # fmt: skip
    visit_counts, search_value, q_values = engine.read_root(tree)
    if gumbel:
        action, policy_target = engine.gumbel_choice(tree, selection)
    else:
        action = engine.choose_action(rng, visit_counts, temperature, num_simulations)
        policy_target = engine.visit_distribution(visit_counts)
    return SearchResult(action, visit_counts, search_value, q_values, policy_target)

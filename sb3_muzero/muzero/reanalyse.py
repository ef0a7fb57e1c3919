"""Reanalyse: fresh targets for part of a training batch, from searches with the newest networks.

MuZero Reanalyze (Schrittwieser et al., 2021, "Online and offline reinforcement learning by planning with a learned
model") searches replayed positions again with the current network, so that the targets follow the network as it
improves instead of keeping the statistics of the search that acted; EfficientZero (Ye et al., 2021) also shortens the
value horizon of old data (its "model-based off-policy correction"). :func:`reanalyse` takes a sampled batch and gives
it back with fresh targets for some of its unrolls.

Which unrolls
    ``n = round(reanalyse_ratio * B)`` of the ``B`` unrolls (halves up): every row when ``n == B``, otherwise ``n``
    rows drawn without replacement with the replay's generator. Not the first ``n`` rows, as EfficientZero and
    LightZero take them: sampling is stratified over the ring (row ``b`` comes from the ``b``-th slice of the priority
    mass), so the first rows would always come from the same end of the ring. Nothing is drawn when ``n`` is 0 or
    ``B``: a ratio of 0 (or 1) leaves every random stream as it was.

Policy targets
    At every unroll step ``k = 0..K`` of a reanalysed row that is a stored step, the policy target of a search from
    that step's observation with the current network (PUCT: the visit distribution; Gumbel: ``softmax(logits +
    sigma(completed Q))``). PUCT mixes the acting search's Dirichlet noise into the root priors (``noise_rng``, as
    EfficientZero's reanalyse does), or searches without it (``noise_rng=None``): without noise an action the prior
    rates low gets few visits or none whatever its value, and a network trained on nothing but such targets can settle
    on one action everywhere (CartPole with ``reanalyse_ratio=1``: ``benchmarks/RESULTS.md``).
    Gumbel searches with temperature 0 (no Gumbel noise): its target rates every action by its completed Q value.
    Steps past the episode's end keep their mask and their target 0.

Value targets
    ``z = sum_{i < n} gamma^i r_{u+i} + gamma^n v``, with ``v`` the root value of a search from the observation of step
    ``u + n`` with the target network (the current network when there is none), with the same noise as the policy
    roots (one search for both; EfficientZero's value roots have it too). Where the return ends without a
    stored observation to search from (a termination: no bootstrap; a truncation: the predicted value of the
    cut-off observation, stored at acting time) the replay's target stays.
    The horizon ``n`` is ``td_steps``, or, with the off-policy correction (``reanalyse_age_per_td_step = D > 0``),
    ``n = max(1, td_steps - age // D)``, where ``age`` is the number of gradient steps since the sampled step was
    stored (the replay's ``stored_at_update``; 0 if that is later, as in a replay loaded into another run), the same
    for the whole row: the older the data, the less of its target comes from rewards the current policy would not
    have collected. Only reanalysed unrolls get it (their bootstrap values are fresh). EfficientZero's rule, with its
    age in env steps: ``n = clip(5 - age // D, 1, 5)`` with ``D = 0.3 * 100,000`` for Atari 100k (one gradient step per env
    step, so the same ``D`` counted in gradient steps).

One search
    Every root of the batch goes through one call of :func:`sb3_muzero.mcts.search`, on the networks' device: the
    policy roots with the current network and the bootstrap roots with the target network, the model call of each
    simulation running each network on its block of roots. A slot that two positions of the batch share is searched
    once per network.

What moved
    :func:`reanalyse` also returns how far the fresh targets are from the stored ones: ``reanalyse_value_change``, the
    mean absolute difference of the value targets of the reanalysed unroll steps (with the horizon's change), and
    ``reanalyse_policy_kl``, the mean ``KL(fresh || stored)`` of their policy targets (the stored probabilities
    floored at :data:`KL_FLOOR`: a PUCT search leaves actions unvisited).
"""

import math
from collections.abc import Callable
from typing import NamedTuple, Optional

import numpy as np
import torch as th
from stable_baselines3.common.type_aliases import PyTorchObs

from sb3_muzero.mcts import RecurrentOutput, RootInput, search
from sb3_muzero.mcts.roots import to_numpy
from sb3_muzero.muzero.policies import MuZeroPolicy
from sb3_muzero.replay import MuZeroReplayBuffer, ObservationBatch, ReplaySample

KL_FLOOR = 1e-8  # the least stored probability reanalyse_policy_kl divides by


class Reanalysis(NamedTuple):
    """What :func:`reanalyse` returns."""

    sample: ReplaySample  # the batch, with fresh targets in the reanalysed rows
    # reanalyse_fraction, reanalyse_value_change, reanalyse_policy_kl, reanalyse_td_steps (the mean horizon),
    # reanalyse_roots (the roots searched)
    stats: dict[str, float]


def reanalyse(
    sample: ReplaySample,
    replay: MuZeroReplayBuffer,
    policy: MuZeroPolicy,
    target_policy: Optional[MuZeroPolicy],
    to_tensor: Callable[[ObservationBatch], PyTorchObs],
    *,
    ratio: float,
    td_steps: int,
    age_per_td_step: int,
    update: int,
    rng: np.random.Generator,
    noise_rng: Optional[np.random.Generator] = None,
) -> Reanalysis:
    """Fresh policy and value targets for ``ratio`` of the unrolls of ``sample`` (see the module docstring).

    :param sample: a batch of ``replay`` (``replay.sample``), ``B`` unrolls of ``K`` steps
    :param replay: the replay it was sampled from (observations, rewards, the steps' ages)
    :param policy: the current network: the policy targets' searches
    :param target_policy: the target network: the bootstrap values' searches (None: the current network)
    :param to_tensor: stored observations -> the networks' input (the training's normalisation)
    :param ratio: the fraction of the unrolls to reanalyse, in [0, 1]
    :param td_steps: the n of the n-step value targets
    :param age_per_td_step: gradient steps of age that shorten the horizon by one step (0: no correction)
    :param update: the number of gradient steps made so far (the age of a step is counted from its
        ``stored_at_update``)
    :param rng: draws the reanalysed rows when there are neither none nor all
    :param noise_rng: PUCT: draws the Dirichlet noise of every root of the search (policy and bootstrap roots alike);
        None: no noise. Gumbel draws nothing.
    """
    rows = reanalysed_rows(len(sample.slots), ratio, rng)
    if len(rows) == 0:
        return Reanalysis(sample, {"reanalyse_fraction": 0.0})
    ages = np.maximum(update - replay.stored_at_update[sample.slots[rows]], 0)
    horizons = value_horizons(td_steps, ages, age_per_td_step)
    positions = sample.unroll_slots[rows]  # [n, K+1]
    stored = positions >= 0
    returns = replay.n_step_returns(positions[stored], np.broadcast_to(horizons[:, None], positions.shape)[stored])
    searched = returns.bootstrap_slot >= 0
    fresh_policies, fresh_values, roots = _search(replay, policy, target_policy or policy, to_tensor, positions[stored],
                                           returns.bootstrap_slot[searched], noise_rng)  # fmt: skip
    bootstrap_value = returns.bootstrap_value.copy()
    bootstrap_value[searched] = fresh_values
    fresh = _with_positions(sample, rows, stored, policy_targets=fresh_policies, value_partial=returns.partial,
                            bootstrap_discount=returns.discount, bootstrap_value=bootstrap_value)  # fmt: skip
    stats = {
        "reanalyse_fraction": len(rows) / len(sample.slots),
        "reanalyse_value_change": _value_change(sample, fresh, rows),
        "reanalyse_policy_kl": float(kl_divergence(fresh_policies, sample.policy_targets[rows][stored]).mean()),
        "reanalyse_td_steps": float(horizons.mean()),
        "reanalyse_roots": float(roots),
    }
    return Reanalysis(fresh, stats)


def reanalysed_rows(batch_size: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """The rows [n] (ascending) of a batch of ``batch_size`` to reanalyse: ``n = round(ratio * batch_size)``, halves up;
    drawn with ``rng`` only when ``0 < n < batch_size``."""
    count = math.floor(ratio * batch_size + 0.5)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if count >= batch_size:
        return np.arange(batch_size)
    return np.sort(rng.choice(batch_size, size=count, replace=False))


def value_horizons(td_steps: int, ages: np.ndarray, age_per_td_step: int) -> np.ndarray:
    """The n-step horizons [n] of samples ``ages`` [n] gradient steps old: ``max(1, td_steps - age // age_per_td_step)``,
    or ``td_steps`` when ``age_per_td_step`` is 0."""
    if age_per_td_step == 0:
        return np.full(len(ages), td_steps, dtype=np.int64)
    return np.clip(td_steps - np.asarray(ages, np.int64) // age_per_td_step, 1, td_steps)


def kl_divergence(fresh: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """``KL(fresh || stored)`` [M] of distributions [M, A], the stored probabilities floored at :data:`KL_FLOOR`."""
    fresh, stored = np.asarray(fresh, np.float64), np.asarray(stored, np.float64)
    logs = np.log(np.where(fresh > 0, fresh, 1.0)) - np.log(np.maximum(stored, KL_FLOOR))
    return (fresh * logs).sum(axis=-1)


# --- the search ------------------------------------------------------------------------------------


def _search(replay: MuZeroReplayBuffer, policy: MuZeroPolicy, target_policy: MuZeroPolicy,
            to_tensor: Callable[[ObservationBatch], PyTorchObs], policy_slots: np.ndarray, bootstrap_slots: np.ndarray,
            noise_rng: Optional[np.random.Generator]) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """One search from the observations of ``policy_slots`` [P] with ``policy`` and of ``bootstrap_slots`` [V] with
    ``target_policy`` (one block of roots if they are the same network), with Dirichlet noise from ``noise_rng`` (None:
    none); returns the policy targets [P, A], the root values [V] (float32) and the number of roots searched."""
    if target_policy is policy:
        groups = [(policy, np.unique(np.concatenate([policy_slots, bootstrap_slots])))]
    else:
        groups = [(policy, np.unique(policy_slots)), (target_policy, np.unique(bootstrap_slots))]
    groups = [(network, slots) for network, slots in groups if len(slots)]
    networks = [network for network, _ in groups]
    modes = [network.training for network in networks]
    for network in networks:
        network.set_training_mode(False)
    try:
        with th.no_grad():
            roots = [network.search_root(to_tensor(replay.observations_at(slots))) for network, slots in groups]
            model = _BlockModel(networks, [len(slots) for _, slots in groups])
            # Temperature 0: the search draws nothing but the noise (without noise, nothing: a generator of its own
            # keeps the run's untouched).
            rng = noise_rng if noise_rng is not None else np.random.default_rng(0)
            result = search(_concatenate_roots(roots), model, policy.search_settings, rng=rng, temperature=0.0,
                            add_noise=noise_rng is not None)  # fmt: skip
    finally:
        for network, mode in zip(networks, modes):
            network.set_training_mode(mode)
    policy_targets = to_numpy(result.policy_target).astype(np.float32)
    root_values = to_numpy(result.root_value).astype(np.float32)
    policy_rows = np.searchsorted(groups[0][1], policy_slots)
    bootstrap_rows = np.searchsorted(groups[-1][1], bootstrap_slots) + (len(groups[0][1]) if len(groups) > 1 else 0)
    return policy_targets[policy_rows], root_values[bootstrap_rows], len(root_values)


class _BlockModel:
    """The search's model step for a batch of roots in consecutive blocks, each block searched with its own network."""

    def __init__(self, networks: list[MuZeroPolicy], sizes: list[int]):
        self.networks = networks
        self.bounds = np.cumsum([0, *sizes])

    def __call__(self, latent: th.Tensor, action) -> RecurrentOutput:
        if len(self.networks) == 1:
            return self.networks[0].search_step(latent, action)
        outputs = [network.search_step(latent[start:end], action[start:end])
                   for network, start, end in zip(self.networks, self.bounds[:-1], self.bounds[1:])]  # fmt: skip
        return RecurrentOutput(*(th.cat(parts) for parts in zip(*outputs)))


def _concatenate_roots(roots: list[RootInput]) -> RootInput:
    return roots[0] if len(roots) == 1 else RootInput(*(th.cat(parts) for parts in zip(*roots)))


# --- the batch with its fresh targets ------------------------------------------------------------------------


def _with_positions(sample: ReplaySample, rows: np.ndarray, positions: np.ndarray, **fields: np.ndarray) -> ReplaySample:
    """``sample`` with ``fields`` [M, ...] written into its unroll steps ``positions`` [n, K+1] (bool, M true) of
    ``rows`` [n]; the bootstrap values of those rows are final (their ``bootstrap_slot`` -1, their
    ``bootstrap_observations`` left out), so that a target network does not replace them."""
    replaced = {}
    for name, values in fields.items():
        array = getattr(sample, name).copy()
        block = array[rows]
        block[positions] = values
        array[rows] = block
        replaced[name] = array
    bootstrap_slot = sample.bootstrap_slot.copy()
    bootstrap_slot[rows] = -1
    observations = sample.bootstrap_observations
    if observations is not None:  # in the row-major order of bootstrap_slot >= 0
        keep = ~np.isin(np.nonzero(sample.bootstrap_slot >= 0)[0], rows)
        observations = {key: value[keep] for key, value in observations.items()} if isinstance(observations, dict) else (
            observations[keep]
        )  # fmt: skip
    return sample._replace(**replaced, bootstrap_slot=bootstrap_slot, bootstrap_observations=observations)


def _value_change(stored: ReplaySample, fresh: ReplaySample, rows: np.ndarray) -> float:
    """Mean absolute difference between the fresh and the stored value targets of ``rows``, where they count."""
    mask = stored.value_mask[rows] > 0
    return float(np.abs(fresh.value_targets[rows] - stored.value_targets[rows])[mask].mean())

"""The batched search: golden agreement with the reference, properties, hand-computed trees, errors."""

import itertools
import math

import numpy as np
import pytest
import torch as th

from sb3_muzero.mcts import RecurrentOutput, RootInput, SearchSettings, action_choice, reference, roots, search
from tests.hash_outputs import random_legal_mask
from tests.mcts_models import HashModel

DISCOUNT = 0.97
GOLDEN_GRID = list(itertools.product([1, 3, 17], [2, 4, 18], [1, 2, 10, 50], [False, True], [False, True]))


def golden_settings(num_simulations: int, noise_fraction: float, search_backend: str = "auto", **gumbel) -> SearchSettings:
    """The settings of the golden trees: the tests' discount, root noise of the given fraction (and, for Gumbel trees,
    ``search_algorithm="gumbel"`` and its settings)."""
    return SearchSettings(num_simulations=num_simulations, gamma=DISCOUNT, root_dirichlet_alpha=0.3,
                          root_exploration_fraction=noise_fraction, search_backend=search_backend, **gumbel)  # fmt: skip


def gumbel_golden_case(batch_size, num_actions, num_simulations, masked, noisy, max_considered_actions=16):
    """The model, legal mask and search arguments of a Gumbel golden tree (noisy: Gumbel noise of temperature 1)."""
    seed = 1000 * batch_size + 10 * num_actions + num_simulations + 7
    model = HashModel(num_actions, seed=seed)
    legal = random_legal_mask(np.random.default_rng(seed), batch_size, num_actions) if masked else None
    settings = dict(search_algorithm="gumbel", max_considered_actions=max_considered_actions)
    return model, legal, settings, dict(temperature=1.0 if noisy else 0.0)


def run_both(model, batch_size, num_simulations, legal, noise_fraction, seed=7, gumbel=None, **kwargs):
    kwargs = dict(add_noise=True, legal_actions_mask=legal, **kwargs)
    settings = golden_settings(num_simulations, noise_fraction, search_backend="cpu", **(gumbel or {}))
    root = model.root(batch_size)
    fast = search(root, model.recurrent_fn, settings, rng=np.random.default_rng(seed), **kwargs)
    slow = reference.search(root, model.recurrent_fn, settings, rng=np.random.default_rng(seed), **kwargs)
    return fast, slow


@pytest.mark.parametrize("batch_size, num_actions, num_simulations, masked, noisy", GOLDEN_GRID)
def test_cpu_backend_agrees_with_reference(batch_size, num_actions, num_simulations, masked, noisy):
    seed = 1000 * batch_size + 10 * num_actions + num_simulations
    model = HashModel(num_actions, seed=seed)
    legal = random_legal_mask(np.random.default_rng(seed), batch_size, num_actions) if masked else None
    fast, slow = run_both(model, batch_size, num_simulations, legal, noise_fraction=0.25 if noisy else 0.0)
    np.testing.assert_array_equal(fast.visit_counts, slow.visit_counts)
    np.testing.assert_allclose(fast.root_value, slow.root_value, rtol=0, atol=1e-5)
    np.testing.assert_allclose(fast.q_values, slow.q_values, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(fast.action, slow.action)
    np.testing.assert_array_equal(fast.policy_target, slow.policy_target)


@pytest.mark.parametrize("batch_size, num_actions, num_simulations", [(17, 2, 50), (17, 4, 50), (17, 18, 50), (3, 18, 10)])
@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("algorithm", ["puct", "gumbel"])
def test_cpu_backend_agrees_with_reference_when_scores_tie(batch_size, num_actions, num_simulations, levels, algorithm):
    """Outputs on a coarse grid make equal priors, rewards and values common, so tie-breaks are exercised."""
    model = HashModel(num_actions, seed=num_actions + 100 * levels, levels=levels)
    gumbel = dict(search_algorithm=algorithm)
    fast, slow = run_both(model, batch_size, num_simulations, None, noise_fraction=0.0, gumbel=gumbel)
    np.testing.assert_array_equal(fast.visit_counts, slow.visit_counts)
    np.testing.assert_allclose(fast.root_value, slow.root_value, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(fast.action, slow.action)
    np.testing.assert_array_equal(fast.policy_target, slow.policy_target)


def assert_same_gumbel_search(fast, slow) -> None:
    """Gumbel searches agree bit for bit: visits, actions, values and policy targets."""
    for field in ("visit_counts", "action", "root_value", "q_values", "policy_target"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field), err_msg=field)


@pytest.mark.parametrize("batch_size, num_actions, num_simulations, masked, noisy", GOLDEN_GRID)
def test_gumbel_cpu_backend_agrees_with_reference(batch_size, num_actions, num_simulations, masked, noisy):
    model, legal, gumbel, kwargs = gumbel_golden_case(batch_size, num_actions, num_simulations, masked, noisy)
    fast, slow = run_both(model, batch_size, num_simulations, legal, 0.25, gumbel=gumbel, **kwargs)
    assert_same_gumbel_search(fast, slow)


@pytest.mark.parametrize("max_considered_actions", [1, 2, 3, 4, 32])
@pytest.mark.parametrize("num_simulations", [5, 50])
def test_gumbel_cpu_backend_agrees_with_reference_for_any_number_of_considered_actions(max_considered_actions,
                                                                                        num_simulations):  # fmt: skip
    model, legal, gumbel, kwargs = gumbel_golden_case(9, 18, num_simulations, True, True, max_considered_actions)
    fast, slow = run_both(model, 9, num_simulations, legal, 0.0, gumbel=gumbel, **kwargs)
    assert_same_gumbel_search(fast, slow)
    legal_counts = legal.sum(axis=1)
    considered = np.count_nonzero(fast.visit_counts, axis=1)
    np.testing.assert_array_equal(considered, np.minimum(legal_counts, min(max_considered_actions, num_simulations)))


def test_golden_trees_are_not_trivial():
    """The golden grid only means something if the searches spread visits and depend on the noise."""
    model = HashModel(18, seed=3)
    plain, _ = run_both(model, 17, 50, None, noise_fraction=0.0)
    noisy, _ = run_both(model, 17, 50, None, noise_fraction=0.25)
    assert (np.count_nonzero(plain.visit_counts, axis=1) > 2).mean() > 0.5
    assert (plain.visit_counts != noisy.visit_counts).any()


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_visit_counts_sum_to_num_simulations_and_masked_actions_are_never_visited(backend):
    rng = np.random.default_rng(0)
    model = HashModel(6, seed=11)
    legal = random_legal_mask(rng, 9, 6)
    run = reference.search if backend == "reference" else search
    settings = SearchSettings(num_simulations=40, gamma=DISCOUNT, root_exploration_fraction=0.5)
    result = run(
        model.root(9), model.recurrent_fn, settings, rng=rng, add_noise=True, legal_actions_mask=legal, temperature=1.0
    )
    np.testing.assert_array_equal(result.visit_counts.sum(axis=1), 40)
    assert (result.visit_counts[~legal] == 0).all()
    assert legal[np.arange(9), result.action].all()


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_gumbel_searches_give_consistent_results(backend, temperature):
    """Visits sum to the budget and avoid illegal actions; the action is legal and among the most visited; the policy
    target is a distribution over the legal actions."""
    rng = np.random.default_rng(0)
    legal = random_legal_mask(rng, 9, 6)
    model = HashModel(6, seed=11)
    run = reference.search if backend == "reference" else search
    settings = SearchSettings(num_simulations=40, gamma=DISCOUNT, search_algorithm="gumbel", max_considered_actions=4)
    result = run(model.root(9), model.recurrent_fn, settings, rng=rng, legal_actions_mask=legal, temperature=temperature)
    np.testing.assert_array_equal(result.visit_counts.sum(axis=1), 40)
    assert (result.visit_counts[~legal] == 0).all() and (result.policy_target[~legal] == 0).all()
    assert legal[np.arange(9), result.action].all()
    np.testing.assert_array_equal(result.visit_counts[np.arange(9), result.action], result.visit_counts.max(axis=1))
    assert result.policy_target.dtype == np.float32 and (result.policy_target[legal] > 0).all()
    np.testing.assert_allclose(result.policy_target.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_gumbel_draws_one_array_of_gumbel_noise_and_nothing_without_it(backend):
    """The documented draws: rng.gumbel(size=[B, A]) when temperature > 0 (no Dirichlet noise, no uniforms), none at 0."""
    model = HashModel(5, seed=4)
    run = reference.search if backend == "reference" else search
    settings = SearchSettings(num_simulations=6, gamma=DISCOUNT, search_algorithm="gumbel")
    for temperature, draws in ((0.0, lambda rng: None), (0.7, lambda rng: rng.gumbel(size=(3, 5)))):
        rng, expected = np.random.default_rng(3), np.random.default_rng(3)
        run(model.root(3), model.recurrent_fn, settings, rng=rng, add_noise=True, temperature=temperature)
        draws(expected)
        assert rng.bit_generator.state == expected.bit_generator.state


def test_gumbel_selection_scales_the_noise_by_the_temperature_and_shifts_the_legal_logits():
    logits = np.array([[1.0, 3.0, 2.0], [0.5, -1.0, 4.0]])
    legal = np.array([[True, False, True], [True, True, True]])
    settings = SearchSettings(num_simulations=7, search_algorithm="gumbel", max_considered_actions=2)
    half = roots.gumbel_selection(np.random.default_rng(5), settings, logits, legal, 0.5)
    full = roots.gumbel_selection(np.random.default_rng(5), settings, logits, legal, 1.0)
    noise = np.random.default_rng(5).gumbel(size=(2, 3))
    np.testing.assert_array_equal(full.gumbel_logits, noise + full.root_logits)
    np.testing.assert_array_equal(half.gumbel_logits, 0.5 * noise + full.root_logits)
    zero = roots.gumbel_selection(np.random.default_rng(5), settings, logits, legal, 0.0)
    np.testing.assert_array_equal(zero.gumbel_logits, zero.root_logits)
    np.testing.assert_array_equal(full.root_logits, [[-1.0, -np.inf, 0.0], [-3.5, -5.0, 0.0]])
    np.testing.assert_array_equal(full.num_considered, [2, 2])
    assert full.considered_visits.shape == (3, 7)


def test_puct_policy_target_is_the_visit_distribution_in_float32():
    """Bit for bit what MuZero stored before the search returned it: float32 counts over their float32 sum."""
    model = HashModel(7, seed=21)
    result = search(model.root(5), model.recurrent_fn, SearchSettings(num_simulations=13, gamma=DISCOUNT),
                    rng=np.random.default_rng(0), add_noise=True, temperature=1.0)  # fmt: skip
    visits = result.visit_counts.astype(np.float32)
    assert result.policy_target.dtype == np.float32
    np.testing.assert_array_equal(result.policy_target, visits / visits.sum(axis=1, keepdims=True))


class OneGoodActionModel:
    """Uniform priors; the value after taking ``good_action`` at the root is +1, after any other -1."""

    def __init__(self, num_actions: int, good_action: int):
        self.num_actions, self.good_action = num_actions, good_action

    def root(self, batch_size: int) -> RootInput:
        latent = np.full((batch_size, 1), -1.0)  # -1: the root; otherwise the first action taken
        return RootInput(np.zeros((batch_size, self.num_actions)), np.zeros(batch_size), latent)

    def recurrent_fn(self, latent, action) -> RecurrentOutput:
        first_action = np.where(latent[:, 0] < 0, action, latent[:, 0])
        value = np.where(first_action == self.good_action, 1.0, -1.0)
        zeros = np.zeros(len(action))
        return RecurrentOutput(zeros, value, np.zeros((len(action), self.num_actions)), first_action[:, None].astype(float))


@pytest.mark.parametrize("good_action", [0, 3, 7])
def test_search_chooses_the_action_the_value_favours(good_action):
    model = OneGoodActionModel(8, good_action)
    result = search(
        model.root(4), model.recurrent_fn, SearchSettings(num_simulations=30, gamma=DISCOUNT), rng=np.random.default_rng(0)
    )
    np.testing.assert_array_equal(result.action, good_action)
    assert (result.visit_counts[:, good_action] > 30 // 2).all()
    others = np.arange(8) != good_action
    assert (result.q_values[:, good_action] > 0).all()
    assert (result.q_values[:, others][result.visit_counts[:, others] > 0] < 0).all()


@pytest.mark.parametrize("good_action", [0, 3, 7])
@pytest.mark.parametrize("num_simulations", [4, 16])
def test_gumbel_search_chooses_the_action_the_value_favours(good_action, num_simulations):
    """With uniform priors and no noise, Sequential Halving over all 8 actions keeps the good one; its policy target
    weighs it most."""
    model = OneGoodActionModel(8, good_action)
    settings = SearchSettings(num_simulations=num_simulations, gamma=DISCOUNT, search_algorithm="gumbel",
                              max_considered_actions=8)  # fmt: skip
    result = search(model.root(4), model.recurrent_fn, settings, rng=np.random.default_rng(0))
    if num_simulations >= 8:  # with fewer, the good action is considered only if it is among the first visited
        np.testing.assert_array_equal(result.action, good_action)
        np.testing.assert_array_equal(result.policy_target.argmax(axis=1), good_action)


def test_temperature_zero_is_deterministic_with_lowest_index_tie_break():
    model = HashModel(5, seed=2)
    root = model.root(6)
    actions = [
        search(
            root, model.recurrent_fn, SearchSettings(num_simulations=12, gamma=DISCOUNT), rng=np.random.default_rng(s)
        ).action
        for s in range(4)
    ]
    for other in actions[1:]:
        np.testing.assert_array_equal(actions[0], other)
    tied = np.array([[0, 3, 1, 3], [2, 2, 2, 2]])
    np.testing.assert_array_equal(action_choice.choose_action(np.random.default_rng(0), tied, 0.0), [1, 0])


def test_temperature_sampling_follows_visit_counts():
    visits = np.tile([[1, 0, 3, 6]], (20000, 1))
    actions = action_choice.choose_action(np.random.default_rng(0), visits, 1.0)
    np.testing.assert_allclose(np.bincount(actions, minlength=4) / len(actions), [0.1, 0.0, 0.3, 0.6], atol=0.01)
    sharp = action_choice.choose_action(np.random.default_rng(0), visits, 0.25)  # weights 1 : 81 : 1296
    assert (sharp == 3).mean() > 0.9 and (sharp == 1).sum() == 0


def test_dirichlet_noise_is_a_distribution_over_legal_actions():
    legal = random_legal_mask(np.random.default_rng(1), 50, 7)
    noise = roots.dirichlet_noise(np.random.default_rng(2), 0.3, legal)
    np.testing.assert_allclose(noise.sum(axis=1), 1.0)
    assert (noise[~legal] == 0).all() and (noise >= 0).all()
    tiny = roots.dirichlet_noise(np.random.default_rng(2), 1e-4, legal)  # rows can underflow to all-zero draws
    np.testing.assert_allclose(tiny.sum(axis=1), 1.0)


def test_recurrent_fn_is_called_once_per_simulation_with_the_whole_batch():
    model = HashModel(4, seed=5)
    search(model.root(13), model.recurrent_fn, SearchSettings(num_simulations=9, gamma=DISCOUNT), rng=np.random.default_rng(0))
    assert model.calls == [13] * 9


def test_recurrent_fn_gets_actions_it_may_keep():
    """The actions handed to the model are its own: later simulations do not overwrite them."""
    model = HashModel(4, seed=5)
    kept = []

    def keeping_recurrent_fn(latent, action):
        kept.append((action, action.copy()))
        return model.recurrent_fn(latent, action)

    search(
        model.root(13), keeping_recurrent_fn, SearchSettings(num_simulations=9, gamma=DISCOUNT), rng=np.random.default_rng(0)
    )
    for action, snapshot in kept:
        np.testing.assert_array_equal(action, snapshot)


def test_torch_latents_give_the_same_search_as_numpy():
    model = HashModel(4, seed=9)
    root = model.root(5)

    def torch_recurrent_fn(latent, action):
        assert isinstance(latent, th.Tensor) and isinstance(action, th.Tensor) and action.dtype == th.int64
        out = model.recurrent_fn(latent.numpy(), action.numpy())
        return RecurrentOutput(*(th.as_tensor(x) for x in out))

    torch_root = RootInput(*(th.as_tensor(x) for x in root))
    expected = search(
        root, model.recurrent_fn, SearchSettings(num_simulations=20, gamma=DISCOUNT), rng=np.random.default_rng(0)
    )
    result = search(
        torch_root, torch_recurrent_fn, SearchSettings(num_simulations=20, gamma=DISCOUNT), rng=np.random.default_rng(0)
    )
    np.testing.assert_array_equal(result.visit_counts, expected.visit_counts)
    np.testing.assert_array_equal(result.root_value, expected.root_value)


class ScriptedModel:
    """Outputs chosen by hand: logits and value per node, keyed by the action path from the root."""

    def __init__(self, outputs: dict):
        self.outputs = outputs  # path tuple -> (reward, value, logits)

    def recurrent_fn(self, latent, action):
        paths = [(*tuple(int(x) for x in row if x >= 0), int(a)) for row, a in zip(latent, action)]
        reward, value, logits = zip(*(self.outputs[path] for path in paths))
        latent = np.full((len(paths), 4), -1.0)
        for i, path in enumerate(paths):
            latent[i, : len(path)] = path
        return RecurrentOutput(np.array(reward), np.array(value), np.array(logits), latent)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_two_simulations_match_hand_computation(backend):
    """Root priors (0.25, 0.75): both simulations go through action 1 (its prior term wins while Q has no range)."""
    outputs = {(1,): (0.5, 2.0, [0.0, 0.0]), (1, 0): (1.0, -1.0, [0.0, 0.0])}
    model = ScriptedModel(outputs)
    root = RootInput(np.array([[0.0, math.log(3.0)]]), np.array([0.1]), np.full((1, 4), -1.0))
    run = reference.search if backend == "reference" else search
    result = run(root, model.recurrent_fn, SearchSettings(num_simulations=2, gamma=0.9), rng=np.random.default_rng(0))
    # Simulation 1 backs up G = 0.5 + 0.9 * 2.0 = 2.3 through child 1.
    # Simulation 2: exploration(2) * 0.25 / 1 < exploration(2) * 0.75 / 2 at the root, so action 1 again;
    # at child 1 (uniform priors) action 0; G at child 1 = 1.0 + 0.9 * -1.0 = 0.1, at the root 0.5 + 0.9 * 0.1.
    g_child = 1.0 + 0.9 * -1.0
    np.testing.assert_array_equal(result.visit_counts, [[0, 2]])
    np.testing.assert_allclose(result.q_values, [[0.0, 0.5 + 0.9 * (2.0 + g_child) / 2]])
    np.testing.assert_allclose(result.root_value, [(0.1 + 2.3 + (0.5 + 0.9 * g_child)) / 3])


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_gumbel_three_simulations_match_hand_computation(backend):
    """Root priors (0.25, 0.75), no noise. Sequential Halving over 2 actions and 3 simulations expects the visit
    counts 0, 0, 1: simulation 1 takes action 1 (larger logit), simulation 2 action 0 (the only unvisited one),
    simulation 3 the better of the two by logit + sigma(Q), action 1, and below it the child of largest prior (uniform
    priors: action 0)."""
    outputs = {(1,): (0.5, 2.0, [0.0, 0.0]), (0,): (1.0, -1.0, [0.0, 0.0]), (1, 0): (1.0, -1.0, [0.0, 0.0])}
    root = RootInput(np.array([[0.0, math.log(3.0)]]), np.array([0.1]), np.full((1, 4), -1.0))
    run = reference.search if backend == "reference" else search
    settings = SearchSettings(num_simulations=3, gamma=0.9, search_algorithm="gumbel", search_backend="cpu")
    result = run(root, ScriptedModel(outputs).recurrent_fn, settings, rng=np.random.default_rng(0))
    q0, q1 = 1.0 + 0.9 * -1.0, 0.5 + 0.9 * (2.0 + (1.0 + 0.9 * -1.0)) / 2
    np.testing.assert_array_equal(result.visit_counts, [[1, 2]])
    np.testing.assert_allclose(result.q_values, [[q0, q1]])
    np.testing.assert_array_equal(result.action, [1])
    # Every action is visited: sigma(q) = (50 + 2) * 0.1 * (q - q0) / (q1 - q0), so 0 and 5.2.
    improved = np.array([math.log(0.25), math.log(0.75) + 5.2])
    np.testing.assert_allclose(result.policy_target, [np.exp(improved) / np.exp(improved).sum()], rtol=1e-6)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("min_q_range", [1e-8, 0.05, 1.0])
def test_gumbel_q_differences_below_the_least_range_are_not_stretched(backend, min_q_range):
    """The tree of the hand computation above with rewards and values a tenth as large: the same visits and action,
    Q values 0.1345 apart. sigma divides their difference by max(0.1345, gumbel_min_q_range): to the full scale 5.2
    with mctx's 1e-8 or a least range below the span, to 5.2 * 0.1345 with the default least range, 1."""
    outputs = {(1,): (0.05, 0.2, [0.0, 0.0]), (0,): (0.1, -0.1, [0.0, 0.0]), (1, 0): (0.1, -0.1, [0.0, 0.0])}
    root = RootInput(np.array([[0.0, math.log(3.0)]]), np.array([0.01]), np.full((1, 4), -1.0))
    run = reference.search if backend == "reference" else search
    settings = SearchSettings(num_simulations=3, gamma=0.9, search_algorithm="gumbel", search_backend="cpu",
                              gumbel_min_q_range=min_q_range)  # fmt: skip
    result = run(root, ScriptedModel(outputs).recurrent_fn, settings, rng=np.random.default_rng(0))
    q0, q1 = 0.1 + 0.9 * -0.1, 0.05 + 0.9 * (0.2 + (0.1 + 0.9 * -0.1)) / 2
    np.testing.assert_array_equal(result.visit_counts, [[1, 2]])
    np.testing.assert_array_equal(result.action, [1])
    sigma = (50 + 2) * 0.1 * (q1 - q0) / max(q1 - q0, min_q_range)
    improved = np.array([math.log(0.25), math.log(0.75) + sigma])
    np.testing.assert_allclose(result.policy_target, [np.exp(improved) / np.exp(improved).sum()], rtol=1e-6)
    assert sigma == pytest.approx(5.2 if min_q_range < 0.1 else 5.2 * 0.1345)


def test_value_term_uses_the_min_max_range_of_q():
    """Two root children with Q = 1 and Q = 0: the normalised value term (1 vs 0) outweighs the priors."""
    outputs = {(0,): (0.0, 0.0, [0.0, 0.0, 0.0]), (1,): (1.0, 0.0, [0.0, 0.0, 0.0]), (1, 0): (0.0, 0.0, [0.0, 0.0, 0.0])}
    root = RootInput(np.array([[math.log(1.2), 0.0, -30.0]]), np.array([0.0]), np.full((1, 4), -1.0))
    for run in (search, reference.search):
        result = run(
            root,
            ScriptedModel(outputs).recurrent_fn,
            SearchSettings(num_simulations=3, gamma=1.0),
            rng=np.random.default_rng(0),
        )
        # Sims 1-2 follow priors (action 0, then action 1); then Q(1) = 1 > Q(0) = 0 decides.
        np.testing.assert_array_equal(result.visit_counts, [[1, 2, 0]])


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(gamma=-1.0), "two-player"),
        (dict(gamma=0.0), "gamma"),
        (dict(gamma=1.5), "gamma"),
        (dict(num_simulations=0), "num_simulations"),
        (dict(num_simulations=2.5), "num_simulations"),
        (dict(root_exploration_fraction=1.5), "root_exploration_fraction"),
        (dict(root_dirichlet_alpha=0.0), "root_dirichlet_alpha"),
        (dict(pb_c_base=0.0), "pb_c_base"),
        (dict(search_backend="tpu"), "Unknown search_backend"),
        (dict(search_algorithm="alphazero"), "Unknown search_algorithm 'alphazero'; supported: puct, gumbel"),
        (dict(max_considered_actions=0), "max_considered_actions must be an integer >= 1, got 0"),
        (dict(max_considered_actions=2.0), "max_considered_actions must be an integer >= 1, got 2.0"),
        (dict(gumbel_c_visit=-1.0), r"gumbel_c_visit must be in \[0.0, inf\), got -1.0"),
        (dict(gumbel_c_scale=0.0), r"gumbel_c_scale must be in \(0.0, inf\), got 0.0"),
        (dict(gumbel_c_scale=float("nan")), "gumbel_c_scale"),
        (dict(gumbel_min_q_range=0.0), r"gumbel_min_q_range must be in \(0.0, inf\), got 0.0"),
        (dict(gumbel_min_q_range=float("inf")), "gumbel_min_q_range"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(settings, message):
    with pytest.raises(ValueError, match=message):
        SearchSettings(**(dict(num_simulations=4, gamma=DISCOUNT) | settings))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=-1.0), "temperature"),
        (dict(legal_actions_mask=np.zeros((2, 3), dtype=bool)), "allows no action"),
        (dict(legal_actions_mask=np.ones((3, 2), dtype=bool)), "legal_actions_mask must have shape"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_message(kwargs, message):
    model = HashModel(3, seed=1)
    with pytest.raises(ValueError, match=message):
        search(model.root(2), model.recurrent_fn, SearchSettings(num_simulations=4), rng=np.random.default_rng(0), **kwargs)


def test_settings_of_the_wrong_type_are_refused():
    model = HashModel(3, seed=1)
    with pytest.raises(TypeError, match="settings must be a SearchSettings, got int"):
        search(model.root(2), model.recurrent_fn, 4, rng=np.random.default_rng(0))


def test_settings_read_the_names_of_earlier_policy_files():
    former = dict(num_simulations=8, discount=0.9, pb_c_init=1.0, pb_c_base=100.0, dirichlet_alpha=0.5,
                  noise_fraction=0.1, backend="cpu")  # fmt: skip
    settings = SearchSettings.from_dict(former)
    assert settings == SearchSettings(num_simulations=8, gamma=0.9, pb_c_init=1.0, pb_c_base=100.0, root_dirichlet_alpha=0.5,
                                      root_exploration_fraction=0.1, search_backend="cpu")  # fmt: skip
    assert SearchSettings.from_dict(settings.as_dict()) == settings
    with pytest.raises(ValueError, match=r"Unknown search settings \['simulations'\]"):
        SearchSettings.from_dict(dict(simulations=3))


def test_settings_of_policy_files_written_before_gumbel_take_the_defaults():
    """A policy file of the format before search_algorithm existed has none of Gumbel's keys: PUCT and the defaults."""
    current = SearchSettings(num_simulations=8, search_algorithm="gumbel", max_considered_actions=4, gumbel_c_visit=25.0,
                             gumbel_c_scale=0.2, gumbel_min_q_range=0.5)  # fmt: skip
    assert SearchSettings.from_dict(current.as_dict()) == current
    gumbel_keys = ("search_algorithm", "max_considered_actions", "gumbel_c_visit", "gumbel_c_scale", "gumbel_min_q_range")
    earlier = {key: value for key, value in current.as_dict().items() if key not in gumbel_keys}
    assert SearchSettings.from_dict(earlier) == SearchSettings(num_simulations=8)


def test_continuous_action_roots_are_refused():
    root = RootInput(np.zeros((2, 3, 2)), np.zeros(2), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="continuous actions are not supported"):
        search(
            root, lambda latent, action: None, SearchSettings(num_simulations=4, gamma=DISCOUNT), rng=np.random.default_rng(0)
        )


def test_non_finite_roots_are_refused():
    root = RootInput(np.array([[0.0, np.nan]]), np.zeros(1), np.zeros((1, 1)))
    with pytest.raises(ValueError, match="finite"):
        search(
            root, lambda latent, action: None, SearchSettings(num_simulations=4, gamma=DISCOUNT), rng=np.random.default_rng(0)
        )


def test_auto_backend_is_cpu_for_host_latents():
    from sb3_muzero.mcts.backends import cpu, get_backend

    assert get_backend("auto", np.zeros((2, 3))) is cpu
    assert get_backend("auto", th.zeros(2, 3)) is cpu

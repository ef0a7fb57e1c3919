"""Reanalyse: fresh targets against direct searches of the same positions, one batched search, the run's generators
untouched, the settings checked, saved and logged."""

import copy
import csv
import json
import zipfile

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from sb3_muzero import MuZero
from sb3_muzero.mcts import driver
from sb3_muzero.muzero import reanalyse as reanalyse_module
from sb3_muzero.muzero.reanalyse import kl_divergence, reanalysed_rows, value_horizons
from sb3_muzero.replay import ReplaySample
from tests.helpers import SMALL

STEPS = 160
BATCH = 32
REANALYSE = dict(reanalyse_ratio=0.5, reanalyse_age_per_td_step=3)


class PrecisionFlatten(BaseFeaturesExtractor):
    """Flatten observations into the precision of the networks (float64 once ``policy.double()``)."""

    def __init__(self, observation_space: spaces.Space):
        super().__init__(observation_space, get_flattened_obs_dim(observation_space))
        self.register_buffer("precision", th.zeros(0))

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return th.flatten(observations, 1).to(self.precision.dtype)


def trained_model(**overrides) -> MuZero:
    """CartPole cut at 15 steps (terminations and truncations) after a few dozen gradient steps, with a target network
    that stays the initial one (so that it differs from the current network)."""
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0, env_kwargs=dict(max_episode_steps=15))
    settings = {**SMALL, "target_update_interval": 1000, **REANALYSE, **overrides}
    return MuZero("MlpPolicy", env, seed=0, **settings).learn(STEPS)


def in_float64(model: MuZero) -> MuZero:
    """The model with networks in float64. In float32, a network's outputs for a position differ in the last bits with
    the size of the batch it is in, and near-ties in a tree turn that into searches that differ by 1e-4; in float64
    a search of one position and of a batch agree to 1e-12."""
    for network in (model.policy, model.target_policy):
        if network is not None:
            network.double()
    return model


def sample_of(model: MuZero, seed: int = 0) -> ReplaySample:
    return model.replay_buffer.sample(BATCH, model.num_unroll_steps, model.td_steps, 1.0, np.random.default_rng(seed),
                                      with_bootstrap_observations=True)  # fmt: skip


def direct_search(policy, model: MuZero, slot: int):
    """The search from one stored position, alone, with the noise reanalyse uses: the obviously right oracle."""
    observation = th.as_tensor(model.replay_buffer.observations_at(np.array([slot])))
    return policy.run_search(observation, temperature=0.0, add_noise=model.reanalyse_noise)


def same_noise_everywhere(monkeypatch) -> None:
    """Every root's Dirichlet noise the same row, so that a search of one position gets what it got in the batch."""

    def fixed_noise(rng, alpha, legal):
        noise = np.zeros(legal.shape)
        noise[:, -1] = 1.0  # all of it on the last action (legal in these tests)
        return noise

    monkeypatch.setattr(driver, "dirichlet_noise", fixed_noise)


def expected_value_targets(model: MuZero, slot: int, horizon: int) -> np.ndarray:
    """[K+1] the value targets of the unroll from ``slot`` with an n-step horizon of ``horizon``, bootstrapping from a
    direct search with the target network (the current one without it) wherever an observation is stored."""
    one = model.replay_buffer.unroll(np.array([slot]), model.num_unroll_steps, horizon, np.random.default_rng(0))
    bootstrap = one.bootstrap_value[0].astype(np.float64)
    network = model.target_policy or model.policy
    for k, bootstrap_slot in enumerate(one.bootstrap_slot[0]):
        if bootstrap_slot >= 0:
            bootstrap[k] = float(direct_search(network, model, int(bootstrap_slot)).root_value[0])
    return one.value_partial[0] + one.bootstrap_discount[0] * bootstrap


@pytest.mark.parametrize("algorithm", ["puct", "gumbel"])
@pytest.mark.parametrize("target_update_interval", [1000, 0], ids=["target_network", "no_target_network"])
@pytest.mark.parametrize("noise", [True, False], ids=["noise", "no_noise"])
def test_reanalysed_targets_equal_direct_searches_of_the_same_positions(algorithm, target_update_interval, noise,
                                                                         monkeypatch):  # fmt: skip
    policy_kwargs = dict(SMALL["policy_kwargs"], features_extractor_class=PrecisionFlatten)
    model = in_float64(trained_model(search_algorithm=algorithm, target_update_interval=target_update_interval,
                                     policy_kwargs=policy_kwargs, reanalyse_noise=noise,
                                     root_exploration_fraction=0.75))  # enough noise to move 8 simulations' visits; fmt: skip
    same_noise_everywhere(monkeypatch)
    replay = model.replay_buffer
    replay.stored_at_update[: replay.size] = np.random.default_rng(1).integers(0, model._n_updates + 1, replay.size)
    sample = sample_of(model)
    rows = reanalysed_rows(BATCH, model.reanalyse_ratio, copy.deepcopy(model.replay_rng))
    others = np.setdiff1d(np.arange(BATCH), rows)
    fresh, stats = model._reanalyse(sample)

    ages = model._n_updates - replay.stored_at_update[sample.slots]
    horizons = np.clip(model.td_steps - ages // model.reanalyse_age_per_td_step, 1, model.td_steps)
    assert len(set(horizons[rows])) > 2  # the correction shortens the horizons of older samples
    moved_by_noise = 0
    for b in rows:
        for k, slot in enumerate(sample.unroll_slots[b]):
            expected = direct_search(model.policy, model, int(slot)).policy_target[0] if slot >= 0 else 0.0
            np.testing.assert_allclose(fresh.policy_targets[b, k], expected, atol=1e-7, err_msg=f"row {b}, step {k}")
            if slot >= 0 and noise:  # would a search without the noise tell? (Gumbel does not read it)
                model.reanalyse_noise = False
                moved_by_noise += not np.allclose(direct_search(model.policy, model, int(slot)).policy_target[0], expected)
                model.reanalyse_noise = True
        value_targets = expected_value_targets(model, int(sample.slots[b]), int(horizons[b]))
        np.testing.assert_allclose(fresh.value_targets[b], value_targets, rtol=1e-6, atol=1e-6, err_msg=f"row {b}")
    for name in ("value_mask", "policy_mask", "reward_targets", "actions", "weights", "slots", "unroll_slots"):
        np.testing.assert_array_equal(getattr(fresh, name), getattr(sample, name), err_msg=name)
    for name in ("policy_targets", "value_partial", "bootstrap_discount", "bootstrap_value", "bootstrap_slot"):
        np.testing.assert_array_equal(getattr(fresh, name)[others], getattr(sample, name)[others], err_msg=name)
    # The training's value targets: the target network recomputes the other rows as before, not the reanalysed ones.
    trained_on, before = model._value_targets(fresh), model._value_targets(sample)
    np.testing.assert_array_equal(trained_on[others], before[others])
    np.testing.assert_array_equal(trained_on[rows], fresh.value_targets[rows])
    assert stats["reanalyse_fraction"] == len(rows) / BATCH == 0.5 and stats["reanalyse_ms"] > 0
    moved = np.abs(fresh.value_targets[rows] - sample.value_targets[rows])[sample.value_mask[rows] > 0].mean()
    assert stats["reanalyse_value_change"] == pytest.approx(moved) and moved > 0
    assert stats["reanalyse_td_steps"] == pytest.approx(horizons[rows].mean())
    assert (moved_by_noise > 0) == (noise and algorithm == "puct")  # the oracle tells a search with noise from one without


def test_every_position_of_the_batch_goes_through_one_search(monkeypatch):
    model = trained_model(reanalyse_ratio=1.0)
    sample = sample_of(model)
    calls = []
    search = reanalyse_module.search

    def counting_search(root, *args, **kwargs):
        calls.append(len(root.value))
        return search(root, *args, **kwargs)

    monkeypatch.setattr(reanalyse_module, "search", counting_search)
    fresh, stats = model._reanalyse(sample)
    policy_roots = np.unique(sample.unroll_slots[sample.unroll_slots >= 0])
    bootstrap_roots = np.unique(fresh_bootstrap_slots(model, sample))
    assert calls == [len(policy_roots) + len(bootstrap_roots)] == [stats["reanalyse_roots"]] and len(bootstrap_roots) > 0
    assert (fresh.bootstrap_slot == -1).all() and fresh.bootstrap_observations.shape[0] == 0


def fresh_bootstrap_slots(model: MuZero, sample: ReplaySample) -> np.ndarray:
    """The slots the reanalysed value targets of every row bootstrap from (with the horizons of their ages)."""
    ages = model._n_updates - model.replay_buffer.stored_at_update[sample.slots]
    horizons = value_horizons(model.td_steps, ages, model.reanalyse_age_per_td_step)
    slots = [model.replay_buffer.unroll(sample.slots[b : b + 1], model.num_unroll_steps, int(horizons[b]),
                                        np.random.default_rng(0)).bootstrap_slot for b in range(BATCH)]  # fmt: skip
    slots = np.concatenate(slots).ravel()
    return slots[slots >= 0]


def test_reanalysing_draws_only_its_noise_and_logs_what_it_did(tmp_path):
    """Reanalysing every row (ratio 1) or none (ratio 0) draws the same random numbers from the acting search's and the
    replay's generators; only the training, and reanalyse's own noise generator, differ."""
    without = trained_model(reanalyse_ratio=0.0)
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0, env_kwargs=dict(max_episode_steps=15))
    with_reanalyse = MuZero("MlpPolicy", env, seed=0, **{**SMALL, "target_update_interval": 1000, **REANALYSE,
                                                         "reanalyse_ratio": 1.0})  # fmt: skip
    with_reanalyse.set_logger(configure(str(tmp_path), ["csv"]))
    with_reanalyse.learn(STEPS, log_interval=1)
    assert without.replay_rng.bit_generator.state == with_reanalyse.replay_rng.bit_generator.state
    assert without.search_rng.bit_generator.state == with_reanalyse.search_rng.bit_generator.state
    # The reanalysed roots' Dirichlet noise comes from a generator of its own.
    assert without.reanalyse_rng.bit_generator.state != with_reanalyse.reanalyse_rng.bit_generator.state
    parameters = zip(without.policy.parameters(), with_reanalyse.policy.parameters())
    assert any(not th.equal(one, other) for one, other in parameters)
    with open(tmp_path / "progress.csv") as file:
        rows = list(csv.DictReader(file))
    logged = {key for row in rows for key, value in row.items() if value}
    names = ("ms", "fraction", "value_change", "policy_kl", "td_steps", "roots")
    assert {f"train/reanalyse_{name}" for name in names} <= logged
    trained = [row for row in rows if row["train/reanalyse_fraction"]]  # a dump between two gradient steps has none
    assert len(trained) > 1 and all(float(row["train/reanalyse_fraction"]) == 1.0 for row in trained)
    assert all(float(row["train/reanalyse_ms"]) > 0 for row in trained)


@pytest.mark.parametrize(
    "settings", [dict(reanalyse_noise=False), dict(search_algorithm="gumbel")], ids=["no_noise", "gumbel"]
)
def test_reanalysing_without_noise_or_with_gumbel_draws_nothing_at_all(settings):
    without = trained_model(reanalyse_ratio=0.0, **settings)
    with_reanalyse = trained_model(reanalyse_ratio=1.0, **settings)
    for name in ("replay_rng", "search_rng", "reanalyse_rng"):
        assert getattr(without, name).bit_generator.state == getattr(with_reanalyse, name).bit_generator.state, name
    assert with_reanalyse._n_updates > 0


def test_the_replay_records_the_gradient_steps_made_when_each_step_was_stored():
    model = trained_model()
    stored = model.replay_buffer.stored_at_update[: model.replay_buffer.size]
    assert (stored[: SMALL["learning_starts"]] == 0).all() and (np.diff(stored) >= 0).all()
    assert 0 < stored[-1] <= model._n_updates


def test_rows_are_round_ratio_times_the_batch_drawn_only_when_neither_none_nor_all():
    rng = np.random.default_rng(0)
    for batch_size, ratio, count in [(5, 0.5, 3), (4, 0.1, 0), (4, 0.125, 1), (8, 1.0, 8), (8, 0.0, 0)]:
        before = copy.deepcopy(rng.bit_generator.state)
        rows = reanalysed_rows(batch_size, ratio, rng)
        assert len(rows) == count and len(set(rows)) == count and (np.diff(rows) > 0).all()
        assert (rng.bit_generator.state == before) == (count in (0, batch_size))
    drawn = np.concatenate([reanalysed_rows(10, 0.3, rng) for _ in range(2000)])
    assert np.bincount(drawn, minlength=10).min() > 0.8 * 600  # every row as likely, not the first ones


def test_value_horizons_shrink_by_one_step_per_age_interval_down_to_one():
    ages = np.array([0, 99, 100, 250, 900, 10_000])
    np.testing.assert_array_equal(value_horizons(10, ages, 100), [10, 10, 9, 8, 1, 1])
    np.testing.assert_array_equal(value_horizons(10, ages, 0), [10] * 6)


def test_policy_kl_is_finite_where_the_stored_search_left_actions_unvisited():
    fresh, stored = np.array([[0.5, 0.5], [1.0, 0.0]]), np.array([[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(kl_divergence(fresh, stored), [0.5 * np.log(0.5 / 1e-8) + 0.5 * np.log(0.5), 0.0])


@pytest.mark.parametrize("name, value", [("reanalyse_ratio", 1.5), ("reanalyse_ratio", -0.1),
                                         ("reanalyse_age_per_td_step", -1), ("reanalyse_age_per_td_step", 2.5),
                                         ("reanalyse_noise", "yes"), ("reanalyse_noise", 1)])  # fmt: skip
def test_bad_reanalyse_settings_are_refused(name, value):
    with pytest.raises(ValueError, match=name):
        MuZero("MlpPolicy", "CartPole-v1", **{**SMALL, name: value})


def test_reanalyse_settings_survive_model_files_and_older_files_load_without_reanalyse(tmp_path):
    settings = {"reanalyse_ratio": 0.25, "reanalyse_age_per_td_step": 7, "reanalyse_noise": False}
    model = MuZero("MlpPolicy", "CartPole-v1", seed=0, **{**SMALL, **settings})
    model.save(tmp_path / "model.zip")
    loaded = MuZero.load(tmp_path / "model.zip")
    assert (loaded.reanalyse_ratio, loaded.reanalyse_age_per_td_step, loaded.reanalyse_noise) == (0.25, 7, False)

    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    members["data"] = json.dumps({key: value for key, value in data.items() if not key.startswith("reanalyse")}).encode()
    with zipfile.ZipFile(tmp_path / "earlier.zip", "w") as archive:
        for name, contents in members.items():
            archive.writestr(name, contents)
    earlier = MuZero.load(tmp_path / "earlier.zip")
    # Reanalyse searched without noise before reanalyse_noise existed: such files go on as they trained.
    assert (earlier.reanalyse_ratio, earlier.reanalyse_age_per_td_step, earlier.reanalyse_noise) == (0.0, 0, False)
    assert MuZero("MlpPolicy", "CartPole-v1", **SMALL).reanalyse_noise is True  # new models have it

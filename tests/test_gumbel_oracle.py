"""The project's Gumbel MuZero against mctx's ``gumbel_muzero_policy`` (an outside implementation) on golden trees.

``tests/data/mctx_gumbel_oracle.json`` holds what mctx (JAX, float64, its defaults) did on the inputs of the
project's Gumbel golden trees: the same model outputs (``tests/hash_outputs.py``), legal actions and Gumbel noise.
``tests/data/make_mctx_gumbel_oracle.py`` wrote it and says how to regenerate it (it needs JAX, so it runs outside
CI). The project's searches must take the same actions with the same root visit counts, and return mctx's action
weights as their policy targets.

Where the project differs from mctx on purpose:

- the policy target is float32 (what the replay stores), mctx's weights float64: they agree to float32 rounding;
- the arithmetic is grouped differently (node values are W / N instead of mctx's running means, softmax(logits +
  sigma) below the root is computed from the priors with the unvisited children summed together, the mixed value
  divides once), so values differ in the last bits and could only change a decision on a near-exact tie; the golden
  trees have none;
- the least range of the min-max rescale of completed Q values: mctx's is 1e-8 (its ``epsilon``), the project's
  ``gumbel_min_q_range`` defaults to 1 (a fraction of a reward is not stretched to the full scale; see
  :mod:`sb3_muzero.mcts.driver`); the cases below search with mctx's;
- the Gumbel noise is the project's draw (``temperature * rng.gumbel(size=[B, A])``), handed to mctx in place of its
  own, since the two programs' generators differ: the ``temperature`` plays the part of mctx's ``gumbel_scale``.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from sb3_muzero.mcts import SearchSettings, reference, roots, search, tables
from tests.mcts_models import HashModel

ORACLE = json.loads((Path(__file__).parent / "data" / "mctx_gumbel_oracle.json").read_text())
CASES = ORACLE["cases"]
MCTX_EPSILON = 1e-8  # the least range of qtransform_completed_by_mix_value's rescale in mctx


def case_id(case: dict) -> str:
    legal = "masked" if case["legal"] is not None else "all-legal"
    shape = f"B{case['batch_size']}-A{case['num_actions']}-S{case['num_simulations']}"
    return f"{shape}-{legal}-T{case['temperature']}-k{case['max_considered_actions']}"


def run_case(case: dict, run):
    settings = SearchSettings(num_simulations=case["num_simulations"], gamma=ORACLE["discount"], search_algorithm="gumbel",
                              max_considered_actions=case["max_considered_actions"], search_backend="cpu",
                              gumbel_min_q_range=MCTX_EPSILON)  # fmt: skip
    model = HashModel(case["num_actions"], seed=case["model_seed"])
    legal = None if case["legal"] is None else np.array(case["legal"], dtype=bool)
    rng = np.random.default_rng(case["search_seed"])
    return run(model.root(case["batch_size"]), model.recurrent_fn, settings, rng=rng, legal_actions_mask=legal,
               temperature=case["temperature"])  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_gumbel_search_takes_mctx_actions_with_mctx_visits_and_weights(case, backend):
    result = run_case(case, reference.search if backend == "reference" else search)
    np.testing.assert_array_equal(result.visit_counts, case["visit_counts"])
    np.testing.assert_array_equal(result.action, case["action"])
    np.testing.assert_allclose(result.policy_target, case["action_weights"], rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_oracle_had_the_noise_the_search_draws(case):
    """The noise in the file is the project's draw for the case, so mctx searched with the same Gumbel noise."""
    shape = (case["batch_size"], case["num_actions"])
    noise = roots.gumbel_noise(np.random.default_rng(case["search_seed"]), case["temperature"], shape)
    np.testing.assert_array_equal(noise, case["gumbel"])


def test_the_oracle_cases_are_not_trivial():
    """Actions differ from the prior's argmax somewhere, visits spread, and masked cases mask."""
    spread = [np.count_nonzero(np.array(case["visit_counts"]), axis=1).max() for case in CASES]
    assert max(spread) >= 8 and sum(case["legal"] is not None for case in CASES) >= 6
    assert any(np.array(case["action_weights"]).max() < 0.9 for case in CASES)


@pytest.mark.parametrize("num_simulations", sorted(ORACLE["considered_visits_tables"], key=int))
def test_considered_visits_table_is_mctx_s(num_simulations):
    expected = np.array(ORACLE["considered_visits_tables"][num_simulations])
    np.testing.assert_array_equal(tables.considered_visits_table(16, int(num_simulations)), expected)

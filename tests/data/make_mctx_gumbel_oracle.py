"""Write ``mctx_gumbel_oracle.json``: mctx's Gumbel MuZero on the inputs of the project's Gumbel golden trees.

mctx (google-deepmind/mctx, JAX) is the outside implementation ``tests/test_gumbel_oracle.py`` compares the
project's search with. This script runs ``mctx.gumbel_muzero_policy`` with its defaults (16 considered actions,
``qtransform_completed_by_mix_value`` with c_visit 50 and c_scale 0.1) in float64 on the trees of the cases below:
the same root logits, values, rewards and discount (``tests/hash_outputs.py``'s model, ported to ``jax.numpy`` below
so that mctx's loop compiles, and checked against the numpy model before use), the same legal actions, and the same
Gumbel noise (the project's draw, ``numpy.random.default_rng(search_seed).gumbel(size=[B, A])`` scaled by the
temperature, handed to mctx in place of its own draw). It records mctx's actions, action weights and root visit
counts, and Sequential Halving's table of considered visits.

It needs JAX and mctx, which the project does not install; to regenerate the file (from the repository root):

    python3 -m venv /tmp/venv-jax && /tmp/venv-jax/bin/pip install jax mctx numpy
    /tmp/venv-jax/bin/python tests/data/make_mctx_gumbel_oracle.py

Written with jax 0.10.2, mctx 0.0.71 (recorded in the file).
"""

import json
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import mctx  # noqa: E402
import numpy as np  # noqa: E402
from mctx._src import seq_halving  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY))
from tests.hash_outputs import HashOutputs, random_legal_mask  # noqa: E402

OUTPUT = Path(__file__).with_name("mctx_gumbel_oracle.json")
DISCOUNT = 0.97  # tests/test_mcts.py's DISCOUNT
SEARCH_SEED = 7  # the generator seed of tests/test_mcts.py's run_both
# (batch_size, num_actions, num_simulations, masked, temperature, max_considered_actions)
CASES = [
    (1, 4, 10, False, 1.0, 16),
    (3, 4, 10, True, 1.0, 16),
    (17, 2, 50, True, 1.0, 16),
    (17, 4, 1, True, 1.0, 16),
    (3, 18, 2, False, 1.0, 16),
    (17, 18, 50, False, 1.0, 16),
    (17, 18, 50, True, 1.0, 16),
    (17, 18, 50, True, 0.0, 16),
    (17, 18, 10, True, 0.5, 16),
    (9, 18, 50, True, 1.0, 4),
    (9, 18, 50, True, 1.0, 1),
    (9, 18, 25, False, 1.0, 32),
]
TABLE_SIMULATIONS = (1, 2, 10, 25, 50)


def case_inputs(batch_size, num_actions, num_simulations, masked):
    """The model, legal mask and seeds of a case, as tests/test_mcts.py's gumbel_golden_case makes them."""
    model_seed = 1000 * batch_size + 10 * num_actions + num_simulations + 7
    legal = random_legal_mask(np.random.default_rng(model_seed), batch_size, num_actions) if masked else None
    return HashOutputs(num_actions, seed=model_seed), model_seed, legal


def _mix(state):
    """tests/hash_outputs.py's SplitMix64 finaliser in jax.numpy (uint64 arithmetic wraps as numpy's does)."""
    z = state + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _uniform(state, salt, low, high):
    bits = _mix(state ^ _mix(jnp.full_like(state, np.uint64(salt))))
    return low + (high - low) * (bits >> np.uint64(11)).astype(jnp.float64) / float(1 << 53)


class JaxHashOutputs:
    """tests/hash_outputs.py's HashOutputs (without levels) in jax.numpy."""

    def __init__(self, model: HashOutputs):
        assert model.levels == 0
        self.num_actions, self.value_scale = model.num_actions, model.value_scale

    def _outputs(self, state):
        value = _uniform(state, 1, -self.value_scale, self.value_scale)
        logits = jnp.stack([_uniform(state, 100 + a, -2.0, 2.0) for a in range(self.num_actions)], axis=-1)
        return value, logits

    def step(self, state, action):
        state = _mix(state[:, 0] ^ _mix(action.astype(jnp.uint64) + np.uint64(7)))
        value, logits = self._outputs(state)
        return _uniform(state, 2, -1.0, 1.0), value, logits, state[:, None]


def check_port(model: HashOutputs, port: JaxHashOutputs, batch_size: int) -> None:
    """The jax.numpy model gives the numpy model's outputs bit for bit, two steps deep."""
    _, _, state = model.root_outputs(batch_size)
    for action in (np.arange(batch_size) % model.num_actions, np.full(batch_size, model.num_actions - 1)):
        expected = model.step(state, action)
        actual = port.step(jnp.asarray(state), jnp.asarray(action))
        for wanted, got in zip(expected, actual):
            np.testing.assert_array_equal(np.asarray(got), wanted)
        state = expected[-1]


def run_mctx(model, legal, gumbel, num_simulations, max_considered_actions):
    logits, value, state = model.root_outputs(len(gumbel))
    root = mctx.RootFnOutput(prior_logits=jnp.asarray(logits), value=jnp.asarray(value), embedding=jnp.asarray(state))
    port = JaxHashOutputs(model)
    check_port(model, port, len(gumbel))

    def recurrent_fn(params, rng_key, action, embedding):
        reward, value, logits, state = port.step(embedding, action)
        discount = jnp.full(reward.shape, DISCOUNT)
        return mctx.RecurrentFnOutput(reward=reward, discount=discount, prior_logits=logits, value=value), state

    def policy(root):
        return mctx.gumbel_muzero_policy(
            params=None, rng_key=jax.random.PRNGKey(0), root=root, recurrent_fn=recurrent_fn,
            num_simulations=num_simulations, invalid_actions=None if legal is None else jnp.asarray(~legal),
            max_num_considered_actions=max_considered_actions, gumbel_scale=1.0,
        )  # fmt: skip

    draw = jax.random.gumbel
    jax.random.gumbel = lambda key, shape, dtype: jnp.asarray(gumbel, dtype=dtype)  # the project's noise
    try:
        return jax.jit(policy)(root)
    finally:
        jax.random.gumbel = draw


def main() -> None:
    cases = []
    for batch_size, num_actions, num_simulations, masked, temperature, max_considered in CASES:
        model, model_seed, legal = case_inputs(batch_size, num_actions, num_simulations, masked)
        gumbel = np.zeros((batch_size, num_actions))
        if temperature > 0:
            gumbel = temperature * np.random.default_rng(SEARCH_SEED).gumbel(size=(batch_size, num_actions))
        output = run_mctx(model, legal, gumbel, num_simulations, max_considered)
        inputs = dict(batch_size=batch_size, num_actions=num_actions, num_simulations=num_simulations,
                      model_seed=model_seed, search_seed=SEARCH_SEED, temperature=temperature,
                      max_considered_actions=max_considered, legal=None if legal is None else legal.astype(int).tolist(),
                      gumbel=gumbel.tolist())  # fmt: skip
        outputs = dict(action=np.asarray(output.action).tolist(), action_weights=np.asarray(output.action_weights).tolist(),
                       visit_counts=np.asarray(output.search_tree.summary().visit_counts).tolist())  # fmt: skip
        cases.append({**inputs, **outputs})
        print(f"case {len(cases)}/{len(CASES)}: B={batch_size} A={num_actions} S={num_simulations}", flush=True)
    tables = {str(s): [list(row) for row in seq_halving.get_table_of_considered_visits(16, s)] for s in TABLE_SIMULATIONS}
    versions = dict(jax=jax.__version__, mctx=mctx.__version__)
    document = dict(versions=versions, discount=DISCOUNT, cases=cases, considered_visits_tables=tables)
    OUTPUT.write_text(json.dumps(document, separators=(",", ":")) + "\n")
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

"""The categorical value transform: h and its inverse, two-hot projection, and the way back."""

import numpy as np
import pytest
import torch as th

from sb3_muzero.muzero.support import h, h_inverse, scalar_to_support, support_to_scalar


def test_h_matches_its_formula_and_inverse_round_trips():
    x = th.tensor([-1000.0, -3.0, -0.5, 0.0, 0.25, 1.0, 8.0, 250.0], dtype=th.float64)
    expected = np.sign(x.numpy()) * (np.sqrt(np.abs(x.numpy()) + 1) - 1) + 0.001 * x.numpy()
    np.testing.assert_allclose(h(x).numpy(), expected)
    np.testing.assert_allclose(h_inverse(h(x)).numpy(), x.numpy(), rtol=1e-9, atol=1e-9)
    assert h(th.tensor(3.0)).item() == pytest.approx(1.003)  # sqrt(4) - 1 + 0.003


def test_two_hot_has_the_right_atoms_and_mean():
    # h(3) = 1.003: mass 0.997 on atom 1 and 0.003 on atom 2 of the support -5..5.
    probabilities = scalar_to_support(th.tensor([3.0], dtype=th.float64), 5)[0]
    expected = np.zeros(11)
    expected[5 + 1], expected[5 + 2] = 0.997, 0.003
    np.testing.assert_allclose(probabilities.numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("support_size", [1, 10, 300])
def test_projection_round_trip_through_logits(support_size):
    limit = h_inverse(th.tensor(float(support_size))).item()
    x = th.linspace(-limit, limit, 101, dtype=th.float64)
    probabilities = scalar_to_support(x, support_size)
    np.testing.assert_allclose(probabilities.sum(-1).numpy(), 1.0)
    recovered = support_to_scalar(th.log(probabilities.clamp_min(1e-30)), support_size)
    np.testing.assert_allclose(recovered.numpy(), x.numpy(), rtol=1e-6, atol=1e-6)


def test_values_beyond_the_support_are_clipped_to_its_end():
    probabilities = scalar_to_support(th.tensor([1e9, -1e9]), 3)
    assert probabilities[0, -1] == 1 and probabilities[1, 0] == 1

"""The CUDA backend on a GPU: agreement with the reference and Numba, results on the device, no host sync.

Skipped where torch sees no CUDA GPU or CuPy is missing. ``test_kernels_host.py`` checks the same
kernels without a GPU (compiled by nvcc, and run on the host through their g++ build).
"""

import numpy as np
import pytest
import torch as th

from sb3_muzero.mcts import RecurrentOutput, RootInput, SearchSettings, reference, search
from sb3_muzero.mcts.backends import cpu, cuda_available, get_backend
from tests.mcts_models import Float32Model, HashModel, TorchModel
from tests.test_mcts import DISCOUNT, GOLDEN_GRID, golden_settings, gumbel_golden_case, random_legal_mask

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not (th.cuda.is_available() and cuda_available()), reason='needs a CUDA GPU and CuPy (pip install "sb3-muzero[cuda]")'
    ),
]


class DeviceModel:
    """A model computed on the GPU by torch alone (float32), so that a search with it need not touch the host."""

    def __init__(self, num_actions: int, latent_size: int = 8):
        generator = th.Generator().manual_seed(0)
        self.weights = th.randn(num_actions, latent_size, generator=generator).cuda()
        self.latent_size = latent_size

    def root(self, batch_size: int) -> RootInput:
        latent = th.rand(batch_size, self.latent_size, generator=th.Generator().manual_seed(1)).cuda()
        return RootInput(*self._heads(latent), latent)

    def recurrent_fn(self, latent: th.Tensor, action: th.Tensor) -> RecurrentOutput:
        new_latent = th.sin(1.7 * latent + 0.3 * action[:, None].float())
        logits, value = self._heads(new_latent)
        return RecurrentOutput(th.tanh(new_latent[:, 0]), value, logits, new_latent)

    def _heads(self, latent: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return th.sin(3.0 * latent @ self.weights.T), th.cos(latent.sum(dim=1))  # logits [B, A], value [B]


def run_three(model, batch_size, num_simulations, legal, noise_fraction, seed=7, gumbel=None, **kwargs):
    """The same search on the CUDA backend, the Numba backend and the reference, each with its own generator
    (``gumbel``: Gumbel's settings, for a Gumbel search)."""
    kwargs = dict(add_noise=True, legal_actions_mask=legal, **kwargs)
    device_model = TorchModel(model, device="cuda")
    gpu_settings = golden_settings(num_simulations, noise_fraction, "cuda", **(gumbel or {}))
    gpu = search(
        device_model.root(batch_size), device_model.recurrent_fn, gpu_settings, rng=np.random.default_rng(seed), **kwargs
    )
    root = model.root(batch_size)
    settings = golden_settings(num_simulations, noise_fraction, "cpu", **(gumbel or {}))
    numba = search(root, model.recurrent_fn, settings, rng=np.random.default_rng(seed), **kwargs)
    slow = reference.search(root, model.recurrent_fn, settings, rng=np.random.default_rng(seed), **kwargs)
    return gpu, numba, slow


def assert_same_search(gpu, numba, slow) -> None:
    """Same visits and actions; values and policy targets within 1e-5 (the device's exp may differ from glibc's in
    the last bit)."""
    for expected in (slow, numba):
        np.testing.assert_array_equal(gpu.visit_counts.cpu().numpy(), expected.visit_counts)
        np.testing.assert_allclose(gpu.root_value.cpu().numpy(), expected.root_value, rtol=0, atol=1e-5)
        np.testing.assert_allclose(gpu.q_values.cpu().numpy(), expected.q_values, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(gpu.action, expected.action)
        np.testing.assert_allclose(gpu.policy_target.cpu().numpy(), expected.policy_target, rtol=0, atol=1e-5)


@pytest.mark.parametrize("batch_size, num_actions, num_simulations, masked, noisy", GOLDEN_GRID)
def test_cuda_backend_agrees_with_reference_and_numba(batch_size, num_actions, num_simulations, masked, noisy):
    seed = 1000 * batch_size + 10 * num_actions + num_simulations
    model = HashModel(num_actions, seed=seed)
    legal = random_legal_mask(np.random.default_rng(seed), batch_size, num_actions) if masked else None
    assert_same_search(*run_three(model, batch_size, num_simulations, legal, 0.25 if noisy else 0.0))


@pytest.mark.parametrize("batch_size, num_actions, num_simulations, masked, noisy", GOLDEN_GRID)
def test_gumbel_cuda_backend_agrees_with_reference_and_numba(batch_size, num_actions, num_simulations, masked, noisy):
    model, legal, gumbel, kwargs = gumbel_golden_case(batch_size, num_actions, num_simulations, masked, noisy)
    assert_same_search(*run_three(model, batch_size, num_simulations, legal, 0.25, gumbel=gumbel, **kwargs))


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_gumbel_cuda_backend_agrees_when_scores_tie(levels):
    model = HashModel(18, seed=18 + 100 * levels, levels=levels)
    assert_same_search(*run_three(model, 17, 50, None, 0.0, gumbel=dict(search_algorithm="gumbel")))


@pytest.mark.parametrize("batch_size, num_actions, num_simulations", [(17, 2, 50), (17, 4, 50), (17, 18, 50), (3, 18, 10)])
@pytest.mark.parametrize("levels", [1, 2, 3])
def test_cuda_backend_agrees_when_scores_tie(batch_size, num_actions, num_simulations, levels):
    model = HashModel(num_actions, seed=num_actions + 100 * levels, levels=levels)
    assert_same_search(*run_three(model, batch_size, num_simulations, None, 0.0))


@pytest.mark.parametrize("temperature", [1.0, 0.5, 0.3])
def test_cuda_backend_samples_the_same_actions(temperature):
    legal = random_legal_mask(np.random.default_rng(4), 17, 6)
    assert_same_search(*run_three(HashModel(6, seed=41), 17, 30, legal, 0.25, temperature=temperature))


def test_cuda_backend_reads_float32_outputs():
    assert_same_search(*run_three(Float32Model(18, seed=5), 17, 50, None, 0.25))


def test_priors_differ_from_numba_by_a_few_ulps_at_most():
    """The one documented difference: the device's exp. Every node's priors stay within a few ulps of Numba's."""
    batch_size, num_actions, num_simulations = 17, 18, 50
    run_three(HashModel(num_actions, seed=8), batch_size, num_simulations, None, 0.25)
    from sb3_muzero.mcts.backends import cuda

    device = th.device("cuda", th.cuda.current_device())
    gpu_tree = cuda.new_tree(batch_size, num_simulations + 1, num_actions, device=device)  # the buffers the search used
    cpu_tree = cpu.new_tree(batch_size, num_simulations + 1, num_actions)
    gpu_priors = cuda.to_numpy(gpu_tree.kernel_tree.arrays.unvisited_prior)  # priors, -1 (visited) and pending logits
    np.testing.assert_array_max_ulp(gpu_priors, cpu_tree.unvisited_prior, 16)


def test_results_are_device_tensors_and_host_actions():
    model = DeviceModel(4)
    result = search(
        model.root(9),
        model.recurrent_fn,
        SearchSettings(num_simulations=12, gamma=DISCOUNT, search_backend="cuda"),
        rng=np.random.default_rng(0),
    )
    assert isinstance(result.action, np.ndarray) and result.action.dtype == np.int64 and result.action.shape == (9,)
    for tensor, dtype in ((result.visit_counts, th.int32), (result.root_value, th.float64), (result.q_values, th.float64)):
        assert isinstance(tensor, th.Tensor) and tensor.is_cuda and tensor.dtype == dtype
    assert (result.visit_counts.sum(dim=1) == 12).all()


def test_the_simulation_loop_does_not_synchronise(monkeypatch):
    """torch raises on any synchronising call from the first simulation until the root is read."""
    from sb3_muzero.mcts.backends import cuda

    model = DeviceModel(18)
    simulations = []

    def recurrent_fn(latent, action):
        if not simulations:
            th.cuda.set_sync_debug_mode("error")
        simulations.append(len(action))
        return model.recurrent_fn(latent, action)

    read_root = cuda.read_root

    def read_root_after_the_loop(tree):
        th.cuda.set_sync_debug_mode("default")
        return read_root(tree)

    monkeypatch.setattr(cuda, "read_root", read_root_after_the_loop)
    root = model.root(64)
    search(
        root,
        model.recurrent_fn,
        SearchSettings(num_simulations=3, gamma=DISCOUNT, search_backend="cuda"),
        rng=np.random.default_rng(0),
    )  # compile, warm up
    try:
        settings = SearchSettings(num_simulations=20, gamma=DISCOUNT, root_exploration_fraction=0.25, search_backend="cuda")
        search(root, recurrent_fn, settings, rng=np.random.default_rng(0), add_noise=True, temperature=1.0)
    finally:
        th.cuda.set_sync_debug_mode("default")
    assert simulations == [64] * 20


def test_a_simulation_step_can_be_captured_in_a_cuda_graph():
    """A stricter check than torch's sync debug mode, which sees only torch's calls: capturing a stream fails on
    any synchronising call, CuPy's included. One step of the loop (DLPack views, one kernel launch) is captured."""
    from sb3_muzero.mcts.backends import cuda

    batch_size, num_actions, num_simulations = 32, 4, 4
    model = DeviceModel(num_actions)
    root = model.root(batch_size)
    tree = cuda.new_tree(batch_size, num_simulations + 1, num_actions, device=root.latent.device)
    exploration = cuda.exploration_table(num_simulations + 1, 1.25, 19652.0, device=root.latent.device)
    legal = np.ones((batch_size, num_actions), dtype=bool)
    _, action = cuda.init_roots(tree, root.prior_logits, root.value, legal, None, 0.0, exploration)
    reward, value, logits, _ = model.recurrent_fn(root.latent, action.clone())
    cuda.expand_and_select(tree, 1, reward, value, logits, DISCOUNT, exploration, True)
    th.cuda.synchronize()
    graph = th.cuda.CUDAGraph()
    with th.cuda.graph(graph):
        cuda.expand_and_select(tree, 2, reward, value, logits, DISCOUNT, exploration, True)
    graph.replay()  # runs the captured step: simulation 2
    visits, _, _ = cuda.read_root(tree)
    assert (visits.sum(dim=1) == 2).all()


def test_selection_outputs_are_views_of_the_tree():
    from sb3_muzero.mcts.backends import cuda

    tree = cuda.new_tree(5, 3, 4, device="cuda")
    assert tree.leaf_parent.data_ptr() == tree.kernel_tree.arrays.leaf_parent.data.ptr
    assert tree.leaf_action.data_ptr() == tree.kernel_tree.arrays.leaf_action.data.ptr


def test_auto_backend_is_cuda_for_cuda_latents():
    from sb3_muzero.mcts.backends import cuda

    assert get_backend("auto", th.zeros(2, 3, device="cuda")) is cuda
    assert get_backend("auto", th.zeros(2, 3)) is cpu
    model = DeviceModel(4)
    result = search(
        model.root(3), model.recurrent_fn, SearchSettings(num_simulations=5, gamma=DISCOUNT), rng=np.random.default_rng(0)
    )
    assert result.visit_counts.is_cuda


def test_cuda_backend_refuses_host_latents():
    model = HashModel(3, seed=1)
    with pytest.raises(ValueError, match="root latent must be a torch tensor on a CUDA device"):
        search(
            model.root(2),
            model.recurrent_fn,
            SearchSettings(num_simulations=4, gamma=DISCOUNT, search_backend="cuda"),
            rng=np.random.default_rng(0),
        )

"""The CUDA backend's own Python code (``backends/cuda.py``) without a GPU, over a stand-in for CuPy.

The stand-in implements the few CuPy calls the backend makes with numpy and the host build of
``search.cu`` (``RawModule`` launches the kernels through :class:`tests.host_kernels.HostDevice`,
``from_dlpack`` is numpy's, ``Device`` and ``ExternalStream`` do nothing), and the "GPU" is the CPU
device of torch. This runs the backend's glue through the unchanged search driver: inputs read in
place through DLPack, selection outputs as torch views of the tree, root statistics written into
torch tensors, tree reuse, the action choice on the "device". It cannot check CuPy itself, NVRTC,
streams or the GPU: ``test_cuda_backend.py`` does, where there is one.
"""

import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
import torch as th

from sb3_muzero.mcts import SearchSettings, driver, kernels, reference, search
from tests.host_kernels import HostDevice, gxx
from tests.mcts_models import Float32Model, HashModel, TorchModel
from tests.test_mcts import DISCOUNT, random_legal_mask

pytestmark = pytest.mark.skipif(gxx() is None, reason="g++ is not installed: the host build of search.cu needs it")


class StandInArray(np.ndarray):
    """A numpy array with CuPy's ``data.ptr``."""

    @property
    def data(self):
        return SimpleNamespace(ptr=self.ctypes.data)


def stand_in_cupy(host: HostDevice) -> types.ModuleType:
    """The CuPy calls of backends/cuda.py, on the host."""

    class RawModule:
        def __init__(self, code: str, options: tuple):
            assert code == kernels.source_text() and options == kernels.COMPILE_OPTIONS

        def get_function(self, name: str):
            def launch(grid: tuple, block: tuple, args: tuple) -> None:
                host.launch(name, grid[0] * block[0], tuple(np.asarray(a) if isinstance(a, np.ndarray) else a for a in args))

            return launch

    class Context:
        def __init__(self, *args):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return False

    cupy = types.ModuleType("cupy")
    cupy.__version__ = "stand-in"
    cupy.empty = lambda shape, dtype: np.empty(shape, dtype).view(StandInArray)
    cupy.asarray = lambda array: np.array(array).view(StandInArray)
    cupy.from_dlpack = lambda tensor: np.from_dlpack(tensor).view(StandInArray)
    cupy.RawModule = RawModule
    runtime = SimpleNamespace(getDeviceCount=lambda: 1, CUDARuntimeError=RuntimeError)
    cupy.cuda = SimpleNamespace(Device=Context, ExternalStream=Context, runtime=runtime)
    return cupy


@pytest.fixture
def cuda_on_host(monkeypatch, host_kernel_library):
    """backends/cuda.py with the stand-in CuPy and torch's CPU device as its GPU; the search driver uses it."""
    from sb3_muzero.mcts.backends import cuda

    host = HostDevice(host_kernel_library)
    monkeypatch.setitem(sys.modules, "cupy", stand_in_cupy(host))
    monkeypatch.setattr(cuda, "_devices", {})
    monkeypatch.setattr(cuda, "_cuda_device", lambda device: th.device("cpu"))
    monkeypatch.setattr(th.cuda, "current_stream", lambda device=None: SimpleNamespace(cuda_stream=0))
    monkeypatch.setattr(driver, "get_backend", lambda name, latent: cuda)
    return host


@pytest.mark.parametrize(
    "model, temperature",
    [(HashModel(5, seed=3), 0.0), (Float32Model(18, seed=4), 1.0), (HashModel(4, seed=6, levels=2), 0.5)],
)
@pytest.mark.parametrize("algorithm", ["puct", "gumbel"])
def test_cuda_backend_glue_agrees_with_reference(cuda_on_host, model, temperature, algorithm):
    batch_size, num_simulations = 11, 30
    legal = random_legal_mask(np.random.default_rng(2), batch_size, model.num_actions)
    settings = SearchSettings(num_simulations=num_simulations, gamma=DISCOUNT, search_algorithm=algorithm)
    kwargs = dict(add_noise=True, legal_actions_mask=legal, temperature=temperature)
    torch_model = TorchModel(model, device="cpu")
    for _ in range(2):  # the second search reuses the first one's tree
        result = search(
            torch_model.root(batch_size), torch_model.recurrent_fn, settings, rng=np.random.default_rng(1), **kwargs
        )
        expected = reference.search(
            model.root(batch_size), model.recurrent_fn, settings, rng=np.random.default_rng(1), **kwargs
        )
        np.testing.assert_array_equal(result.visit_counts.numpy(), expected.visit_counts)
        np.testing.assert_allclose(result.root_value.numpy(), expected.root_value, rtol=0, atol=1e-5)
        np.testing.assert_allclose(result.q_values.numpy(), expected.q_values, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(result.action, expected.action)
        np.testing.assert_array_equal(result.policy_target.numpy(), expected.policy_target)
    assert isinstance(result.action, np.ndarray) and result.action.dtype == np.int64
    assert isinstance(result.visit_counts, th.Tensor) and result.visit_counts.dtype == th.int32
    assert result.root_value.dtype == result.q_values.dtype == th.float64
    assert isinstance(result.policy_target, th.Tensor) and result.policy_target.dtype == th.float32
    prefix = "gumbel_" if algorithm == "gumbel" else ""
    assert ("gumbel_choose" if algorithm == "gumbel" else "choose_actions") in cuda_on_host.launches
    assert (prefix + "expand_backup_select_f32" in cuda_on_host.launches) == isinstance(model, Float32Model)


def test_selection_outputs_are_views_of_the_tree(cuda_on_host):
    from sb3_muzero.mcts.backends import cuda

    tree = cuda.new_tree(5, 3, 4)
    assert tree.leaf_parent.data_ptr() == tree.kernel_tree.arrays.leaf_parent.data.ptr
    assert tree.leaf_action.data_ptr() == tree.kernel_tree.arrays.leaf_action.data.ptr
    assert cuda.new_tree(5, 3, 4) is tree  # reused by the next search of the same shape


def test_model_outputs_of_the_wrong_shape_are_refused(cuda_on_host):
    torch_model = TorchModel(HashModel(4, seed=1), device="cpu")

    def bad_recurrent_fn(latent, action):
        return torch_model.recurrent_fn(latent, action)._replace(value=th.zeros(len(action), 1))

    with pytest.raises(ValueError, match=r"recurrent_fn's value must have shape \[3\], got \[3, 1\]"):
        search(
            torch_model.root(3),
            bad_recurrent_fn,
            SearchSettings(num_simulations=4, gamma=DISCOUNT),
            rng=np.random.default_rng(0),
        )

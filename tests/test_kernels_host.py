"""The CUDA kernels without a GPU: ``search.cu`` compiled by nvcc, and run on the host through its g++ build.

The host build runs the very same source as the GPU, so the golden tests below check the kernels'
logic (selection, tie-breaks, backup, noise, action sampling) and the argument lists that the CUDA
backend passes them (:mod:`sb3_muzero.mcts.kernels`). What only a GPU can check (CuPy, DLPack,
streams, the device's ``exp``) is in ``test_cuda_backend.py``.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from sb3_muzero.mcts import SearchSettings, Tree, action_choice, driver, kernels, reference, search
from sb3_muzero.mcts.backends import cpu
from sb3_muzero.mcts.types import NODE_DTYPE, PRIORS_PENDING, VISITED_DTYPE
from tests.host_kernels import HostDevice, HostKernelBackend, gxx, kernel_signatures, struct_fields
from tests.mcts_models import Float32Model, HashModel
from tests.test_mcts import DISCOUNT, GOLDEN_GRID, golden_settings, gumbel_golden_case, random_legal_mask

needs_gxx = pytest.mark.skipif(gxx() is None, reason="g++ is not installed: the host build of search.cu needs it")
SOURCE = kernels.source_text()
REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def host_backend(host_kernel_library) -> HostKernelBackend:
    return HostKernelBackend(HostDevice(host_kernel_library))


def host_search(monkeypatch, host_backend, root, recurrent_fn, settings, **kwargs):
    """The search driver of sb3_muzero.mcts.driver, unchanged, over the host build of the kernels."""
    with monkeypatch.context() as patch:
        patch.setattr(driver, "get_backend", lambda name, latent: host_backend)
        return search(root, recurrent_fn, settings, **kwargs)


def run_three(monkeypatch, host_backend, model, batch_size, num_simulations, legal, noise_fraction, seed=7, gumbel=None,
              **kwargs):  # fmt: skip
    """The same search on the host kernels, the Numba backend and the reference, each with its own generator
    (``gumbel``: Gumbel's settings, for a Gumbel search)."""
    kwargs = dict(add_noise=True, legal_actions_mask=legal, **kwargs)
    settings = golden_settings(num_simulations, noise_fraction, search_backend="cpu", **(gumbel or {}))
    root = model.root(batch_size)
    host = host_search(
        monkeypatch, host_backend, root, model.recurrent_fn, settings, rng=np.random.default_rng(seed), **kwargs
    )
    numba = search(root, model.recurrent_fn, settings, rng=np.random.default_rng(seed), **kwargs)
    slow = reference.search(root, model.recurrent_fn, settings, rng=np.random.default_rng(seed), **kwargs)
    return host, numba, slow


def assert_same_search(host, numba, slow) -> None:
    """Same visits, actions and policy targets as both; values within 1e-5 of the reference and equal to Numba's bit
    for bit (the host build and Numba both call glibc's exp, so nothing may differ)."""
    np.testing.assert_array_equal(host.visit_counts, slow.visit_counts)
    np.testing.assert_allclose(host.root_value, slow.root_value, rtol=0, atol=1e-5)
    np.testing.assert_allclose(host.q_values, slow.q_values, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(host.action, slow.action)
    np.testing.assert_array_equal(host.policy_target, slow.policy_target)
    for field in ("action", "visit_counts", "root_value", "q_values", "policy_target"):
        np.testing.assert_array_equal(getattr(host, field), getattr(numba, field), err_msg=field)


@needs_gxx
@pytest.mark.parametrize("batch_size, num_actions, num_simulations, masked, noisy", GOLDEN_GRID)
def test_host_kernels_agree_with_reference_and_numba(monkeypatch, host_backend, batch_size, num_actions, num_simulations,
                                                     masked, noisy):  # fmt: skip
    seed = 1000 * batch_size + 10 * num_actions + num_simulations
    model = HashModel(num_actions, seed=seed)
    legal = random_legal_mask(np.random.default_rng(seed), batch_size, num_actions) if masked else None
    results = run_three(monkeypatch, host_backend, model, batch_size, num_simulations, legal, 0.25 if noisy else 0.0)
    assert_same_search(*results)


@needs_gxx
@pytest.mark.parametrize("batch_size, num_actions, num_simulations", [(17, 2, 50), (17, 4, 50), (17, 18, 50), (3, 18, 10)])
@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("algorithm", ["puct", "gumbel"])
def test_host_kernels_agree_when_scores_tie(monkeypatch, host_backend, batch_size, num_actions, num_simulations, levels,
                                            algorithm):  # fmt: skip
    model = HashModel(num_actions, seed=num_actions + 100 * levels, levels=levels)
    gumbel = dict(search_algorithm=algorithm)
    assert_same_search(*run_three(monkeypatch, host_backend, model, batch_size, num_simulations, None, 0.0, gumbel=gumbel))


@needs_gxx
@pytest.mark.parametrize("batch_size, num_actions, num_simulations, masked, noisy", GOLDEN_GRID)
def test_gumbel_host_kernels_agree_with_reference_and_numba(monkeypatch, host_backend, batch_size, num_actions,
                                                            num_simulations, masked, noisy):  # fmt: skip
    model, legal, gumbel, kwargs = gumbel_golden_case(batch_size, num_actions, num_simulations, masked, noisy)
    results = run_three(monkeypatch, host_backend, model, batch_size, num_simulations, legal, 0.25, gumbel=gumbel, **kwargs)
    assert_same_search(*results)
    assert "gumbel_choose" in host_backend.device.launches


@needs_gxx
@pytest.mark.parametrize("max_considered_actions", [1, 3, 32])
def test_gumbel_host_kernels_agree_for_any_number_of_considered_actions(monkeypatch, host_backend, max_considered_actions):
    model, legal, gumbel, kwargs = gumbel_golden_case(9, 18, 50, True, True, max_considered_actions)
    assert_same_search(*run_three(monkeypatch, host_backend, model, 9, 50, legal, 0.0, gumbel=gumbel, **kwargs))


@needs_gxx
@pytest.mark.parametrize("temperature", [1.0, 0.5, 0.3])
def test_host_kernels_sample_the_same_actions(monkeypatch, host_backend, temperature):
    """Sampling on the device draws the same uniforms as choose_action and picks the same actions."""
    model = HashModel(6, seed=41)
    legal = random_legal_mask(np.random.default_rng(4), 17, 6)
    results = run_three(monkeypatch, host_backend, model, 17, 30, legal, 0.25, temperature=temperature)
    assert_same_search(*results)


@needs_gxx
@pytest.mark.parametrize("num_actions, num_simulations", [(4, 50), (18, 50)])
@pytest.mark.parametrize("algorithm", ["puct", "gumbel"])
def test_host_kernels_read_float32_outputs_like_numba(monkeypatch, host_backend, num_actions, num_simulations, algorithm):
    model = Float32Model(num_actions, seed=5)
    gumbel = dict(search_algorithm=algorithm)
    results = run_three(monkeypatch, host_backend, model, 17, num_simulations, None, 0.25, gumbel=gumbel, temperature=1.0)
    assert_same_search(*results)
    expected_kernel = "expand_backup_select_f32" if algorithm == "puct" else "gumbel_expand_backup_select_f32"
    assert expected_kernel in host_backend.device.launches


@needs_gxx
@pytest.mark.parametrize("num_actions, masked", [(4, True), (18, False)])
@pytest.mark.parametrize("algorithm", ["puct", "gumbel"])
def test_host_kernels_build_the_same_trees_as_numba(monkeypatch, host_backend, num_actions, masked, algorithm):
    """Every node, not just the root: statistics, links, visited slots, priors (and pending logits), Q range, and in
    Gumbel searches the network values."""
    batch_size, num_simulations = 9, 40
    model = HashModel(num_actions, seed=77)
    legal = random_legal_mask(np.random.default_rng(1), batch_size, num_actions) if masked else None
    gumbel = dict(search_algorithm=algorithm)
    run_three(monkeypatch, host_backend, model, batch_size, num_simulations, legal, 0.25, gumbel=gumbel, temperature=1.0)
    host = host_backend.last_tree.arrays
    numba = cpu.new_tree(batch_size, num_simulations + 1, num_actions)  # the buffer the last CPU search used
    host_nodes = kernels.as_records(host.nodes, NODE_DTYPE)
    fields = [name for name in NODE_DTYPE.names if name != "unused"]
    assert (numba.nodes["best_unvisited"] == PRIORS_PENDING).any()  # some nodes were never selected through
    for field in fields:
        np.testing.assert_array_equal(host_nodes[field], numba.nodes[field], err_msg=field)
    gumbel_fields = ("raw_value",) if algorithm == "gumbel" else ()
    for field in ("unvisited_prior", "min_max", "leaf_parent", "leaf_action", *gumbel_fields):
        np.testing.assert_array_equal(getattr(host, field), getattr(numba, field), err_msg=field)
    in_use = np.arange(num_actions) < numba.nodes["num_visited"][..., None]  # [B, N, A] slots in use
    assert in_use[:, 0].sum() > batch_size  # roots with several visited children
    host_visited = kernels.as_records(host.visited, VISITED_DTYPE)
    for field in VISITED_DTYPE.names:
        np.testing.assert_array_equal(host_visited[field][in_use], numba.visited[field][in_use], err_msg=field)


@needs_gxx
@pytest.mark.parametrize("temperature", [0.0, 1.0, 0.5, 0.25, 1 / 3, 2.0, 7.0, 0.01, 1e-300])
def test_choose_actions_kernel_equals_choose_action(host_backend, temperature):
    rng = np.random.default_rng(3)
    num_simulations, num_actions = 50, 7
    visits = rng.integers(0, 4, size=(400, num_actions)) * rng.integers(1, num_simulations // 3, size=(400, 1))
    visits[:50] = rng.integers(1, num_simulations // num_actions, size=(50, 1))  # rows of equal counts
    visits[50:60] = 0
    visits[50:60, -1] = num_simulations  # one visited action, the last
    visits[visits.max(axis=1) == 0, 0] = 1  # every row has a visit
    expected = action_choice.choose_action(np.random.default_rng(9), visits, temperature)
    actual = host_backend.choose_action(np.random.default_rng(9), visits, temperature, num_simulations)
    np.testing.assert_array_equal(actual, expected)


@needs_gxx
def test_choose_actions_kernel_at_exact_thresholds(host_backend):
    """Uniforms that put the threshold exactly on a cumulative weight: the count includes it (<=), so the
    sample moves past it and past the unvisited actions after it; a uniform of 0 picks the first visited action."""
    visits = np.array([[0, 2, 0, 2], [1, 1, 0, 0], [0, 3, 0, 0], [2, 2, 0, 0], [1, 0, 0, 3]])
    uniforms = np.array([0.0, 0.5, np.nextafter(1.0, 0.0), 0.5, 0.25])
    fixed = SimpleNamespace(random=lambda size: uniforms[:size])  # a generator that draws these uniforms
    expected = action_choice.choose_action(fixed, visits, 1.0)
    np.testing.assert_array_equal(expected, [1, 1, 1, 1, 3])
    np.testing.assert_array_equal(host_backend.choose_action(fixed, visits, 1.0, 3), expected)


@needs_gxx
def test_host_kernels_refuse_model_outputs_of_the_wrong_shape(monkeypatch, host_backend):
    model = HashModel(4, seed=1)

    def bad_recurrent_fn(latent, action):
        output = model.recurrent_fn(latent, action)
        return output._replace(prior_logits=output.prior_logits[:, :3])

    with pytest.raises(ValueError, match=r"recurrent_fn's prior_logits must have shape \[5, 4\], got \[5, 3\]"):
        settings = SearchSettings(num_simulations=3, gamma=DISCOUNT)
        host_search(monkeypatch, host_backend, model.root(5), bad_recurrent_fn, settings, rng=np.random.default_rng(0))


@needs_gxx
def test_host_device_refuses_arguments_that_do_not_match_the_kernel(host_backend):
    """Python scalars would reach a CUDA kernel as 64-bit values whatever the parameter: the shared launch code
    must pass numpy scalars of the parameter's type, and arrays of the pointer's element type."""
    visits = np.zeros((2, 3), dtype=np.int32)
    action = np.zeros(2, dtype=np.int64)
    dummy = np.zeros(1)
    arguments = [visits, np.int32(2), np.int32(3), np.int32(0), dummy, dummy, np.int32(5), action]
    host_backend.device.launch("choose_actions", 2, tuple(arguments))
    for index, wrong in [(1, 2), (2, np.int64(3)), (0, visits.astype(np.int64)), (7, action.astype(np.int32))]:
        with pytest.raises(TypeError, match=f"argument {index} of choose_actions"):
            host_backend.device.launch("choose_actions", 2, (*arguments[:index], wrong, *arguments[index + 1 :]))


def test_tree_arrays_struct_follows_the_tree_layout():
    """The kernels read the address table in Tree's field order, with the element types of TREE_LAYOUT."""
    c_types = {np.int32: "int*", np.float64: "double*", np.int64: "long long*"}
    c_types.update({NODE_DTYPE: "Node*", VISITED_DTYPE: "VisitedChild*"})
    fields = struct_fields(SOURCE, "TreeArrays")
    assert [name for _, name in fields] == list(Tree._fields) == list(kernels.TREE_LAYOUT)
    assert [c_type for c_type, _ in fields] == [c_types[dtype.type if dtype.fields is None else dtype]
                                                for dtype, _ in kernels.TREE_LAYOUT.values()]  # fmt: skip
    tree = cpu.new_tree(2, 3, 4)
    assert {name: getattr(tree, name).dtype for name in Tree._fields} == {
        name: dtype for name, (dtype, _) in kernels.TREE_LAYOUT.items()
    }
    assert re.search(r"const int PRIORS_PENDING = (-?\d+);", SOURCE).group(1) == str(PRIORS_PENDING)


@pytest.mark.parametrize("struct, dtype", [("Node", NODE_DTYPE), ("VisitedChild", VISITED_DTYPE)])
def test_record_structs_match_the_record_dtypes(struct, dtype):
    """search.cu's structs declare the fields of the numpy record dtypes, in order and with the same types, so
    that the aligned layouts (offsets and size) agree."""
    c_types = {np.dtype(np.float64): "double", np.dtype(np.int32): "int"}
    declared = re.findall(
        r"^\s*(\w+) (\w+)(\[\d+\])?;", re.search(rf"struct {struct} \{{(.*?)\}};", SOURCE, re.S).group(1), re.M
    )
    expected = []
    for name in dtype.names:
        field_type = dtype.fields[name][0]
        base, shape = (field_type.base, field_type.shape) if field_type.shape else (field_type, ())
        expected.append((c_types[base], name, f"[{shape[0]}]" if shape else ""))
    assert declared == expected
    assert dtype.isalignedstruct and dtype.itemsize == {"Node": 64, "VisitedChild": 32}[struct]


def test_kernel_source_declares_the_launched_kernels_and_needs_no_header():
    """NVRTC, which CuPy compiles with, provides no headers: the source must not include any."""
    assert set(kernel_signatures(SOURCE)) == set(kernels.KERNEL_NAMES)
    assert not re.search(r"^\s*#\s*include", SOURCE, re.M)
    assert "--fmad=false" in kernels.COMPILE_OPTIONS and not any("fast" in option for option in kernels.COMPILE_OPTIONS)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_search_cu_compiles_to_ptx(tmp_path):
    ptx = tmp_path / "search.ptx"
    command = ["nvcc", "-ptx", "-arch=sm_90", *kernels.COMPILE_OPTIONS, "-Werror", "all-warnings",
               str(kernels.source_path()), "-o", str(ptx)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"nvcc failed:\n{result.stderr}"
    entries = re.findall(r"^\.visible \.entry (\w+)\(", ptx.read_text(), re.M)
    assert sorted(entries) == sorted(kernels.KERNEL_NAMES)


def test_importing_the_package_does_not_import_cupy():
    code = (
        "import sys, numpy as np, sb3_muzero, sb3_muzero.mcts, sb3_muzero.mcts.kernels, sb3_muzero.mcts.backends.cuda\n"
        "from sb3_muzero.mcts import SearchSettings, search\n"
        "from tests.mcts_models import HashModel\n"
        "model = HashModel(3, seed=1)\n"
        "search(model.root(2), model.recurrent_fn, SearchSettings(num_simulations=4), rng=np.random.default_rng(0))\n"
        "assert 'cupy' not in sys.modules, 'cupy was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=REPOSITORY)
    assert result.returncode == 0, result.stderr


def test_cuda_backend_without_cupy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # as if CuPy were not installed
    model = HashModel(3, seed=1)
    with pytest.raises(ImportError, match=re.escape('pip install "sb3-muzero[cuda]"')):
        search(
            model.root(2),
            model.recurrent_fn,
            SearchSettings(num_simulations=4, gamma=DISCOUNT, search_backend="cuda"),
            rng=np.random.default_rng(0),
        )


class FakeCupy:
    """Just enough of CuPy's module for the backend checks: a version and a device count."""

    __version__ = "0.0-test"

    def __init__(self, device_count: int):
        runtime = type("runtime", (), {"CUDARuntimeError": RuntimeError, "getDeviceCount": staticmethod(lambda: device_count)})
        self.cuda = type("cuda", (), {"runtime": runtime})


def test_cuda_backend_without_a_gpu_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", FakeCupy(device_count=0))
    model = HashModel(3, seed=1)
    with pytest.raises(RuntimeError, match=r"needs a CUDA GPU, and CuPy 0\.0-test sees none.*sb3-muzero\[cuda\]"):
        search(
            model.root(2),
            model.recurrent_fn,
            SearchSettings(num_simulations=4, gamma=DISCOUNT, search_backend="cuda"),
            rng=np.random.default_rng(0),
        )


def test_cuda_backend_refuses_host_latents(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", FakeCupy(device_count=1))
    model = HashModel(3, seed=1)
    with pytest.raises(ValueError, match="root latent must be a torch tensor on a CUDA device; got ndarray"):
        search(
            model.root(2),
            model.recurrent_fn,
            SearchSettings(num_simulations=4, gamma=DISCOUNT, search_backend="cuda"),
            rng=np.random.default_rng(0),
        )


def test_auto_backend_stays_on_cpu_without_cupy(monkeypatch):
    from sb3_muzero.mcts.backends import get_backend

    monkeypatch.setitem(sys.modules, "cupy", None)
    assert get_backend("auto", SimpleNamespace(device=SimpleNamespace(type="cuda"))) is cpu

"""CUDA backend: the search kernels of ``kernels/search.cu`` as CuPy raw kernels, with the trees on the GPU.

It has the interface of :mod:`sb3_muzero.mcts.backends.cpu` and runs the same kernels, one CUDA
thread per tree, each mirroring its Numba counterpart operation for operation in float64. The
driver, :func:`sb3_muzero.mcts.driver.search`, is the same for both backends.

How it runs
    - The kernels are compiled with NVRTC by ``cupy.RawModule`` on first use on each GPU (CuPy also
      keeps the binary in its disk cache), with ``--fmad=false`` and without fast math.
    - The trees are CuPy arrays on the root latent's GPU, reused from one search to the next like the
      CPU backend's (:mod:`sb3_muzero.mcts.workspace`).
    - Tensors pass between torch and CuPy through DLPack, without copies: the model's outputs are read
      where they lie (float32 or float64; float16 and bfloat16 are widened to float32), the selected
      (parent, action) handed to the driver are torch views of the tree's arrays, and the root
      statistics are written straight into torch tensors.
    - Every kernel runs on torch's current stream of the latent's device, so it is ordered with the
      model's work without any synchronisation: the simulation loop makes none. Host data is copied
      in before the loop (the legal mask, the Dirichlet noise and the exploration table) and after it
      (the uniforms that sample the actions); the chosen actions are the only data that comes back. Gumbel's
      selection (noise, shifted root logits, Sequential Halving's table) is prepared on the host and copied in
      once per search.

Exactness
    The exploration table is computed on the host by the function the CPU backend uses, so ``log`` and
    ``sqrt`` are bit-identical; division, comparisons and the order of operations are the same as on
    the CPU. The device's ``exp`` may differ from glibc's in the last bit, so a prior can differ from
    the CPU backend's by an ulp. The visit counts, values and actions agree with the reference search
    on the golden trees of the test suite: on the host build of ``search.cu`` wherever the tests run,
    and on the GPU in the tests marked ``gpu``. The actions are chosen on the device from the visit
    counts, with weights from a host table computed by :func:`sb3_muzero.mcts.action_choice.visit_weights`
    and the cumulative sum taken in numpy's order, so given the same visit counts and the same ``rng``
    they equal :func:`~sb3_muzero.mcts.action_choice.choose_action`'s.
    Gumbel's selection and policy target call ``exp`` too, so its policy targets can differ from the CPU
    backend's in the last bits; its actions and visit counts agree with the reference on the golden trees.

Designs
    Implemented and tested: one thread per tree over the layout shared with the CPU backend (node
    records ``[B, N]``, visited-child records and priors ``[B, N, A]``; the records are held as bytes,
    as CuPy has no structured dtypes). Considered, not implemented: one warp per tree (the lanes of a warp score a node's
    children and reduce to the argmax, lowest index on ties); a CUDA graph of the whole search (the
    loop captured once with the model's calls and replayed, which needs a capturable model and fixed
    buffers); a tree-minor ``[N, A, B]`` layout, so that the threads of a warp read adjacent memory.
    No GPU timing exists yet for this backend or for these alternatives.
"""

import contextlib
from typing import Any, Iterator, NamedTuple, Optional, Union

import numpy as np
import torch as th

from sb3_muzero.mcts import kernels, tables
from sb3_muzero.mcts.types import GumbelSelection
from sb3_muzero.mcts.workspace import reusable

ON_DEVICE = True  # trees on the latent's GPU: init_roots reads the root inputs where they lie


class CudaTree(NamedTuple):
    """A batch of trees on one GPU, with torch views of the selection outputs."""

    kernel_tree: kernels.KernelTree  # CuPy arrays [B, N, ...] as in types.Tree, and their address table
    leaf_parent: th.Tensor  # [B] int32, torch view of kernel_tree.arrays.leaf_parent (no copy)
    leaf_action: th.Tensor  # [B] int64, torch view of kernel_tree.arrays.leaf_action (no copy)
    device: th.device


class CupyDevice:
    """Runs the kernels on one GPU with CuPy (see :class:`~sb3_muzero.mcts.kernels.KernelDevice`).

    Use it inside :func:`on_torch_stream`, which makes its GPU and torch's stream CuPy's current ones.
    """

    def __init__(self, cupy: Any):
        self.cupy = cupy
        module = cupy.RawModule(code=kernels.source_text(), options=kernels.COMPILE_OPTIONS)
        self.functions = {name: module.get_function(name) for name in kernels.KERNEL_NAMES}

    def empty(self, shape: tuple[int, ...], dtype: type) -> Any:
        return self.cupy.empty(shape, dtype=dtype)

    def to_device(self, host_array: np.ndarray) -> Any:
        return self.cupy.asarray(np.ascontiguousarray(host_array))

    def address(self, array: Any) -> int:
        return array.data.ptr

    def launch(self, kernel: str, num_threads: int, args: tuple) -> None:
        blocks = kernels.num_blocks(num_threads, kernels.THREADS_PER_BLOCK)
        self.functions[kernel]((blocks,), (kernels.THREADS_PER_BLOCK,), args)


_devices: dict[int, CupyDevice] = {}  # GPU index -> its compiled kernels


@contextlib.contextmanager
def on_torch_stream(device: th.device) -> Iterator[CupyDevice]:
    """Make ``device`` and torch's current stream on it CuPy's current device and stream; yield its kernel runner."""
    import cupy

    with cupy.cuda.Device(device.index), cupy.cuda.ExternalStream(th.cuda.current_stream(device).cuda_stream):
        if device.index not in _devices:
            _devices[device.index] = CupyDevice(cupy)
        yield _devices[device.index]


def new_tree(batch_size: int, num_nodes: int, num_actions: int, device=None) -> CudaTree:
    """Storage on ``device`` (the latent's GPU; default: the current one) for ``batch_size`` trees of ``num_nodes``
    nodes over ``num_actions`` actions, reused per thread."""
    device = _cuda_device(device)
    key = ("cuda-tree", batch_size, num_nodes, num_actions, str(device))
    return reusable(key, lambda: _allocate_tree(batch_size, num_nodes, num_actions, device))


def _allocate_tree(batch_size: int, num_nodes: int, num_actions: int, device: th.device) -> CudaTree:
    with on_torch_stream(device) as runner:
        kernel_tree = kernels.allocate_tree(runner, batch_size, num_nodes, num_actions)
        leaf_parent = th.from_dlpack(kernel_tree.arrays.leaf_parent)
        leaf_action = th.from_dlpack(kernel_tree.arrays.leaf_action)
    return CudaTree(kernel_tree, leaf_parent, leaf_action, device)


def exploration_table(num_nodes: int, pb_c_init: float, pb_c_base: float, device=None) -> Any:
    """[num_nodes + 1] float64 on the GPU: :func:`sb3_muzero.mcts.tables.exploration_table`, copied once per search."""
    with on_torch_stream(_cuda_device(device)) as runner:
        return runner.to_device(tables.exploration_table(num_nodes, pb_c_init, pb_c_base))


def gumbel_selection(selection: GumbelSelection, device=None) -> GumbelSelection:
    """Gumbel's selection (prepared on the host) copied once per search to ``device`` (the latent's GPU)."""
    with on_torch_stream(_cuda_device(device)) as runner:
        return kernels.gumbel_selection_on(runner, selection)


def init_roots(
    tree: CudaTree,
    prior_logits: Any,
    root_value: Any,
    legal: np.ndarray,
    noise: Optional[np.ndarray],
    noise_fraction: float,
    selection: Union[Any, GumbelSelection],
) -> tuple[th.Tensor, th.Tensor]:
    """Write the roots (logits [B, A] and value [B], read in place when CUDA tensors; legal [B, A] bool and noise
    [B, A] or None on the host) and select the first leaves by ``selection`` (the exploration table or Gumbel's
    selection, on the GPU); returns (parent node [B] int32, action [B] int64), torch views on the GPU of the nodes
    the first simulation expands."""
    with on_torch_stream(tree.device) as runner:
        logits = _kernel_array(prior_logits, tree.device, "root prior_logits")
        value = _kernel_array(root_value, tree.device, "root value")
        kernels.launch_init_roots(runner, tree.kernel_tree, logits, value, legal, noise, noise_fraction, selection)
    return tree.leaf_parent, tree.leaf_action


def expand_and_select(
    tree: CudaTree,
    new_node: int,
    reward,
    value,
    prior_logits,
    gamma: float,
    selection: Union[Any, GumbelSelection],
    select_next: bool,
) -> tuple[th.Tensor, th.Tensor]:
    """Expand the selected leaves as node ``new_node`` with the model's reward [B], value [B] and logits [B, A]
    (read in place), back the values up, and select the next leaves (if ``select_next``) by ``selection``; returns
    them as in :func:`init_roots`. Launches one kernel and does not synchronise."""
    with on_torch_stream(tree.device) as runner:
        reward = _kernel_array(reward, tree.device, "recurrent_fn's reward")
        value = _kernel_array(value, tree.device, "recurrent_fn's value")
        logits = _kernel_array(prior_logits, tree.device, "recurrent_fn's prior_logits")
        kernels.launch_expand_and_select(
            runner, tree.kernel_tree, new_node, reward, value, logits, gamma, selection, select_next
        )
    return tree.leaf_parent, tree.leaf_action


def read_root(tree: CudaTree) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """Root visit counts [B, A] int32, root value [B] float64 and root child Q values [B, A] float64: new torch
    tensors on the GPU."""
    arrays = tree.kernel_tree.arrays
    visits = th.empty((arrays.batch_size, arrays.num_actions), dtype=th.int32, device=tree.device)
    value = th.empty(arrays.batch_size, dtype=th.float64, device=tree.device)
    q_values = th.empty((arrays.batch_size, arrays.num_actions), dtype=th.float64, device=tree.device)
    with on_torch_stream(tree.device) as runner:
        outputs = [_cupy_view(tensor) for tensor in (visits, value, q_values)]
        kernels.launch_read_root(runner, tree.kernel_tree, *outputs)
    return visits, value, q_values


def choose_action(rng: np.random.Generator, visit_counts: th.Tensor, temperature: float, num_simulations: int) -> np.ndarray:
    """[B] int64 host actions chosen on the GPU from the root visit counts [B, A] (each at most ``num_simulations``),
    with the random numbers :func:`sb3_muzero.mcts.action_choice.choose_action` draws and the same result."""
    batch_size = visit_counts.shape[0]
    uniforms = rng.random(batch_size) if temperature > 0 else None
    action = th.empty(batch_size, dtype=th.int64, device=visit_counts.device)
    with on_torch_stream(visit_counts.device) as runner:
        table = None if uniforms is None else _visit_weight_table(runner, num_simulations, temperature, visit_counts.device)
        counts = _cupy_view(visit_counts.to(th.int32).contiguous())
        kernels.launch_choose_actions(runner, counts, uniforms, table, num_simulations, _cupy_view(action))
    return action.cpu().numpy()


def visit_distribution(visit_counts: th.Tensor) -> th.Tensor:
    """PUCT's policy target [B, A] float32 on the GPU: the counts over their row sums in float32, the same numbers as
    :func:`sb3_muzero.mcts.action_choice.visit_distribution` (integer sums are exact, division is IEEE)."""
    counts = visit_counts.to(th.float32)
    return counts / counts.sum(dim=1, keepdim=True)


def gumbel_choice(tree: CudaTree, selection: GumbelSelection) -> tuple[np.ndarray, th.Tensor]:
    """Gumbel's acting actions [B] int64 (on the host) and policy targets [B, A] float32 (on the GPU)."""
    arrays = tree.kernel_tree.arrays
    action = th.empty(arrays.batch_size, dtype=th.int64, device=tree.device)
    policy = th.empty((arrays.batch_size, arrays.num_actions), dtype=th.float64, device=tree.device)
    with on_torch_stream(tree.device) as runner:
        kernels.launch_gumbel_choose(runner, tree.kernel_tree, selection, _cupy_view(action), _cupy_view(policy))
    return action.cpu().numpy(), policy.to(th.float32)


def _visit_weight_table(runner: CupyDevice, num_simulations: int, temperature: float, device: th.device) -> Any:
    """The device copy of :func:`~sb3_muzero.mcts.tables.visit_weight_table`, kept while it is used."""
    key = ("cuda-visit-weights", num_simulations, float(temperature), str(device))
    return reusable(key, lambda: runner.to_device(tables.visit_weight_table(num_simulations, temperature)))


def to_numpy(array: Any) -> np.ndarray:
    """A host copy of a torch tensor or CuPy array (numpy arrays pass through)."""
    if isinstance(array, th.Tensor):
        return array.detach().cpu().numpy()
    if hasattr(array, "get"):
        return array.get()
    return np.asarray(array)


def _cuda_device(device) -> th.device:
    """``device`` as a CUDA torch.device with an index (default: the current CUDA device)."""
    device = th.device("cuda" if device is None else device)
    if device.type != "cuda":
        raise ValueError(f"the CUDA search backend needs a CUDA device, got {device}")
    return device if device.index is not None else th.device("cuda", th.cuda.current_device())


def _kernel_array(array: Any, device: th.device, name: str) -> Any:
    """A CuPy array the kernels can read: a view of a CUDA tensor on ``device`` (no copy), else a copy to it."""
    import cupy

    if not isinstance(array, th.Tensor):
        return cupy.asarray(np.asarray(array))
    array = array.detach()
    if array.device.type == "cuda" and array.device != device:
        raise ValueError(f"{name} is on {array.device}, but the search runs on {device}, the root latent's device")
    if array.is_floating_point() and array.dtype not in (th.float32, th.float64):
        array = array.to(th.float32)  # float16 and bfloat16 are exact in float32
    return cupy.from_dlpack(array.to(device))


def _cupy_view(tensor: th.Tensor) -> Any:
    """A CuPy view of a CUDA tensor (no copy)."""
    import cupy

    return cupy.from_dlpack(tensor)

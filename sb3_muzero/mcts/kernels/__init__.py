"""The search kernels of ``search.cu`` and how to launch them, whatever device runs them.

``search.cu`` mirrors the Numba kernels of :mod:`sb3_muzero.mcts.backends.cpu`, one CUDA thread per
tree. This module knows the kernels' parameter lists and the tree layout they expect, and launches
them through a :class:`KernelDevice`: CuPy on a GPU (:mod:`sb3_muzero.mcts.backends.cuda`) or, in the
tests, the host build of the same source (``host_shim.h``, compiled with g++). Arrays passed here are
the device's own (CuPy arrays, or numpy arrays for the host build). This module never imports CuPy.
"""

import importlib.resources
from pathlib import Path
from typing import Any, NamedTuple, Optional, Protocol, Union

import numpy as np

from sb3_muzero.mcts.types import NODE_DTYPE, VISITED_DTYPE, GumbelSelection, Tree

SOURCE_FILE = "search.cu"
HOST_SHIM_FILE = "host_shim.h"
# NVRTC and nvcc compile without fast math unless asked; --fmad=false also keeps a * b + c from being
# contracted into a fused multiply-add, which rounds once instead of twice and would change results.
COMPILE_OPTIONS = ("--fmad=false",)
THREADS_PER_BLOCK = 128  # one thread per tree; not tuned on a GPU yet
KERNEL_NAMES = (
    "init_roots_and_select",
    "expand_backup_select_f32",
    "expand_backup_select_f64",
    "read_root",
    "choose_actions",
    "gumbel_init_roots_and_select",
    "gumbel_expand_backup_select_f32",
    "gumbel_expand_backup_select_f64",
    "gumbel_choose",
)

# dtype and shape (in terms of B, N, A) of every Tree field; the kernels' TreeArrays lists them in this order.
TREE_LAYOUT: dict[str, tuple[np.dtype, str]] = {
    "nodes": (NODE_DTYPE, "BN"),
    "visited": (VISITED_DTYPE, "BNA"),
    "unvisited_prior": (np.dtype(np.float64), "BNA"),
    "raw_value": (np.dtype(np.float64), "BN"),
    "min_max": (np.dtype(np.float64), "B2"),
    "scratch": (np.dtype(np.float64), "BA"),
    "leaf_parent": (np.dtype(np.int32), "B"),
    "leaf_action": (np.dtype(np.int64), "B"),
}


def source_text(name: str = SOURCE_FILE) -> str:
    """The text of a kernel source file shipped with the package (``search.cu`` or ``host_shim.h``)."""
    return importlib.resources.files(__name__).joinpath(name).read_text()


def source_path(name: str = SOURCE_FILE) -> Path:
    """Where a kernel source file lies on disk, for compilers that read files (nvcc, g++)."""
    return Path(__file__).with_name(name)


def num_blocks(num_threads: int, threads_per_block: int) -> int:
    """The number of blocks of a one-dimensional launch with one thread per tree."""
    return max(1, -(-num_threads // threads_per_block))


class KernelDevice(Protocol):
    """What runs the kernels: allocates arrays, knows their addresses, launches one thread per tree."""

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        """An uninitialised C-contiguous array on the device."""

    def to_device(self, host_array: np.ndarray) -> Any:
        """A C-contiguous device copy of a host array (the array itself where the device is the host)."""

    def address(self, array: Any) -> int:
        """The address of a device array's first element."""

    def launch(self, kernel: str, num_threads: int, args: tuple) -> None:
        """Run ``kernel`` with at least ``num_threads`` threads; scalar arguments are numpy scalars of the parameter's type."""


class KernelTree(NamedTuple):
    """A batch of trees on a kernel device."""

    arrays: Tree  # the arrays of the trees, [B, N, ...] as described in types.Tree (records as bytes: see as_records)
    addresses: Any  # [8] uint64 on the device: the address of every array of ``arrays``, the kernels' TreeArrays

    @property
    def dims(self) -> tuple[np.int32, np.int32, np.int32]:
        """(B, N, A) as the kernels' int parameters."""
        return np.int32(self.arrays.batch_size), np.int32(self.arrays.num_nodes), np.int32(self.arrays.num_actions)


def allocate_tree(device: KernelDevice, batch_size: int, num_nodes: int, num_actions: int) -> KernelTree:
    """Storage for ``batch_size`` trees of ``num_nodes`` nodes over ``num_actions`` actions, and its address table."""
    shapes = {
        "BN": (batch_size, num_nodes),
        "BNA": (batch_size, num_nodes, num_actions),
        "B2": (batch_size, 2),
        "BA": (batch_size, num_actions),
        "B": (batch_size,),
    }
    arrays = Tree(**{name: _empty(device, shapes[kind], dtype) for name, (dtype, kind) in TREE_LAYOUT.items()})
    addresses = np.array([device.address(array) for array in arrays], dtype=np.uint64)
    return KernelTree(arrays, device.to_device(addresses))


def _empty(device: KernelDevice, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    """An array of ``dtype`` on the device; records (``NODE_DTYPE``, ``VISITED_DTYPE``) as their bytes, ``[..., itemsize]``
    uint8, since CuPy has no structured dtypes (see :func:`as_records`)."""
    if dtype.fields is None:
        return device.empty(shape, dtype)
    return device.empty((*shape, dtype.itemsize), np.dtype(np.uint8))


def as_records(host_bytes: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A host copy of a record array of :func:`allocate_tree` (``[..., itemsize]`` uint8) viewed as ``[...]`` records."""
    return host_bytes.view(dtype)[..., 0]


def gumbel_selection_on(device: KernelDevice, selection: GumbelSelection) -> GumbelSelection:
    """A copy of the host's Gumbel selection (:func:`sb3_muzero.mcts.roots.gumbel_selection`) on the device."""
    return selection._replace(
        considered_visits=device.to_device(np.ascontiguousarray(selection.considered_visits, dtype=np.int32)),
        num_considered=device.to_device(np.ascontiguousarray(selection.num_considered, dtype=np.int32)),
        gumbel_logits=device.to_device(np.ascontiguousarray(selection.gumbel_logits, dtype=np.float64)),
        root_logits=device.to_device(np.ascontiguousarray(selection.root_logits, dtype=np.float64)),
    )


def _gumbel_arguments(selection: GumbelSelection) -> tuple:
    """The selection kernels' arguments for a device Gumbel selection."""
    table = (selection.considered_visits, np.int32(selection.considered_visits.shape[1]), selection.num_considered)
    return (*table, selection.gumbel_logits, *_gumbel_constants(selection))


def _gumbel_constants(selection: GumbelSelection) -> tuple:
    """sigma's constants as the kernels take them: c_visit, c_scale, min_q_range (doubles)."""
    return np.float64(selection.c_visit), np.float64(selection.c_scale), np.float64(selection.min_q_range)


def launch_init_roots(
    device: KernelDevice,
    tree: KernelTree,
    prior_logits: Any,
    root_value: Any,
    legal: np.ndarray,
    noise: Optional[np.ndarray],
    noise_fraction: float,
    selection: Union[Any, GumbelSelection],
) -> None:
    """Write the roots and select the first leaves (into ``tree.arrays.leaf_parent`` / ``leaf_action``).

    :param prior_logits: [B, A] device array of root logits (converted to float64)
    :param root_value: [B] device array of root values (converted to float64)
    :param legal: [B, A] host bool mask of the legal root actions
    :param noise: [B, A] host float64 Dirichlet noise, or None for no noise (PUCT only)
    :param selection: PUCT's exploration table ([N + 1] float64 device array) or a device Gumbel selection
        (:func:`gumbel_selection_on`)
    """
    batch_size, num_actions = tree.arrays.batch_size, tree.arrays.num_actions
    logits = _float_array(prior_logits, (batch_size, num_actions), "root prior_logits", np.float64)
    value = _float_array(root_value, (batch_size,), "root value", np.float64)
    legal = device.to_device(np.ascontiguousarray(legal, dtype=np.bool_))
    if isinstance(selection, GumbelSelection):
        arguments = (tree.addresses, *tree.dims, logits, value, legal, *_gumbel_arguments(selection))
        device.launch("gumbel_init_roots_and_select", batch_size, arguments)
        return
    if noise is None:
        noise, noise_fraction = logits, 0.0  # any [B, A] float64 array: it is not read
    else:
        noise = device.to_device(np.ascontiguousarray(noise, dtype=np.float64))
    arguments = (tree.addresses, *tree.dims, logits, value, legal, noise, np.float64(noise_fraction), selection)
    device.launch("init_roots_and_select", batch_size, arguments)


def launch_expand_and_select(
    device: KernelDevice,
    tree: KernelTree,
    new_node: int,
    reward: Any,
    value: Any,
    prior_logits: Any,
    gamma: float,
    selection: Union[Any, GumbelSelection],
    select_next: bool,
) -> None:
    """Expand the selected leaves as node ``new_node``, back up, and select the next leaves if ``select_next``.

    :param reward: [B] device array, the model's rewards
    :param value: [B] device array, the model's values
    :param prior_logits: [B, A] device array, the model's logits; all three float32 are read as float32,
        anything else is converted to float64
    :param selection: as for :func:`launch_init_roots`
    """
    batch_size, num_actions = tree.arrays.batch_size, tree.arrays.num_actions
    all_float32 = all(getattr(array, "dtype", None) == np.float32 for array in (reward, value, prior_logits))
    dtype = np.float32 if all_float32 else np.float64
    reward = _float_array(reward, (batch_size,), "recurrent_fn's reward", dtype)
    value = _float_array(value, (batch_size,), "recurrent_fn's value", dtype)
    logits = _float_array(prior_logits, (batch_size, num_actions), "recurrent_fn's prior_logits", dtype)
    kernel = "expand_backup_select_f32" if all_float32 else "expand_backup_select_f64"
    arguments = (tree.addresses, *tree.dims, np.int32(new_node), reward, value, logits, np.float64(gamma))
    if isinstance(selection, GumbelSelection):
        kernel, arguments = "gumbel_" + kernel, (*arguments, *_gumbel_arguments(selection))
    else:
        arguments = (*arguments, selection)
    device.launch(kernel, batch_size, (*arguments, np.int32(select_next)))


def launch_gumbel_choose(
    device: KernelDevice, tree: KernelTree, selection: GumbelSelection, out_action: Any, out_policy: Any
) -> None:
    """Write Gumbel's acting actions [B] int64 and policy targets [B, A] float64 (:func:`launch_init_roots`'s device
    Gumbel selection)."""
    arguments = (tree.addresses, *tree.dims, selection.gumbel_logits, selection.root_logits, *_gumbel_constants(selection))
    device.launch("gumbel_choose", tree.arrays.batch_size, (*arguments, out_action, out_policy))


def launch_read_root(device: KernelDevice, tree: KernelTree, out_visits: Any, out_value: Any, out_q: Any) -> None:
    """Write the root visit counts [B, A] int32, root values [B] float64 and root child Q [B, A] float64."""
    device.launch("read_root", tree.arrays.batch_size, (tree.addresses, *tree.dims, out_visits, out_value, out_q))


def launch_choose_actions(
    device: KernelDevice,
    visit_counts: Any,
    uniforms: Optional[np.ndarray],
    weight_table: Any,
    num_simulations: int,
    out_action: Any,
) -> None:
    """Write one action per tree into ``out_action`` [B] int64, as :func:`sb3_muzero.mcts.action_choice.choose_action`.

    :param visit_counts: [B, A] int32 device array, root visit counts (each at most ``num_simulations``)
    :param uniforms: [B] host float64 uniforms in [0, 1) to sample with, or None for the most visited action
    :param weight_table: the device copy of :func:`sb3_muzero.mcts.tables.visit_weight_table` (``num_simulations``,
        temperature); not read when ``uniforms`` is None
    """
    batch_size, num_actions = visit_counts.shape
    sample = uniforms is not None
    uniforms = device.to_device(np.ascontiguousarray(uniforms, dtype=np.float64)) if sample else device.empty((1,), np.float64)
    weight_table = weight_table if sample else uniforms
    arguments = (visit_counts, np.int32(batch_size), np.int32(num_actions), np.int32(sample), uniforms, weight_table)
    device.launch("choose_actions", batch_size, (*arguments, np.int32(num_simulations), out_action))


def _float_array(array: Any, shape: tuple[int, ...], name: str, dtype: type) -> Any:
    """``array`` as a C-contiguous array of ``dtype`` and the given shape (a copy only where needed)."""
    if tuple(array.shape) != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(array.shape)}")
    return array.astype(dtype, order="C", copy=False)

"""A host build of the CUDA search kernels, so that tests run ``search.cu`` without a GPU.

``sb3_muzero/mcts/kernels/search.cu`` compiles as C++ with ``host_shim.h`` (g++). :class:`HostDevice`
runs a launch by calling the kernel once per thread through ctypes, after checking every argument
against the kernel's parameter list in the source (a wrong type or order would corrupt memory on a
GPU without an error). :class:`HostKernelBackend` is a search backend over it that takes the CUDA
backend's steps from :mod:`sb3_muzero.mcts.kernels`, so the search driver runs the kernels of
``search.cu`` on numpy arrays.
"""

import ctypes
import re
import shutil
import subprocess
from pathlib import Path
from typing import Optional

import numpy as np

from sb3_muzero.mcts import kernels, tables
from sb3_muzero.mcts.action_choice import visit_distribution
from sb3_muzero.mcts.types import GumbelSelection

GXX_FLAGS = ("-std=c++17", "-O2", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math", "-Wall", "-Wextra", "-Werror")

# C parameter type in search.cu -> what the kernel must be given: a numpy scalar type, or ("array", dtype).
_SCALAR_TYPES = {"int": np.int32, "double": np.float64}
_POINTER_DTYPES = {
    "TreeArrays": np.uint64,
    "double": np.float64,
    "float": np.float32,
    "int": np.int32,
    "bool": np.bool_,
    "long long": np.int64,
}
_CTYPES = {np.int32: ctypes.c_int32, np.float64: ctypes.c_double}


def gxx() -> Optional[str]:
    """The path of g++, or None where it is not installed."""
    return shutil.which("g++")


def build_host_library(directory: Path, source: Optional[Path] = None) -> Path:
    """Compile ``search.cu`` (or ``source``) with the host shim into a shared library in ``directory``."""
    source = source or kernels.source_path()
    output = directory / "search_host.so"
    shim = kernels.source_path(kernels.HOST_SHIM_FILE)
    command = [gxx(), *GXX_FLAGS, "-include", str(shim), "-x", "c++", str(source), "-o", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"g++ could not compile {source}:\n{result.stderr}")
    return output


def kernel_signatures(source_text: str) -> dict[str, list[str]]:
    """The parameter types of every ``extern "C" __global__`` kernel of a CUDA source, e.g. ``["const double*", "int"]``."""
    signatures = {}
    for name, parameters in re.findall(r'extern "C" __global__ void (\w+)\(([^)]*)\)', source_text):
        declarations = [" ".join(p.split()) for p in parameters.split(",")]
        signatures[name] = [re.sub(r"\s*\w+$", "", declaration) for declaration in declarations]
    return signatures


def struct_fields(source_text: str, struct: str) -> list[tuple[str, str]]:
    """(C type, name) of every field of ``struct`` in a C++ source."""
    body = re.search(rf"struct {struct} \{{(.*?)\}};", source_text, re.S).group(1)
    return re.findall(r"^\s*([\w ]+\*?)\s*(\w+);", body, re.M)


class HostDevice:
    """Runs the kernels of the host build on numpy arrays (see :class:`sb3_muzero.mcts.kernels.KernelDevice`)."""

    def __init__(self, library_path: Path, threads_per_block: int = 4):
        """:param threads_per_block: small, so that launches have several blocks and threads past the batch"""
        self.library = ctypes.CDLL(str(library_path))
        self.threads_per_block = threads_per_block
        self.signatures = kernel_signatures(kernels.source_text())
        self.launches: list[str] = []  # name of every kernel launched, in order

    def empty(self, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        return np.empty(shape, dtype=dtype)

    def to_device(self, host_array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(host_array)

    def address(self, array: np.ndarray) -> int:
        return array.ctypes.data

    def launch(self, kernel: str, num_threads: int, args: tuple) -> None:
        c_args = [self._c_argument(kernel, i, c_type, arg) for i, (c_type, arg) in enumerate(self._paired(kernel, args))]
        function = getattr(self.library, kernel)
        blocks = kernels.num_blocks(num_threads, self.threads_per_block)
        for block in range(blocks):
            for thread in range(self.threads_per_block):
                self.library.host_shim_set_thread(block, thread, self.threads_per_block, blocks)
                function(*c_args)
        self.launches.append(kernel)

    def _paired(self, kernel: str, args: tuple) -> list[tuple[str, object]]:
        parameters = self.signatures[kernel]
        if len(args) != len(parameters):
            raise TypeError(f"{kernel} takes {len(parameters)} arguments ({', '.join(parameters)}), got {len(args)}")
        return list(zip(parameters, args))

    @staticmethod
    def _c_argument(kernel: str, index: int, c_type: str, arg) -> object:
        """The ctypes value of one argument, after checking it against the parameter's C type."""
        where = f"argument {index} of {kernel} ({c_type})"
        if c_type.endswith("*"):
            dtype = _POINTER_DTYPES[c_type.removeprefix("const ").removesuffix("*")]
            if not isinstance(arg, np.ndarray) or arg.dtype != dtype or not arg.flags.c_contiguous:
                got = f"{arg.dtype} array" if isinstance(arg, np.ndarray) else type(arg).__name__
                raise TypeError(f"{where} must be a C-contiguous {np.dtype(dtype)} array, got {got}")
            return ctypes.c_void_p(arg.ctypes.data)
        scalar_type = _SCALAR_TYPES[c_type]
        if type(arg) is not scalar_type:
            raise TypeError(f"{where} must be a numpy {scalar_type.__name__}, got {type(arg).__name__}")
        return _CTYPES[scalar_type](arg)


class HostKernelBackend:
    """A search backend (:class:`~sb3_muzero.mcts.backends.interface.SearchBackend`) running ``search.cu``'s kernels on
    the host.

    Like the CUDA backend it reads the root inputs in place (``ON_DEVICE``), launches the kernels through
    :mod:`sb3_muzero.mcts.kernels` and chooses the actions with the ``choose_actions`` kernel.
    """

    ON_DEVICE = True

    def __init__(self, device: HostDevice):
        self.device = device
        self.last_tree: Optional[kernels.KernelTree] = None

    def new_tree(self, batch_size: int, num_nodes: int, num_actions: int, device=None) -> kernels.KernelTree:
        self.last_tree = kernels.allocate_tree(self.device, batch_size, num_nodes, num_actions)
        return self.last_tree

    def exploration_table(self, num_nodes: int, pb_c_init: float, pb_c_base: float, device=None) -> np.ndarray:
        return tables.exploration_table(num_nodes, pb_c_init, pb_c_base)

    def gumbel_selection(self, selection: GumbelSelection, device=None) -> GumbelSelection:
        return kernels.gumbel_selection_on(self.device, selection)

    def init_roots(self, tree, prior_logits, root_value, legal, noise, noise_fraction, selection):
        logits, value = np.asarray(prior_logits), np.asarray(root_value)
        kernels.launch_init_roots(self.device, tree, logits, value, legal, noise, noise_fraction, selection)
        return tree.arrays.leaf_parent, tree.arrays.leaf_action

    def expand_and_select(self, tree, new_node, reward, value, prior_logits, gamma, selection, select_next):
        outputs = (np.asarray(reward), np.asarray(value), np.asarray(prior_logits))
        kernels.launch_expand_and_select(self.device, tree, new_node, *outputs, gamma, selection, select_next)
        return tree.arrays.leaf_parent, tree.arrays.leaf_action

    def read_root(self, tree) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        batch_size, num_actions = tree.arrays.batch_size, tree.arrays.num_actions
        visits = np.empty((batch_size, num_actions), dtype=np.int32)
        value = np.empty(batch_size, dtype=np.float64)
        q_values = np.empty((batch_size, num_actions), dtype=np.float64)
        kernels.launch_read_root(self.device, tree, visits, value, q_values)
        return visits, value, q_values

    def choose_action(self, rng, visit_counts, temperature, num_simulations) -> np.ndarray:
        uniforms = rng.random(visit_counts.shape[0]) if temperature > 0 else None
        table = None if uniforms is None else tables.visit_weight_table(num_simulations, temperature)
        action = np.empty(visit_counts.shape[0], dtype=np.int64)
        counts = np.ascontiguousarray(visit_counts, dtype=np.int32)
        kernels.launch_choose_actions(self.device, counts, uniforms, table, num_simulations, action)
        return action

    @staticmethod
    def visit_distribution(visit_counts) -> np.ndarray:
        return visit_distribution(np.asarray(visit_counts))

    def gumbel_choice(self, tree, selection) -> tuple[np.ndarray, np.ndarray]:
        action = np.empty(tree.arrays.batch_size, dtype=np.int64)
        policy = np.empty((tree.arrays.batch_size, tree.arrays.num_actions), dtype=np.float64)
        kernels.launch_gumbel_choose(self.device, tree, selection, action, policy)
        return action, policy.astype(np.float32)

    @staticmethod
    def to_numpy(array) -> np.ndarray:
        return np.asarray(array)

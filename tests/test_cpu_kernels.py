"""Properties of the compiled Numba kernels of the CPU backend that the search's results cannot show.

The kernels that run once per search or per simulation loop over the trees of the batch. Numba counts the references
of array variables with atomic updates, and removes the counting only where an increment and its decrement pair up
(see the module docstring of :mod:`sb3_muzero.mcts.backends.cpu`); left in the loop over trees, it cost Gumbel's
kernels a fifth of a search's time. The checks compile the kernels afresh, as Numba does not show the code of a
kernel loaded from its disk cache.
"""

import re

import numba
import numpy as np
import pytest

from sb3_muzero.common.jit import JIT_OPTIONS
from sb3_muzero.mcts import SearchSettings, search
from sb3_muzero.mcts.backends import cpu
from tests.mcts_models import HashModel

KERNELS = {
    "puct": ["_init_roots_and_select", "_expand_backup_select"],
    "gumbel": ["_gumbel_init_roots_and_select", "_gumbel_expand_backup_select"],
}


def kernel_llvm_body(kernel) -> str:
    """The LLVM IR of ``kernel``'s own function (without its Python wrapper), compiled afresh for the signature the
    cached kernel ran with."""
    signature = kernel.signatures[0]
    fresh = numba.njit(**{**JIT_OPTIONS, "cache": False})(kernel.py_func)
    fresh.compile(signature)
    name = re.escape(fresh.overloads[signature].fndesc.llvm_func_name)
    return re.search(rf'define [^\n]*@"?{name}"?\(.*?\n}}\n', fresh.inspect_llvm(signature), re.S).group(0)


@pytest.mark.parametrize("algorithm", sorted(KERNELS))
def test_search_kernels_make_no_reference_counting(algorithm):
    model = HashModel(5, seed=3)
    settings = SearchSettings(num_simulations=4, search_algorithm=algorithm, search_backend="cpu")
    search(model.root(3), model.recurrent_fn, settings, rng=np.random.default_rng(0), temperature=1.0)
    for name in KERNELS[algorithm]:
        body = kernel_llvm_body(getattr(cpu, name))
        counting = re.findall(r"call void @NRT_(incref|decref)", body)
        assert counting == [], f"{name} updates reference counts {len(counting)} times in its code"

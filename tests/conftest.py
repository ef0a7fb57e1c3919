import os

import pytest

# The search benchmarks pin threads themselves; tests keep torch from oversubscribing the small CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def host_kernel_library(tmp_path_factory):
    """The host build of sb3_muzero/mcts/kernels/search.cu (g++), compiled once per test session."""
    from tests.host_kernels import build_host_library, gxx

    if gxx() is None:
        pytest.skip("g++ is not installed: the host build of search.cu needs it")
    return build_host_library(tmp_path_factory.mktemp("host-kernels"))

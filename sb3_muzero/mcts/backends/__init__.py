"""Search backends: each implements the same kernels over a :class:`~sb3_muzero.mcts.types.Tree`.

A backend is a module with the members of :class:`~sb3_muzero.mcts.backends.interface.SearchBackend`
(``ON_DEVICE``, ``new_tree``, ``exploration_table``, ``init_roots``, ``expand_and_select``, ``read_root``,
``choose_action``, ``to_numpy``). Importing this package imports neither backend, and CuPy only when the
CUDA backend is asked for.
"""

from types import ModuleType

from sb3_muzero.mcts.settings import SEARCH_BACKENDS

BACKENDS = SEARCH_BACKENDS
CUDA_EXTRA = 'pip install "sb3-muzero[cuda]"'


def get_backend(name: str, latent=None) -> ModuleType:
    """The backend module for ``name``; "auto" picks CUDA when ``latent`` is a CUDA tensor and CuPy sees a GPU."""
    if name not in BACKENDS:
        raise ValueError(f"Unknown search backend {name!r}; supported: {', '.join(BACKENDS)}")
    if name == "auto":
        name = "cuda" if _is_cuda_tensor(latent) and cuda_available() else "cpu"
    if name == "cuda":
        require_cuda(latent)
        from sb3_muzero.mcts.backends import cuda

        return cuda
    from sb3_muzero.mcts.backends import cpu

    return cpu


def _is_cuda_tensor(array) -> bool:
    return getattr(getattr(array, "device", None), "type", None) == "cuda"


def cuda_available() -> bool:
    """Whether the CUDA backend can run here: CuPy imports and sees a GPU."""
    try:
        import cupy
    except ImportError:
        return False
    return _gpu_count(cupy) > 0


def _gpu_count(cupy) -> int:
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:
        return 0


def require_cuda(latent) -> None:
    """Refuse ``backend="cuda"`` with a clear message where it cannot run: no CuPy, no GPU, or a host latent."""
    try:
        import cupy
    except ImportError as error:
        raise ImportError(
            f'backend="cuda" needs CuPy, which is not installed; install the cuda extra: {CUDA_EXTRA} '
            '(or use backend="cpu")'
        ) from error
    if _gpu_count(cupy) == 0:
        raise RuntimeError(
            f'backend="cuda" needs a CUDA GPU, and CuPy {cupy.__version__} sees none; check the GPU driver and that '
            f'the CuPy build matches it (the cuda extra: {CUDA_EXTRA}), or use backend="cpu"'
        )
    if not _is_cuda_tensor(latent):
        kind = type(latent).__name__ + (f" on {latent.device}" if hasattr(latent, "device") else "")
        raise ValueError(
            f'backend="cuda" keeps the trees on the latent\'s GPU, so the root latent must be a torch tensor on a CUDA '
            f'device; got {kind}. Use backend="cpu" (or "auto") for host latents.'
        )

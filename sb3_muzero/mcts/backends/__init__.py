"""Search backends: each implements the same kernels over a :class:`~sb3_muzero.mcts.types.Tree`."""

from types import ModuleType

BACKENDS = ("auto", "cpu", "cuda")


def get_backend(name: str, latent=None) -> ModuleType:
    """The backend module for ``name``; "auto" picks CUDA when ``latent`` is a CUDA tensor and CuPy imports."""
    if name not in BACKENDS:
        raise ValueError(f"Unknown search backend {name!r}; supported: {', '.join(BACKENDS)}")
    if name == "auto":
        name = "cuda" if _is_cuda_tensor(latent) and cuda_available() else "cpu"
    if name == "cuda":
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
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except cupy.cuda.runtime.CUDARuntimeError:
        return False

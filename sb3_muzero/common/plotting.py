"""matplotlib for the picture commands (``python -m sb3_muzero.plot``, ``python -m sb3_muzero.inspect``): an optional
dependency, drawn off-screen (Agg), with a clear message where it is missing."""

from pathlib import Path
from typing import Any

from sb3_muzero.common.files import atomic_write

PLOTS_EXTRA = 'pip install torch==2.13.0 -e ".[plots]"  (or pip install matplotlib)'


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the off-screen Agg backend.

    :raise ImportError: matplotlib is not installed (the message says how to install it)
    """
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(f"the picture commands need matplotlib, which is not installed: {PLOTS_EXTRA}") from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path) -> Path:
    """Write ``figure`` to ``path`` as a PNG (never half-written), creating the folder, and close it."""
    path = Path(path)
    with atomic_write(path) as file:
        figure.savefig(file, format="png", dpi=100)
    pyplot().close(figure)
    return path

"""Type checks of numeric arguments shared by the hyperparameter, search and env checks."""

from typing import Any

import numpy as np


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers; False for bools, which Python counts as integers."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

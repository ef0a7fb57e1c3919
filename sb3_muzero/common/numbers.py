"""Checks of numeric arguments shared by the hyperparameter, search and env checks and the command lines."""

import argparse
from collections.abc import Iterable
from typing import Any, Optional

import numpy as np


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers; False for bools, which Python counts as integers."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def refuse_options_below(parser: argparse.ArgumentParser, minimums: Iterable[tuple[str, Optional[int], int]]) -> None:
    """Stop with the parser's usage error (exit 2) at the first ``(option, value, smallest)`` whose value is below
    ``smallest``; a value of None (an option left unset) passes."""
    for option, value, smallest in minimums:
        if value is not None and value < smallest:
            parser.error(f"{option} must be >= {smallest}, got {value}")

"""rl-zoo3 and Optuna support: ``python -m rl_zoo3.train --algo muzero ...`` and MuZero's hyperparameter sampler.

Importing this package imports neither rl-zoo3 nor Optuna; :func:`register` does the former.
"""

from sb3_muzero.zoo.registration import ALGO, HYPERPARAMS_PATH, register, register_loaded
from sb3_muzero.zoo.sampler import convert_muzero_params, sample_muzero_params

__all__ = ["ALGO", "HYPERPARAMS_PATH", "convert_muzero_params", "register", "register_loaded", "sample_muzero_params"]

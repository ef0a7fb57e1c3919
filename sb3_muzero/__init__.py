"""sb3-muzero: MuZero as a Stable-Baselines3 algorithm."""

import os

from sb3_muzero.common.callbacks import CheckpointCallback, latest_checkpoint
from sb3_muzero.common.files import CorruptFileError
from sb3_muzero.envs import make_atari_vec_env
from sb3_muzero.muzero import CnnPolicy, MlpPolicy, MultiInputPolicy, MuZero

with open(os.path.join(os.path.dirname(__file__), "version.txt")) as version_file:
    __version__ = version_file.read().strip()

__all__ = [
    "CheckpointCallback",
    "CnnPolicy",
    "CorruptFileError",
    "MlpPolicy",
    "MuZero",
    "MultiInputPolicy",
    "__version__",
    "latest_checkpoint",
    "make_atari_vec_env",
]

"""sb3-muzero: MuZero as a Stable-Baselines3 algorithm."""

from sb3_muzero.common.callbacks import CheckpointCallback, latest_checkpoint
from sb3_muzero.common.files import CorruptFileError
from sb3_muzero.envs import make_atari_vec_env
from sb3_muzero.muzero import CnnPolicy, MlpPolicy, MultiInputPolicy, MuZero
from sb3_muzero.version import __version__

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

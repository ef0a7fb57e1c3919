"""sb3-muzero: MuZero as a Stable-Baselines3 algorithm."""

import os

from sb3_muzero.muzero import CnnPolicy, MlpPolicy, MultiInputPolicy, MuZero

with open(os.path.join(os.path.dirname(__file__), "version.txt")) as version_file:
    __version__ = version_file.read().strip()

__all__ = ["CnnPolicy", "MlpPolicy", "MuZero", "MultiInputPolicy", "__version__"]

"""sb3-muzero: MuZero as a Stable-Baselines3 algorithm."""

import os

with open(os.path.join(os.path.dirname(__file__), "version.txt")) as version_file:
    __version__ = version_file.read().strip()

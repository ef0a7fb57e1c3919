from sb3_muzero.muzero.muzero import MuZero
from sb3_muzero.muzero.policies import CnnPolicy, MlpPolicy, MultiInputPolicy

__all__ = ["CnnPolicy", "MlpPolicy", "MuZero", "MultiInputPolicy"]

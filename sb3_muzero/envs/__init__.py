"""Environments for training MuZero with Stable-Baselines3."""

from sb3_muzero.envs.atari import AtariVecEnv, make_atari_vec_env

__all__ = ["AtariVecEnv", "make_atari_vec_env"]

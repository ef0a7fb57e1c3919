"""Pieces shared by the algorithm: files on disk, generator states, checkpoints, checks of env outputs and numbers."""

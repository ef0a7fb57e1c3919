"""rl-zoo3 hyperparameters of MuZero: ``muzero.yml`` (in the repository, a link to ``hyperparams/muzero.yml``)."""

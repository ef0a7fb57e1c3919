"""``python -m sb3_muzero.train ARGS``: rl-zoo3's ``train`` with MuZero registered, without the start-up hook.

Takes the arguments of ``python -m rl_zoo3.train`` and trains (and, with ``-optimize``, searches hyperparameters).
"""

from sb3_muzero.zoo.registration import run_rl_zoo3

if __name__ == "__main__":
    run_rl_zoo3("train")

"""``python -m sb3_muzero.enjoy ARGS``: rl-zoo3's ``enjoy`` with MuZero registered, without the start-up hook.

Takes the arguments of ``python -m rl_zoo3.enjoy`` and runs a trained agent.
"""

from sb3_muzero.zoo.registration import run_rl_zoo3

if __name__ == "__main__":
    run_rl_zoo3("enjoy")

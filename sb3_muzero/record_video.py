"""``python -m sb3_muzero.record_video ARGS``: rl-zoo3's ``record_video`` with MuZero registered, without the start-up hook.

Takes the arguments of ``python -m rl_zoo3.record_video`` and records a video of a trained agent.
"""

from sb3_muzero.zoo.registration import run_rl_zoo3

if __name__ == "__main__":
    run_rl_zoo3("record_video")

"""``python -m sb3_muzero.push_to_hub ARGS``: rl-zoo3's ``push_to_hub`` with MuZero registered, without the start-up hook.

Takes the arguments of ``python -m rl_zoo3.push_to_hub`` (``--algo muzero --env ENV -f logs/ -orga ORGANIZATION``):
saves, evaluates and records the model into ``hub/<repo>/`` with rl-zoo3's model card, then uploads the folder to
the Hugging Face Hub. It also restores the helper that rl-zoo3 2.9's ``push_to_hub`` imports from the installed
``huggingface_sb3`` (see :func:`sb3_muzero.zoo.registration.provide_generate_metadata`), without which rl-zoo3's
command stops at its imports. The replay video needs ``ffmpeg`` on the PATH.
"""

from sb3_muzero.zoo.registration import run_rl_zoo3

if __name__ == "__main__":
    run_rl_zoo3("push_to_hub")

"""Numba's disk cache: a second process loads every kernel the first one compiled, instead of compiling it again.

Compiling the search's and the replay's kernels costs a new process seconds before its first search (3.6 s on the
2-core development VM, 0.27 s with the cache; see benchmarks/RESULTS.md, "Start-up cost of the first search").
"""

import json
import os
import subprocess
import sys

import pytest

# Trains a few steps (a search per step, replay sampling and priority updates), then prints, for every Numba kernel
# of the package's kernel modules that ran, the number of signatures compiled and loaded from the cache.
TRAIN_AND_COUNT = """
import json, numba
from sb3_muzero import MuZero
from sb3_muzero.mcts import tables
from sb3_muzero.mcts.backends import cpu
from sb3_muzero.replay import sum_tree, targets
model = MuZero("MlpPolicy", "CartPole-v1", num_simulations=4, learning_starts=40, batch_size=8,
               policy_kwargs=dict(net_arch=[8], latent_dim=4), seed=0)
model.learn(80)
counts = {}
for module in (cpu, tables, sum_tree, targets):
    for name, kernel in vars(module).items():
        if isinstance(kernel, numba.core.registry.CPUDispatcher) and kernel.signatures:
            stats = kernel.stats
            counts[f"{module.__name__}.{name}"] = dict(compiled=sum(stats.cache_misses.values()),
                                                        loaded=sum(stats.cache_hits.values()))
print(json.dumps(counts))
"""


def kernel_counts(cache_dir) -> dict:
    environment = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    completed = subprocess.run([sys.executable, "-c", TRAIN_AND_COUNT], capture_output=True, text=True, env=environment,
                               timeout=600)  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


@pytest.mark.slow
def test_a_second_process_loads_every_kernel_from_the_cache(tmp_path):
    first = kernel_counts(tmp_path)
    modules = {name.rsplit(".", 1)[0] for name in first}
    assert modules == {"sb3_muzero.mcts.backends.cpu", "sb3_muzero.mcts.tables", "sb3_muzero.replay.sum_tree",
                       "sb3_muzero.replay.targets"}  # fmt: skip
    assert all(count["compiled"] >= 1 and count["loaded"] == 0 for count in first.values()), first
    second = kernel_counts(tmp_path)
    # Kernels called only from other kernels (targets.slot_after, ...) are not compiled again either: the callers
    # are loaded with them inside.
    assert set(second) <= set(first) and {name.rsplit(".", 1)[0] for name in second} == modules
    assert all(count["compiled"] == 0 and count["loaded"] >= 1 for count in second.values()), second

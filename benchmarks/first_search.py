"""The cost of a process's first search: Numba compiling the kernels, or loading them from its disk cache.

    python benchmarks/first_search.py --repeats 3

Each repeat makes an empty Numba cache folder (``NUMBA_CACHE_DIR``) and runs two fresh processes one after the other
on it: the first compiles the search's kernels and writes them to the cache, the second loads them. Each process
builds a small ``MuZero`` on CartPole-v1 and times ``predict`` twice (a search of 50 simulations); prints one JSON line
per process: ``cache`` ("cold" or "warm"), ``first_search_s``, ``second_search_s``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from sb3_muzero.common.numbers import refuse_options_below

TIME_TWO_SEARCHES = """
import json, time
import numpy as np
from sb3_muzero import MuZero
model = MuZero("MlpPolicy", "CartPole-v1", num_simulations=50, policy_kwargs=dict(net_arch=[16], latent_dim=8))
times = []
for _ in range(2):
    start = time.perf_counter()
    model.predict(np.zeros(4, np.float32), deterministic=True)
    times.append(time.perf_counter() - start)
print(json.dumps(dict(first_search_s=round(times[0], 3), second_search_s=round(times[1], 4))))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    refuse_options_below(parser, (("--repeats", args.repeats, 1),))
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache_dir:
            environment = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "OMP_NUM_THREADS": "1"}
            for cache in ("cold", "warm"):
                completed = subprocess.run([sys.executable, "-c", TIME_TWO_SEARCHES], env=environment, check=True,
                                           capture_output=True, text=True)  # fmt: skip
                print(json.dumps(dict(cache=cache, **json.loads(completed.stdout.splitlines()[-1]))), flush=True)


if __name__ == "__main__":
    main()

"""What the rl-zoo3 start-up hook costs every Python start: with and without ``sb3_muzero_zoo_hook.pth``.

    python benchmarks/startup.py [--python PATH] [--runs 60]

Runs ``PYTHON -X importtime -c pass`` alternately with the hook's ``.pth`` in site-packages and moved aside
(it is put back afterwards, also on errors), and prints the medians of: the wall time of the whole process,
the sum of all imports' own times as ``-X importtime`` reports them, and the hook module's cumulative import
time. The interpreter must have sb3-muzero installed (``pip install .`` or ``pip install -e .``).
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

PTH_NAME = "sb3_muzero_zoo_hook.pth"
HOOK_MODULE = "sb3_muzero_zoo_hook"


def site_packages(python: str) -> Path:
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    return Path(subprocess.check_output([python, "-c", code], text=True).strip())


def one_start(python: str) -> dict[str, float]:
    """Wall time (ms), sum of the imports' own times (ms) and the hook's cumulative import time (ms) of one start."""
    start = time.perf_counter()
    report = subprocess.run([python, "-X", "importtime", "-c", "pass"], capture_output=True, text=True, check=True).stderr
    wall_ms = (time.perf_counter() - start) * 1e3
    rows = [line.split(":", 1)[1].split("|") for line in report.splitlines() if line.startswith("import time:")]
    rows = [row for row in rows if row[0].strip().isdigit()]  # skip the header
    imports_ms = sum(int(row[0]) for row in rows) / 1e3
    hook_ms = sum(int(row[1]) for row in rows if row[2].strip() == HOOK_MODULE) / 1e3
    return dict(wall_ms=wall_ms, imports_ms=imports_ms, hook_ms=hook_ms)


def measure(python: str, runs: int) -> dict[str, dict[str, float]]:
    pth = site_packages(python) / PTH_NAME
    aside = pth.with_name(PTH_NAME + ".aside")
    if not pth.is_file():
        raise SystemExit(f"{pth} does not exist: install sb3-muzero into {python}'s environment first")
    samples: dict[str, list[dict[str, float]]] = {"with_hook": [], "without_hook": []}
    try:
        for _ in range(runs):
            samples["with_hook"].append(one_start(python))
            pth.rename(aside)
            try:
                samples["without_hook"].append(one_start(python))
            finally:
                aside.rename(pth)
    finally:
        if aside.exists():
            aside.rename(pth)
    return {
        mode: {key: round(statistics.median(sample[key] for sample in values), 2) for key in values[0]}
        for mode, values in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable, help="the interpreter to start (default: this one)")
    parser.add_argument("--runs", type=int, default=60, help="starts with and without the hook, alternating")
    args = parser.parse_args()
    medians = measure(args.python, args.runs)
    difference = {key: round(medians["with_hook"][key] - medians["without_hook"][key], 2) for key in medians["with_hook"]}
    print(json.dumps(dict(python=args.python, runs=args.runs, **medians, difference=difference)))


if __name__ == "__main__":
    main()

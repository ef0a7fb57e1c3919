import os

# The search benchmarks pin threads themselves; tests keep torch from oversubscribing the small CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

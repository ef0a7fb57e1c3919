"""The options every Numba kernel of the package is compiled with."""

# Cached on disk, releasing the GIL, numpy's division semantics, and no bounds checks (the callers check indices).
JIT_OPTIONS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)

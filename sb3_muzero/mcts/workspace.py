"""Buffers reused from one search to the next.

A search allocates megabytes of tree and latent storage; fresh allocations of that size come from
the operating system, and touching them page by page costs more than the search itself on small
batches. Each thread keeps the last few buffers it used, keyed by what determines their layout.
"""

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

MAX_CACHED = 4  # different (shape, dtype, device) keys kept per thread

_local = threading.local()


def reusable(key: Hashable, allocate: Callable[[], Any]) -> Any:
    """The buffer cached under ``key`` in this thread, made with ``allocate()`` the first time.

    The caller owns it until its next call with the same key: a search must not hand it out.
    """
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = OrderedDict()
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    buffer = cache[key] = allocate()
    while len(cache) > MAX_CACHED:
        cache.popitem(last=False)
    return buffer

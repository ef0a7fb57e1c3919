"""Ctrl-C (SIGINT) that waits until a step is complete, so that an interrupted run leaves a consistent state."""

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Optional


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold back a SIGINT that arrives inside the block until the block is done, then deliver it (``KeyboardInterrupt``
    with Python's default handler). A second SIGINT inside the block raises ``KeyboardInterrupt`` at once, for a
    block that hangs. Outside the main thread, where Python delivers no signals, the block just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[Optional[FrameType]] = []

    def hold(signum: int, frame: Optional[FrameType]) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(frame)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        if callable(previous):
            previous(signal.SIGINT, received[0])
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt

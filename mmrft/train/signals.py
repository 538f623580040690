"""Stop a run cleanly on SIGINT / SIGTERM: the current step finishes, a checkpoint is written, the run returns.

A second signal while stopping falls back to the default behaviour (Ctrl-C twice interrupts at once).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Optional

log = logging.getLogger("mmrft")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulStop:
    """Context manager: while active, the first SIGINT/SIGTERM sets `requested` instead of killing the process.
    Outside the main thread (where handlers cannot be installed) it does nothing."""

    def __init__(self) -> None:
        self.requested: Optional[str] = None
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        name = signal.Signals(signum).name
        if self.requested:  # second signal: stop waiting
            signal.signal(signum, self._old.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self.requested = name
        log.warning("%s received: finishing this step, then saving a checkpoint and stopping "
                    "(send it again to stop at once)", name)

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._old.clear()

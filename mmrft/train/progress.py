"""Progress of a training loop: a tqdm bar on a terminal; otherwise (log files, CI, cluster schedulers) a plain log
line every few steps, never carriage-return redraws."""

from __future__ import annotations

import logging
import sys
import time

from tqdm.auto import tqdm

log = logging.getLogger("mmrft")


class Progress:
    """`update(step, shown)` after each step, `close()` at the end. `shown` maps a short label to its formatted value
    ("loss" -> "0.412"); on a terminal it is the bar's postfix, elsewhere a line `step 40/600  loss 0.412  ETA 3m05s`
    every `every` steps and at the last one. `enabled=False` shows nothing (e.g. ranks other than 0)."""

    def __init__(self, total: int, start: int, desc: str, enabled: bool, every: int) -> None:
        self.tty = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=start - 1, desc=desc, disable=not self.tty, dynamic_ncols=True)
        self.total, self.every, self.t0, self.done = total, max(every, 1), time.time(), 0
        self.desc, self.enabled = desc, enabled

    def update(self, step: int, shown: dict[str, str]) -> None:
        self.done += 1
        if self.tty:
            self.bar.update(1)
            self.bar.set_postfix(shown)
        elif self.enabled and (step % self.every == 0 or step == self.total):
            eta = (time.time() - self.t0) / self.done * (self.total - step)
            log.info("%s step %d/%d  %s  ETA %dm%02ds", self.desc, step, self.total,
                     "  ".join(f"{k} {v}" for k, v in shown.items()), eta // 60, eta % 60)

    def close(self) -> None:
        self.bar.close()

"""Fault injection for the crash-safety tests: a no-op unless the environment variable `MMRFT_FAULT_POINT` is set.

    MMRFT_FAULT_POINT=<point>:<n>[:<action>][,<point>:<n>[:<action>] ...]

makes this process act the `n`-th time (1-based, counted per process) it reaches `<point>`:

| point | where |
|---|---|
| `checkpoint_write` | inside a checkpoint's temporary directory: the policy's weights written, the rest not yet |
| `metrics_append` | half of a `metrics.jsonl` line written and flushed, the rest not yet |
| `final_save` | inside the final model's temporary directory: the weights written, the processor not yet |

| action | what happens |
|---|---|
| `kill` (default) | the process SIGKILLs itself, as the OOM killer or a lost node would end it |
| `enospc` | `OSError(ENOSPC)` is raised there, as a full disk would |

`benchmarks/crash_resume.py` and `tests/e2e/test_crash_resume.py` use it to land kills inside the short windows a
random instant rarely hits (see docs/reliability.md).
"""

from __future__ import annotations

import errno
import os
import signal
import sys

ENV = "MMRFT_FAULT_POINT"
POINTS = ("checkpoint_write", "metrics_append", "final_save")
ACTIONS = ("kill", "enospc")

_seen: tuple[str, dict[str, int]] = ("", {})  # (the variable's value, hits per point so far in this process)


def _plan(value: str) -> dict[str, tuple[int, str]]:
    plan = {}
    for item in filter(None, (x.strip() for x in value.split(","))):
        name, _, rest = item.partition(":")
        count, _, action = rest.partition(":")
        action = action or "kill"
        if name not in POINTS or not count.isdigit() or int(count) < 1 or action not in ACTIONS:
            raise ValueError(f"{ENV}={value!r}: expected <point>:<n>[:<action>] with a point in {list(POINTS)}, "
                             f"n >= 1 and an action in {list(ACTIONS)}")
        plan[name] = (int(count), action)
    return plan


def armed(name: str) -> bool:
    """True when `MMRFT_FAULT_POINT` names `name` (so a writer can prepare the state the fault is about)."""
    value = os.environ.get(ENV, "")
    return bool(value) and name in _plan(value)


def point(name: str) -> None:
    """Act here if `MMRFT_FAULT_POINT` says so (see the module docstring); otherwise return at once."""
    global _seen
    value = os.environ.get(ENV, "")
    if not value:
        return
    plan = _plan(value)
    if name not in plan:
        return
    if _seen[0] != value:  # a new plan: count from zero
        _seen = (value, {})
    hits = _seen[1]
    hits[name] = hits.get(name, 0) + 1
    n, action = plan[name]
    if hits[name] != n:
        return
    if action == "enospc":
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (injected by {ENV} at {name})")
    sys.stderr.write(f"{ENV}: SIGKILL at {name} #{n}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)

"""The grading worker: what runs inside the reward process (and in-process when `workers=0`).

Every reward call runs under a SIGALRM time limit in the worker's main thread; a timeout scores 0 and is
counted, an exception scores 0 and is reported with the sample id. The parent side (start, watchdog, restart)
is in `runner.py`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import os
import signal
import traceback
from typing import List

from mmrft.rewards.compose import build_reward

log = logging.getLogger("mmrft.rewards.runner")

MAX_ERROR_CHARS = 500


class RewardTimeout(BaseException):
    """Raised inside a reward call when its time limit expires."""


# ----------------------------------------------------------------------------- grading core


def raise_timeout(signum, frame):
    raise RewardTimeout()


@contextlib.contextmanager
def timeout_handler(enabled: bool = True):
    """`raise_timeout` as the SIGALRM handler for the block, the previous handler and a disarmed timer after. Only
    the main thread may install signal handlers: call with `enabled=False` elsewhere (the block then runs untimed)."""
    if not enabled:
        yield
        return
    old = signal.signal(signal.SIGALRM, raise_timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def time_limit(timeout_s: float, enabled: bool = True):
    """`RewardTimeout` raised inside the block after `timeout_s` seconds (with `timeout_handler` installed); the
    timer is disarmed when the block ends either way."""
    if not enabled:
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def format_error(sample, name: str, exc: BaseException) -> str:
    sid = sample.get("id") if isinstance(sample, dict) else None
    try:
        msg = f"{type(exc).__name__}: {exc}"
    except Exception:  # an exception whose __str__ fails
        msg = type(exc).__name__
    if len(msg) > MAX_ERROR_CHARS:
        msg = msg[:MAX_ERROR_CHARS] + "..."
    return f"id={sid!r} reward={name}: {msg}"


def grade_one(items, completion, sample, timeout_s: float, use_timer: bool):
    """Run every ``(name, fn)`` on one pair.  Returns ``(scores, n_timeouts, errors)``."""
    scores: List[float] = []
    n_timeouts = 0
    errors: List[str] = []
    for name, fn in items:
        value = 0.0
        try:
            with time_limit(timeout_s, use_timer):
                raw = fn(completion, sample)
            raw = float(raw)
            if not math.isfinite(raw):
                raise ValueError(f"reward returned a non-finite score {raw!r}")
            value = raw
        except RewardTimeout:
            n_timeouts += 1
        except (Exception, SystemExit) as e:
            errors.append(format_error(sample, name, e))
        scores.append(value)
    return scores, n_timeouts, errors


def warmup(items) -> None:
    """Call the optional ``fn.warmup()`` hooks (slow imports), outside any time limit."""
    for name, fn in items:
        hook = getattr(fn, "warmup", None)
        if callable(hook):
            try:
                hook()
            except Exception:
                log.warning("warm-up of reward %r failed", name, exc_info=True)


def worker_main(conn, spec, timeout_s: float, imports: tuple[str, ...] = ()) -> None:
    """Entry point of a grading worker (runs in the child's main thread). `imports`: the modules the run's config
    lists under `imports:`, imported first so that rewards they register with `@register_reward` exist here too
    (the worker is a fresh interpreter: only `module:function` names would import themselves)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    try:
        for module in imports:
            importlib.import_module(module)
        reward = build_reward(spec)
    except BaseException:
        conn.send(("init_error", traceback.format_exc()))
        conn.close()
        return
    items = list(reward.fns.items())
    warmup(items)
    signal.signal(signal.SIGALRM, raise_timeout)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # parent gone
        except Exception:
            conn.send(("batch_error", traceback.format_exc(limit=3)))
            continue
        if msg[0] == "close":
            return
        if msg[0] == "score":
            for idx, completion, sample in msg[1]:
                scores, n_timeouts, errors = grade_one(items, completion, sample, timeout_s, True)
                conn.send(("item", idx, scores, n_timeouts, errors))


# Runs in the spawned child via builtins.exec, so that unpickling the process target
# does not import the top-level package (and its heavy __init__) when FAST_START is set.
BOOTSTRAP = """
import importlib, sys
if FAST_START and ROOT_PKG not in sys.modules:
    import importlib.machinery, importlib.util
    _spec = importlib.machinery.ModuleSpec(ROOT_PKG, None, is_package=True)
    _spec.submodule_search_locations = list(ROOT_PATH)
    sys.modules[ROOT_PKG] = importlib.util.module_from_spec(_spec)
importlib.import_module(RUNNER_MODULE).worker_main(CONN, SPEC, TIMEOUT_S, IMPORTS)
"""

"""Batch reward grading with time limits and crash isolation.

:class:`RewardRunner` grades ``(completion, sample)`` pairs with a reward spec
(see :func:`~mmrft.rewards.compose.build_reward`) so that a pathological
completion or a buggy reward cannot hang or kill training:

* **Isolation.** With ``workers >= 1`` the rewards run in persistent worker
  processes started with the ``"spawn"`` (default) or ``"forkserver"``
  multiprocessing context — never ``fork``, the parent has torch threads.  A
  worker rebuilds the reward from its *names* (so user rewards are given as
  ``"some.module:function"`` and re-imported there; ``sys.path`` is inherited).
  By default (``fast_start=True``) the worker imports ``mmrft.rewards`` without
  executing ``mmrft/__init__.py`` (which pulls in transformers, seconds of
  start-up, paid again on every restart); pass ``fast_start=False`` if a custom
  reward depends on that package's import side effects.  Workers are daemonic,
  closed by :meth:`RewardRunner.close`, the context manager, garbage collection
  and ``atexit``; a worker also exits when the parent's end of its pipe closes.
  Samples are sent without the heavy keys in ``drop_keys`` (images, pixel
  values, ...); rewards only see the remaining keys, in-process too.
* **Time limit per call.** Every ``reward(completion, sample)`` call runs under
  ``signal.setitimer(ITIMER_REAL, timeout_s)`` in the worker's main thread; on
  expiry :class:`RewardTimeout` (a ``BaseException``, so ``except Exception`` in
  reward code does not swallow it) aborts the call, which scores 0 and is
  counted in ``RewardBatch.timeouts``.  (Rewards that call ``signal.alarm``
  themselves — e.g. math-verify with its own timeouts enabled — cancel this
  timer for the rest of their call; the built-in ``math`` reward detects the
  armed timer and disables math-verify's.)
* **Watchdog.** Code that never returns to the interpreter loop (a catastrophic
  regex in C, a reward that swallows ``BaseException``) is not stopped by the
  signal.  The parent therefore expects each item's result within
  ``watchdog_s`` (default ``n_rewards * timeout_s + max(2, timeout_s)``); if it
  does not come, the worker is killed and restarted, the stuck item scores 0
  (counted as a timeout) and the rest of the batch continues.
* **Errors.** An exception in a reward scores 0 and is recorded in
  ``RewardBatch.errors`` as ``"id=<sample['id']> reward=<name>: <Type>: <msg>"``.
  A worker that dies while grading an item records that item as an error.
* A reward function may carry a ``warmup()`` attribute (the built-in ``math``
  does: it imports math-verify); it is called once when a worker starts, before
  the worker reports ready, so slow imports do not eat into the first call's limit.
* ``workers=0`` grades in-process (no isolation, for debugging), still with the
  ``SIGALRM`` limit when called from the main thread.

Each worker streams one small message per graded item; with ``workers > 1``
the batch is split into contiguous chunks, one per worker.
"""

from __future__ import annotations

import atexit
import collections
import importlib
import logging
import math
import multiprocessing
import multiprocessing.connection
import signal
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from multiprocessing.reduction import ForkingPickler
from typing import Deque, Dict, Iterable, List, Optional, Sequence, Tuple

from mmrft.rewards import worker as worker_module
from mmrft.rewards.compose import RewardSpec, build_reward
from mmrft.rewards.worker import BOOTSTRAP, RewardTimeout, format_error, grade_one, timeout_handler, warmup

__all__ = ["RewardRunner", "RewardBatch", "RewardTimeout", "DEFAULT_DROP_KEYS"]

log = logging.getLogger(__name__)

DEFAULT_DROP_KEYS: Tuple[str, ...] = (
    "image",
    "images",
    "video",
    "videos",
    "pixel_values",
    "pixel_values_videos",
    "image_grid_thw",
    "video_grid_thw",
)
@dataclass
class RewardBatch:
    """Scores for one batch.  ``totals[i] = sum(weight[name] * components[name][i])``."""

    totals: List[float]
    components: Dict[str, List[float]]
    timeouts: int = 0
    errors: List[str] = field(default_factory=list)
    elapsed_s: float = 0.0



# ----------------------------------------------------------------------------- parent side


class _Slot:
    """One worker process as seen from the parent."""

    __slots__ = ("proc", "conn", "ready", "deadline", "pending", "payload", "restarts")

    def __init__(self) -> None:
        self.proc = None
        self.conn = None
        self.ready = False
        self.deadline = math.inf
        self.pending: Deque[int] = collections.deque()
        self.payload: Dict[int, tuple] = {}
        self.restarts = 0


_LIVE: "weakref.WeakSet[RewardRunner]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for runner in list(_LIVE):
        try:
            runner.close()
        except Exception:
            pass


class RewardRunner:
    """Grade batches with time limits, in isolated worker processes (see module docstring).

    Args:
        spec: reward name, list of names or ``{name: weight}`` (names may be
            ``"module:function"``).
        timeout_s: time limit of one reward call, seconds.
        workers: worker processes; ``0`` grades in-process.
        watchdog_s: how long the parent waits for one item's result before it
            kills and restarts the worker (default ``n_rewards * timeout_s + max(2, timeout_s)``).
        start_timeout_s: how long a worker may take to start and import the rewards.
        mp_context: ``"spawn"`` or ``"forkserver"``.
        fast_start: import ``mmrft.rewards`` in the worker without running
            ``mmrft/__init__.py``.
        drop_keys: sample keys not passed to rewards (heavy media).
        imports: modules each worker imports before building the reward (the config's ``imports:``), so that
            rewards registered there by name resolve in the worker as they do in the parent.
    """

    def __init__(
        self,
        spec: RewardSpec,
        timeout_s: float = 5.0,
        workers: int = 1,
        *,
        watchdog_s: Optional[float] = None,
        start_timeout_s: float = 120.0,
        mp_context: str = "spawn",
        fast_start: bool = True,
        drop_keys: Iterable[str] = DEFAULT_DROP_KEYS,
        imports: Sequence[str] = (),
    ) -> None:
        self.imports = tuple(imports)
        for module in self.imports:  # the parent validates the names, as the worker will resolve them
            importlib.import_module(module)
        self.reward = build_reward(spec)  # validates the names here, in the parent
        self.spec = self.reward.spec
        self.names: List[str] = self.reward.names
        self.weights = dict(self.reward.weights)
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
            raise ValueError(f"timeout_s must be a positive number, got {timeout_s!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be an int >= 0, got {workers!r}")
        if mp_context not in ("spawn", "forkserver"):
            raise ValueError(f"mp_context must be 'spawn' or 'forkserver' (not fork), got {mp_context!r}")
        self.timeout_s = float(timeout_s)
        self.workers = workers
        self.watchdog_s = float(
            watchdog_s if watchdog_s is not None else len(self.names) * self.timeout_s + max(2.0, self.timeout_s)
        )
        self.start_timeout_s = float(start_timeout_s)
        self.fast_start = bool(fast_start)
        self.drop_keys = frozenset(drop_keys)
        self._lock = threading.Lock()
        self._closed = False
        self._ctx = multiprocessing.get_context(mp_context) if workers else None
        self._slots: List[_Slot] = [_Slot() for _ in range(workers)]
        for slot in self._slots:
            self._start(slot)
        if workers == 0:
            warmup(list(self.reward.fns.items()))
        _LIVE.add(self)

    # -- context manager / lifecycle -------------------------------------------------

    def __enter__(self) -> "RewardRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        for slot in self._slots:
            self._stop(slot, graceful=True)

    @property
    def worker_pids(self) -> List[Optional[int]]:
        return [s.proc.pid if s.proc is not None else None for s in self._slots]

    # -- worker management -----------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        root = __name__.split(".")[0]
        env = {
            "CONN": child_conn,
            "SPEC": self.spec,
            "TIMEOUT_S": self.timeout_s,
            "FAST_START": self.fast_start,
            "ROOT_PKG": root,
            "ROOT_PATH": list(getattr(sys.modules[root], "__path__", [])),
            "RUNNER_MODULE": worker_module.__name__,
            "IMPORTS": self.imports,
        }
        proc = self._ctx.Process(target=exec, args=(BOOTSTRAP, env), name="mmrft-reward-worker", daemon=True)
        proc.start()
        child_conn.close()
        slot.proc, slot.conn, slot.ready = proc, parent_conn, False
        slot.deadline = time.monotonic() + self.start_timeout_s

    def _stop(self, slot: _Slot, graceful: bool) -> None:
        proc, conn = slot.proc, slot.conn
        slot.proc = slot.conn = None
        slot.ready = False
        if proc is not None and graceful and proc.is_alive() and conn is not None:
            try:
                conn.send(("close",))
                proc.join(timeout=1.0)
            except Exception:
                pass
        if proc is not None and proc.is_alive():
            proc.kill()
            proc.join(timeout=5.0)
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
        if proc is not None:
            try:
                proc.close()
            except Exception:
                pass

    def _restart(self, slot: _Slot) -> None:
        self._stop(slot, graceful=False)
        slot.restarts += 1
        self._start(slot)

    def _send_pending(self, slot: _Slot, samples, state) -> None:
        items = [slot.payload[i] for i in slot.pending]
        try:
            slot.conn.send(("score", items))  # pickles fully before writing anything
        except (OSError, EOFError):
            log.warning("reward worker pipe is broken; restarting it")
            self._restart(slot)  # pending items are sent again once it is ready
            return
        except Exception:
            # Some sample cannot be pickled: score those 0 (recorded) and send the rest.
            bad = []
            for item in items:
                try:
                    ForkingPickler.dumps(item)
                except Exception as e:
                    bad.append((item[0], e))
            if not bad:
                raise
            for idx, e in bad:
                slot.pending.remove(idx)
                state["errors"].append(format_error(samples[idx], "*", TypeError(f"sample cannot be sent: {e}")))
            if slot.pending:
                self._send_pending(slot, samples, state)
            return
        slot.deadline = time.monotonic() + self.watchdog_s

    # -- grading ---------------------------------------------------------------------

    def _strip(self, sample):
        if isinstance(sample, dict) and self.drop_keys and not self.drop_keys.isdisjoint(sample):
            return {k: v for k, v in sample.items() if k not in self.drop_keys}
        return sample

    def score(self, completions: Sequence[str], samples: Sequence[dict]) -> RewardBatch:
        """Grade ``completions[i]`` against ``samples[i]`` for every reward of the spec."""
        if len(completions) != len(samples):
            raise ValueError(f"{len(completions)} completions but {len(samples)} samples")
        if self._closed:
            raise RuntimeError("RewardRunner is closed")
        t0 = time.perf_counter()
        n = len(completions)
        scores: List[Optional[List[float]]] = [None] * n
        state = {"timeouts": 0, "errors": []}
        with self._lock:
            if n:
                if self.workers == 0:
                    self._score_inprocess(completions, samples, scores, state)
                else:
                    self._score_workers(completions, samples, scores, state)
        zeros = [0.0] * len(self.names)
        rows = [s if s is not None else zeros for s in scores]
        components = {name: [row[j] for row in rows] for j, name in enumerate(self.names)}
        weights = [self.weights[name] for name in self.names]
        totals = [float(sum(w * v for w, v in zip(weights, row))) for row in rows]
        return RewardBatch(
            totals=totals,
            components=components,
            timeouts=state["timeouts"],
            errors=state["errors"],
            elapsed_s=time.perf_counter() - t0,
        )

    __call__ = score

    def _score_inprocess(self, completions, samples, scores, state) -> None:
        items = list(self.reward.fns.items())
        use_timer = threading.current_thread() is threading.main_thread()
        if use_timer and signal.getitimer(signal.ITIMER_REAL)[0] > 0:
            use_timer = False  # somebody else's timer is running; do not clobber it
        with timeout_handler(use_timer):
            for i, (completion, sample) in enumerate(zip(completions, samples)):
                row, n_to, errs = grade_one(items, completion, self._strip(sample), self.timeout_s, use_timer)
                scores[i] = row
                state["timeouts"] += n_to
                state["errors"].extend(errs)

    def _score_workers(self, completions, samples, scores, state) -> None:
        n = len(completions)
        slots = self._slots
        k = len(slots)
        bounds = [round(j * n / k) for j in range(k + 1)]
        for j, slot in enumerate(slots):
            if slot.proc is None or not slot.proc.is_alive():
                if slot.proc is not None:
                    log.warning("reward worker died between batches (exit code %s); restarting", slot.proc.exitcode)
                self._restart(slot)
            idxs = range(bounds[j], bounds[j + 1])
            slot.payload = {i: (i, completions[i], self._strip(samples[i])) for i in idxs}
            slot.pending = collections.deque(idxs)
            if slot.pending and slot.ready:
                self._send_pending(slot, samples, state)
        try:
            while True:
                active = [s for s in slots if s.pending]
                if not active:
                    return
                by_conn = {s.conn: s for s in active}
                wait = max(0.0, min(s.deadline for s in active) - time.monotonic())
                for conn in multiprocessing.connection.wait(list(by_conn), timeout=wait):
                    slot = by_conn[conn]
                    self._handle(slot, samples, scores, state)
                    # drain what is already there without another wait() round trip
                    while slot.pending and slot.conn is conn and conn.poll():
                        self._handle(slot, samples, scores, state)
                now = time.monotonic()
                for slot in active:
                    if slot.pending and slot.conn is not None and now > slot.deadline:
                        self._on_deadline(slot, samples, scores, state)
        finally:
            # Interrupted (e.g. KeyboardInterrupt): workers still streaming stale results are replaced.
            for slot in slots:
                if slot.pending:
                    slot.pending.clear()
                    self._restart(slot)

    def _handle(self, slot: _Slot, samples, scores, state) -> None:
        try:
            msg = slot.conn.recv()
        except (EOFError, OSError):
            self._on_crash(slot, samples, scores, state)
            return
        kind = msg[0]
        if kind == "item":
            _, idx, row, n_to, errs = msg
            if slot.pending and slot.pending[0] == idx:
                slot.pending.popleft()
            else:  # should not happen; keep the books straight anyway
                try:
                    slot.pending.remove(idx)
                except ValueError:
                    return
            scores[idx] = row
            state["timeouts"] += n_to
            state["errors"].extend(errs)
            slot.deadline = time.monotonic() + self.watchdog_s
        elif kind == "ready":
            slot.ready = True
            if slot.pending:
                self._send_pending(slot, samples, state)
        elif kind == "init_error":
            self._stop(slot, graceful=False)
            slot.pending.clear()
            raise RuntimeError(f"reward worker could not build the rewards {self.spec}:\n{msg[1]}")
        elif kind == "batch_error":
            for idx in slot.pending:
                state["errors"].append(
                    format_error(samples[idx], "*", RuntimeError(f"worker could not receive the batch: {msg[1]}"))
                )
            slot.pending.clear()

    def _on_crash(self, slot: _Slot, samples, scores, state) -> None:
        code = None
        if slot.proc is not None:
            slot.proc.join(timeout=1.0)
            code = slot.proc.exitcode
        if not slot.ready:
            self._stop(slot, graceful=False)
            slot.pending.clear()
            raise RuntimeError(f"reward worker exited during start-up (exit code {code})")
        idx = slot.pending.popleft()
        state["errors"].append(
            format_error(samples[idx], "*", RuntimeError(f"reward worker died (exit code {code}) on this item"))
        )
        log.warning("reward worker died (exit code %s) grading item %d; restarting", code, idx)
        self._restart(slot)

    def _on_deadline(self, slot: _Slot, samples, scores, state) -> None:
        if not slot.ready:
            self._stop(slot, graceful=False)
            slot.pending.clear()
            raise RuntimeError(f"reward worker did not start within {self.start_timeout_s:.0f}s")
        idx = slot.pending.popleft()
        state["timeouts"] += 1
        sid = samples[idx].get("id") if isinstance(samples[idx], dict) else None
        log.warning(
            "reward worker gave no result for item %d (id=%r) within %.1fs; killing and restarting it",
            idx,
            sid,
            self.watchdog_s,
        )
        self._restart(slot)

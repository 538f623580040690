"""What every model-based reward speaks: a `JudgeRequest` in, a `JudgeResult` out, through a `Judge`.

A judge scores completions with a model rather than a program: a generative judge (a chat model asked a question
about the completion, its reply parsed into a number by a verdict parser) or a reward model (a network that returns
a scalar). Judges are batched and may be remote, so they do not run inside the per-completion reward workers of
`mmrft.rewards.RewardRunner`; `mmrft.rewards.scoring.Scorer` calls them once per batch beside those workers and adds
their scores to the weighted total like any reward (gating, caching and fault accounting live there).

A judge never raises for one bad item: a timeout, an unparsable reply or a dead server becomes a `JudgeResult`
with `score=None` and `error` set, so the scorer can apply `rewards.on_error` and count it. It raises
`JudgeUnavailable` only when it cannot work at all (a server unreachable when the run starts, a missing model).

Judge kinds are a registry (`JUDGE_KINDS`): a user adds one with

    from mmrft.judges import JUDGE_KINDS

    @JUDGE_KINDS.register("my_judge")
    class MyJudge:
        def __init__(self, name: str, **options): ...
        def score(self, requests): return [JudgeResult(score=...) for r in requests]
        def close(self): ...

and selects it in a config with `rewards.judges.<name>.kind: my_judge`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence, runtime_checkable

from mmrft.errors import MmrftError
from mmrft.registry import Registry

__all__ = ["JudgeRequest", "JudgeResult", "Judge", "JudgeUnavailable", "JUDGE_KINDS", "score_in_batches"]

log = logging.getLogger("mmrft.judges")


@dataclass(frozen=True)
class JudgeRequest:
    """One completion to judge.

    Attributes:
        sample_id: the sample's id (for messages and the cache key).
        question: the sample's prompt text, as the user wrote it (without the reasoning-format instruction).
        completion: what the policy answered (the whole final turn, reasoning included).
        answer: the extracted final answer (inside `<answer>` when the policy used the tags, else the completion);
            the scorer's cache key together with `sample_id`.
        gold: the reference answer, as text; None when the sample has none.
        rubric: what a good answer does (`metadata.rubric` of the sample), or None.
        images: the sample's images, as `mmrft.data.schema.ImageRef` (a path or a `{"path": ...}` dict, resolved)
            or PIL images; load them with `mmrft.data.media.load_image`.
    """

    sample_id: str
    question: str
    completion: str
    answer: str
    gold: Optional[str] = None
    rubric: Optional[str] = None
    images: Sequence[Any] = ()
    metadata: dict = field(default_factory=dict)


@dataclass
class JudgeResult:
    """A judge's verdict on one request: `score` in the judge's documented range (generative judges: [0, 1]),
    or None with `error` saying why (timeout, unparsable reply, server error). `raw` is the judge's reply text
    (generative judges) for logs and the viewer; `latency_s` the time the call took, `attempts` how many tries."""

    score: Optional[float]
    raw: str = ""
    error: Optional[str] = None
    latency_s: float = 0.0
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.score is not None and self.error is None


@runtime_checkable
class Judge(Protocol):
    """Scores a batch of requests; one result per request, in order. Must not raise for a single bad item."""

    name: str

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]: ...

    def close(self) -> None: ...


class JudgeUnavailable(MmrftError):
    """A judge cannot work at all: its server is unreachable at start, its model cannot be loaded."""


# kind name -> a class (or factory) called as `cls(name=..., **options)` with the config's options
JUDGE_KINDS: Registry[Any] = Registry(
    "judge kind",
    builtin_modules=("mmrft.judges.http", "mmrft.judges.local", "mmrft.judges.reward_model"),
    import_paths=True,
)


def score_in_batches(name: str, requests: Sequence[JudgeRequest], batch_size: int,
                     prepare: Callable[[JudgeRequest, dict], Any], run: Callable[[list], list],
                     to_result: Callable[[Any, float], JudgeResult], prepare_error: str,
                     run_error: str) -> list[JudgeResult]:
    """One result per request, in order, never raising for an item: the batch loop of the judges that run a model
    in process. `prepare(request, cache)` builds a request's input (`cache` is shared by the call, e.g. decoded
    images; a failure becomes `"<prepare_error>: <exception>"`, attempts 0); `run(items)` scores up to `batch_size`
    inputs at once (a failure fails the whole batch as `"<run_error>: <Type>: <message>"`); `to_result(output,
    latency)` turns one output into its result, `latency` being the batch's time."""
    results: list[Optional[JudgeResult]] = [None] * len(requests)
    prepared: list[tuple[int, Any]] = []
    cache: dict = {}
    for i, request in enumerate(requests):
        try:
            prepared.append((i, prepare(request, cache)))
        except Exception as e:  # a missing gold answer or rubric, an unreadable image, ...
            results[i] = JudgeResult(score=None, error=f"{prepare_error}: {e}", attempts=0)
    for start in range(0, len(prepared), batch_size):
        chunk = prepared[start: start + batch_size]
        t0 = time.monotonic()
        try:
            outputs = run([item for _, item in chunk])
        except Exception as e:
            log.exception("judge %r: %s failed for a batch of %d", name, run_error, len(chunk))
            for i, _ in chunk:
                results[i] = JudgeResult(score=None, error=f"{run_error}: {type(e).__name__}: {e}",
                                         latency_s=time.monotonic() - t0)
            continue
        latency = time.monotonic() - t0
        for (i, _), output in zip(chunk, outputs):
            results[i] = to_result(output, latency)
    return [r for r in results if r is not None]

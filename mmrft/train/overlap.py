"""One-step off-policy rollouts (`rollout.overlap`): step t+1's batch is sampled while step t updates.

With θ_k the policy after k updates, step t does

    take B_t (sampled from θ_{t-2})  ->  copy θ_{t-1} into the sampler, draw step t+1's prompts, start sampling
    B_{t+1} in the background  ->  update θ_{t-1} -> θ_t on B_t

so every batch but the first is exactly one update old (`rollout/staleness` = 1 in the metrics). The update's
π_old is θ_{t-1} as usual (the trainer recomputes it); the sampler's θ_{t-2} differs from it by one update, and
`rollout.correction` (e.g. `tis`) reweights each token by that difference from the sampler's own log-probs. This is
verl's one-step-off-policy schedule, in one process: the rollout runs on a background thread, on weights of its own
(`engine=vllm`: the engine's copy; `engine=hf`: :class:`PolicyCopyEngine`, a copy of the policy, which doubles the
memory its weights take), with a reward scorer of its own; generation and the update are torch calls that release
the GIL, so they run side by side (on one CPU they share its cores; on a GPU the sampler fills the update's gaps).

What stays exact: the prompts are drawn and encoded on the main thread, in the same order as without overlap, and
the background thread is the only user of torch's global random state while it runs (generation draws from it; the
update uses the run's own generator). A step at which a checkpoint is due does not sample ahead, so the next step
samples on-policy both in the uninterrupted run and in a run resumed from that checkpoint: resuming stays bit-exact.
A stop by signal or alarm drops the batch sampled ahead; the resumed run samples that step on-policy.

Not combined (a clear error, `check_overlap`): DAPO's refill rounds (they draw more prompts mid-step), rollout-time
augmentation, multi-turn tools and environments (tool calls are timed only on the main thread), in-process reward
grading (`rewards.workers=0`: likewise), FSDP with `engine=hf`, and vLLM's sleep mode (vLLM must stay awake while
the policy trains).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Optional

import torch

from mmrft.errors import ConfigError
from mmrft.rollout.hf import HFRolloutEngine

log = logging.getLogger("mmrft")


def check_overlap(cfg) -> None:
    """Refuse the settings `rollout.overlap` cannot run with (module docstring); warn when nothing corrects the
    sampler's one-update lag."""
    ro, algo = cfg.rollout, cfg.algorithm
    if not ro.overlap:
        return
    refused = [
        (algo.filter_zero_variance, "algorithm.filter_zero_variance (DAPO's refill rounds draw more prompts "
                                    "mid-step)"),
        (bool(ro.augment), "rollout.augment (its completions are off-policy on purpose)"),
        (bool(ro.tools or ro.environment), "rollout.tools / rollout.environment (tool calls are timed only on the "
                                           "main thread)"),
        (cfg.rewards.workers == 0, "rewards.workers=0 (rewards graded in-process are timed only on the main "
                                   "thread; use worker processes)"),
        (ro.engine == "hf" and cfg.trainer.fsdp, "trainer.fsdp with rollout.engine=hf (the sampler's copy would "
                                                 "be unsharded on every rank; use engine=vllm)"),
        (ro.engine == "vllm" and ro.vllm_sleep_level > 0, "rollout.vllm_sleep_level > 0 (vLLM samples while the "
                                                          "policy trains; set it to 0)"),
    ]
    for bad, what in refused:
        if bad:
            raise ConfigError(f"rollout.overlap=true cannot be combined with {what}")
    if ro.correction == "none":
        log.warning("rollout.overlap=true samples each batch from weights one update old and rollout.correction="
                    "none leaves that uncorrected; rollout.correction=tis is the usual choice")


class PolicyCopyEngine(HFRolloutEngine):
    """Sampling on a copy of the policy (and of its processor, whose tokenizer is not safe to share between
    threads), so that sampling can run while the policy updates; `sync_weights` copies the policy's current
    weights in (a copy in place: no new memory)."""

    def __init__(self, model, processor, share_prefill: bool = True, keep_logprobs: bool = False,
                 decoder: str = "loop"):
        twin = copy.deepcopy(model)
        twin.requires_grad_(False)
        super().__init__(twin, copy.deepcopy(processor), share_prefill=share_prefill, keep_logprobs=keep_logprobs,
                         decoder=decoder)

    @torch.no_grad()
    def sync_weights(self, model) -> None:
        self.model.load_state_dict(model.state_dict())


class SamplingAhead:
    """The background half of `rollout.overlap`: one rollout in flight at a time, on `engine` (which holds its own
    weights), tagged with the number of updates its weights had seen."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmrft-rollout")
        self.future: Optional[Future] = None
        self.version: Optional[int] = None  # updates the in-flight batch's weights had seen
        self.engine_version: Optional[int] = None  # updates the engine's weights have seen

    def sync(self, model, updates: int) -> None:
        """Bring the engine's weights to the policy's (after `updates` updates) unless they are there already.
        Never while a rollout is in flight."""
        assert self.future is None, "weights synced while a rollout is in flight"
        if self.engine_version != updates:
            self.engine.sync_weights(model)
            self.engine_version = updates

    def start(self, sample: Callable[[dict], object]) -> None:
        """Run `sample(timings)` in the background on the engine's current weights."""
        assert self.future is None, "a rollout is in flight already"
        timings: dict[str, float] = {}
        self.version = self.engine_version
        self.future = self.pool.submit(lambda: (sample(timings), timings))

    def take(self, timings: dict[str, float]) -> Optional[tuple[object, int]]:
        """(the batch sampled ahead, the updates its weights had seen), waiting for it; None when nothing is in
        flight. Its rollout and reward times are added to `timings`, and the wait as `rollout_wait`."""
        if self.future is None:
            return None
        t0 = time.time()
        future, self.future = self.future, None
        samples, spent = future.result()
        for k, v in spent.items():
            timings[k] = timings.get(k, 0.0) + v
        timings["rollout_wait"] = time.time() - t0
        return samples, self.version

    def discard(self) -> None:
        """Wait for the batch in flight, if any, and drop it (a stop: the next run samples that step on-policy)."""
        if self.future is not None:
            future, self.future = self.future, None
            try:
                future.result()
            except Exception:  # the run is stopping; the error would only hide the stop's reason
                log.exception("the rollout sampled ahead failed")

    def close(self) -> None:
        self.discard()
        self.pool.shutdown(wait=True)

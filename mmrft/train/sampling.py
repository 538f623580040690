"""The sampling half of an RL step: draw prompts, roll out G completions each, score them; with DAPO's dynamic
sampling, drop groups whose rewards are all equal (they carry no advantage) and draw more prompts until the batch
is full or `algorithm.max_resample_rounds` extra rounds were spent (Yu et al. 2025, Sec. 3.2).

Data-parallel, each rank fills its own share of the batch, and all ranks run the same number of rounds (until every
rank is full): a full rank still draws, without sampling, so the prompt sampler stays the same on every rank (rank 0
saves it in checkpoints). Ranks may end with different numbers of groups, or none; `mmrft.train.learn` copes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from mmrft.algorithms import ADVANTAGE_ESTIMATORS, filter_groups, overlong_penalty
from mmrft.config import AlgorithmConfig
from mmrft.data.collate import PromptBatch
from mmrft.data.schema import Sample
from mmrft.rewards.scoring import Scorer, Scores
from mmrft.rollout.engine import (Rollout, RolloutEngine, SamplingParams, concat_rollouts, group_rows,
                                  interleave_groups, trajectory_summaries)
from mmrft.train.dist import SINGLE, DistContext, any_rank


@dataclass
class StepSamples:
    """`train` holds the groups to learn from (None when every drawn group was dropped); `drawn` everything
    sampled this step, for logging."""

    train: Rollout | None
    train_scores: Scores | None
    train_rewards: torch.Tensor | None  # task rewards + shaping, what the advantage estimator sees
    drawn: Rollout
    drawn_scores: Scores
    drawn_shaping: torch.Tensor
    groups_drawn: int
    groups_kept: int
    rounds: int
    # for a per-component estimator (GDPO): the kept rows' rewards one column per `rewards.weights` entry (+ DAPO's
    # shaping); their weighted sum is `train_rewards` (the weights: `mmrft.train.learn.component_weights`)
    train_components: torch.Tensor | None = None


def sample_step(
    draw: Callable[[], list[Sample]],
    encode: Callable[[list[Sample]], PromptBatch],
    engine: RolloutEngine,
    params: SamplingParams,
    scorer: Scorer,
    algo: AlgorithmConfig,
    pad_id: int,
    timings: dict[str, float] | None = None,
    ctx: DistContext = SINGLE,
    max_response_tokens: int | None = None,
    augment: Callable[[list[Sample]], list[Sample]] | None = None,
    augment_n: int = 0,
) -> StepSamples:
    """Sample and score one step's groups (module docstring). `max_response_tokens`: the length DAPO's overlong
    shaping measures against (default `params.max_new_tokens`; a multi-turn run's `rollout.max_total_tokens`).
    `augment` (rollout-time augmentation, NoisyRollout): `augment_n` of each group's G completions are sampled on
    `augment(chunk)` (the prompts with perturbed images) and join the group; the update sees the clean prompts."""
    want = None
    drawn_parts: list[tuple[Rollout, Scores, torch.Tensor]] = []
    kept_parts: list[tuple[Rollout, Scores, torch.Tensor]] = []
    kept = 0
    rounds = 1 + (algo.max_resample_rounds if algo.filter_zero_variance else 0)
    timings = timings if timings is not None else {}
    for r in range(rounds):
        if r > 0 and not any_rank(kept < want, ctx):  # every rank is full
            break
        chunk = draw()
        want = want or len(chunk)
        if kept >= want:  # full already; drawn along with the ranks still sampling
            continue
        t0 = time.time()
        if augment is not None and augment_n > 0:
            clean = engine.generate(encode(chunk), replace(params, n=params.n - augment_n))
            noisy = engine.generate(encode(augment(chunk)), replace(params, n=augment_n))
            rollout = interleave_groups(clean, noisy, pad_id)
        else:
            rollout = engine.generate(encode(chunk), params)
        t1 = time.time()
        scores = scorer.score(rollout.texts, [s for s in chunk for _ in range(params.n)], trajectory_summaries(rollout))
        timings["rollout"] = timings.get("rollout", 0.0) + t1 - t0
        timings["reward"] = timings.get("reward", 0.0) + time.time() - t1
        shaping = torch.zeros_like(scores.totals)
        if algo.overlong_buffer > 0:  # DAPO soft overlong punishment, part of the reward the advantage sees
            shaping = overlong_penalty(rollout.lengths, max_response_tokens or params.max_new_tokens, algo.overlong_buffer,
                                       algo.overlong_penalty)
        drawn_parts.append((rollout, scores, shaping))
        groups = list(range(len(chunk)))
        if algo.filter_zero_variance:
            keep, _ = filter_groups(scores.totals + shaping, rollout.group_ids)
            groups = [g for g in groups if bool(keep[g * params.n])][: want - kept]
        if groups:
            rows = group_rows(groups, rollout.n)
            kept_parts.append((rollout.select_groups(groups), scores.select(rows), shaping[rows]))
            kept += len(groups)

    drawn = concat_rollouts([p[0] for p in drawn_parts], pad_id)
    drawn_scores = Scores.concat([p[1] for p in drawn_parts])
    drawn_shaping = torch.cat([p[2] for p in drawn_parts])
    train = train_scores = train_rewards = components = None
    if kept_parts:
        train = concat_rollouts([p[0] for p in kept_parts], pad_id)
        train_scores = Scores.concat([p[1] for p in kept_parts])
        shaping = torch.cat([p[2] for p in kept_parts])
        train_rewards = train_scores.totals + shaping
        if ADVANTAGE_ESTIMATORS.info(algo.advantage).get("per_component"):  # only an estimator that reads them
            components, _ = scorer.component_matrix(train_scores, [s for s in train.prompts.samples
                                                                   for _ in range(train.n)])
            if algo.overlong_buffer > 0:
                components = torch.cat([components, shaping.unsqueeze(1)], dim=1)
    return StepSamples(train, train_scores, train_rewards, drawn, drawn_scores, drawn_shaping,
                       groups_drawn=sum(len(p[0].prompts.samples) for p in drawn_parts), groups_kept=kept,
                       rounds=len(drawn_parts), train_components=components)

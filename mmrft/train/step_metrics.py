"""What one RL step reports about its rollouts: rewards, accuracy, lengths, the group filter; and the rollout dumps
`mmrft view` reads."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch

from mmrft.algorithms import filter_groups
from mmrft.rollout.engine import group_rows
from mmrft.rollout.multiturn import END_REASONS
from mmrft.track.rollouts import ROLLOUT_DIR, rollout_rows, write_rollouts
from mmrft.train.sampling import StepSamples


def rollout_metrics(samples: StepSamples) -> dict[str, float]:
    """What the policy did this step (every drawn completion), and what the group filter kept."""
    rollout, scores = samples.drawn, samples.drawn_scores
    lengths = rollout.lengths.float()
    out = {
        "reward/mean": float(scores.totals.mean()),
        "reward/std": float(scores.totals.std()) if len(scores.totals) > 1 else 0.0,
        "accuracy": float(scores.correct.mean()),
        "response_length/mean": float(lengths.mean()),
        "response_length/max": float(lengths.max()),
        "response_length/truncated": float(rollout.truncated.float().mean()),
        "reward/timeouts": float(scores.timeouts),
        "reward/overlong_penalty": float(samples.drawn_shaping.mean()),
        "filter/groups_drawn": float(samples.groups_drawn),
        "filter/flat_groups": flat_fraction(samples),
        "filter/groups_kept": float(samples.groups_kept),
        "filter/rounds": float(samples.rounds),
    }
    if rollout.trajectories is not None:
        out.update(trajectory_metrics([t for t in rollout.trajectories if t is not None]))
    for name, st in scores.judges.items():  # model-based rewards: requests sent, cache hits, gated out, failures
        out.update({f"judge/{name}/calls": float(st.calls), f"judge/{name}/cached": float(st.cached),
                    f"judge/{name}/skipped": float(st.skipped), f"judge/{name}/errors": float(st.errors),
                    f"judge/{name}/latency_s": st.latency_s})
    for name, vals in scores.components.items():
        finite = torch.tensor([v for v in vals if not math.isnan(v)])
        if len(finite):
            out[f"reward/{name}"] = float(finite.mean())
            out[f"reward/{name}/std"] = float(finite.std()) if len(finite) > 1 else 0.0
    return out


def trajectory_metrics(trajectories: list) -> dict[str, float]:
    """Multi-turn rollouts: turns, tool calls (per tool, failed), images per trajectory, and the share of
    trajectories each end reason ended (`mmrft.rollout.multiturn.END_REASONS`)."""
    if not trajectories:
        return {}
    n = len(trajectories)
    calls = [c for t in trajectories for c in t.calls]
    out = {
        "trajectory/turns": sum(sum(x["role"] == "assistant" for x in t.turns) for t in trajectories) / n,
        "trajectory/tool_calls": len(calls) / n,
        "trajectory/failed_calls": sum(bool(c.get("error")) for c in calls) / n,
        "trajectory/images": sum(len(t.images) for t in trajectories) / n,
    }
    for name in sorted({str(c.get("name")) for c in calls}):
        out[f"trajectory/calls/{name}"] = sum(str(c.get("name")) == name for c in calls) / n
    for reason in END_REASONS:
        out[f"trajectory/end/{reason}"] = sum(t.end == reason for t in trajectories) / n
    return out


def flat_fraction(samples: StepSamples) -> float:
    """The share of drawn groups whose completions all got the same reward (shaping included): their advantages are
    zero whatever the filter does."""
    _, stats = filter_groups(samples.drawn_scores.totals + samples.drawn_shaping, samples.drawn.group_ids)
    return 1.0 - stats.groups_kept / max(stats.groups_seen, 1)


def dump_rollouts(run_dir: Path, step: int, samples: StepSamples, advantages: Optional[torch.Tensor]) -> None:
    """Every completion drawn this step (`mmrft.track.rollouts`), with the advantage (one per completion) of those
    trained on."""
    drawn = samples.drawn
    trained = {}
    if samples.train is not None and advantages is not None:
        adv = advantages.detach().cpu().tolist()
        n = samples.train.n
        trained = {s.id: [adv[i] for i in group_rows([g], n)] for g, s in enumerate(samples.train.prompts.samples)}
    rows = rollout_rows(step, drawn.prompts.samples, drawn.n, drawn.texts, samples.drawn_scores, drawn.truncated,
                        drawn.lengths, trained, run_dir / ROLLOUT_DIR / "images", drawn.trajectories)
    write_rollouts(run_dir, step, rows)

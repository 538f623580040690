"""PNG plots of a run's metrics (reward and held-out accuracy by step)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mmrft.track.metrics import read_metrics  # noqa: E402


def metric_series(rows: list[dict], phase: str, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of `key` in the metrics rows of `phase` ("train" / "eval") that have it."""
    pts = [(r["step"], r[key]) for r in rows if r.get("phase") == phase and r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def smoothed(values: list[float], k: int = 10) -> list[float]:
    """Trailing mean over the last `k` values (fewer at the start)."""
    out, acc = [], []
    for v in values:
        acc.append(v)
        acc = acc[-k:]
        out.append(sum(acc) / len(acc))
    return out


def plot_reward_accuracy(run_dir: str | Path, out: str | Path | None = None, title: str | None = None) -> Path:
    """Training reward (raw and smoothed) and held-out accuracy by RL step, written atomically as a PNG."""
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    out = Path(out) if out else run_dir / "reward_accuracy.png"
    fig, ax = plt.subplots(figsize=(8, 4.5))
    steps, reward = metric_series(rows, "train", "reward/mean")
    if steps:
        ax.plot(steps, reward, color="tab:blue", alpha=0.25, lw=1)
        ax.plot(steps, smoothed(reward), color="tab:blue", lw=2, label="train reward (mean, smoothed)")
    acc_steps, acc = metric_series(rows, "eval", "eval/accuracy")
    if acc_steps:
        ax.plot(acc_steps, acc, "o-", color="tab:red", lw=2, label="held-out accuracy (greedy)")
    ax.set_xlabel("RL step")
    ax.set_ylabel("reward / accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title or run_dir.name)
    fig.tight_layout()
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)
    return out

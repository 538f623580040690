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


def eval_split_names(rows: list[dict]) -> list[str]:
    """The held-out splits of a run logged with several (`data.eval: {name: path, ...}`: `eval/<split>/accuracy`),
    in the order first logged; [] for a single-split run (it logs `eval/accuracy`, and `eval/<task>/accuracy`)."""
    evals = [r for r in rows if r.get("phase") == "eval"]
    if any(r.get("eval/accuracy") is not None for r in evals):
        return []
    names: dict[str, None] = {}
    for r in evals:
        for k in r:
            parts = k.split("/")
            if len(parts) == 3 and parts[0] == "eval" and parts[2] == "accuracy":
                names.setdefault(parts[1])
    return list(names)


def accuracy_series(rows: list[dict]) -> list[tuple[str, list[int], list[float]]]:
    """Held-out accuracy by step: [(split name, steps, values)], one per split of a multi-split run, else the one
    series of `eval/accuracy` under the name "" (empty when none was logged)."""
    splits = eval_split_names(rows)
    if not splits:
        steps, vals = metric_series(rows, "eval", "eval/accuracy")
        return [("", steps, vals)] if steps else []
    return [(name, *metric_series(rows, "eval", f"eval/{name}/accuracy")) for name in splits]


def smoothed(values: list[float], k: int = 10) -> list[float]:
    """Trailing mean over the last `k` values (fewer at the start)."""
    out, acc = [], []
    for v in values:
        acc.append(v)
        acc = acc[-k:]
        out.append(sum(acc) / len(acc))
    return out


def plot_reward_accuracy(run_dir: str | Path, out: str | Path | None = None, title: str | None = None) -> Path:
    """Training reward (raw and smoothed) and held-out accuracy by RL step (a line per held-out split), written
    atomically as a PNG."""
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "reward_accuracy.png"
    fig = draw_reward_accuracy(read_metrics(run_dir), title or run_dir.name)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)
    return out


SPLIT_COLOURS = ("tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def draw_reward_accuracy(rows: list[dict], title: str):
    """The figure of `plot_reward_accuracy` (open; the caller saves and closes it)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    steps, reward = metric_series(rows, "train", "reward/mean")
    if steps:
        ax.plot(steps, reward, color="tab:blue", alpha=0.25, lw=1)
        ax.plot(steps, smoothed(reward), color="tab:blue", lw=2, label="train reward (mean, smoothed)")
    for i, (split, acc_steps, acc) in enumerate(accuracy_series(rows)):
        label = f"held-out accuracy: {split} (greedy)" if split else "held-out accuracy (greedy)"
        ax.plot(acc_steps, acc, "o-", color=SPLIT_COLOURS[i % len(SPLIT_COLOURS)], lw=2, label=label)
    ax.set_xlabel("RL step")
    ax.set_ylabel("reward / accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    return fig

"""`mmrft report RUN [RUN ...]`: a panel of training curves (overlaying several runs) and a Markdown summary.

Panels: train reward and held-out accuracy, response length, KL, entropy, clip fraction, by step. A panel whose
metric no run logged is left out (a run without KL logs no KL). A run evaluated on several held-out splits
(`data.eval: {id: ..., ood: ...}`) draws a held-out accuracy line per split, in-distribution and out-of-distribution
side by side, and its summary lists each split's first and last accuracy.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional, Sequence

from mmrft import atomic
from mmrft.errors import MmrftError
from mmrft.report.plots import accuracy_series, eval_split_names, metric_series, smoothed, plt
from mmrft.track.metrics import read_metrics

HELD_OUT = "held-out accuracy"  # the panel drawn from `accuracy_series`: a line per held-out split
LINESTYLES = ("o-", "s--", "^:", "D-.", "v-", "P--")
# (title, [(phase, metric key, label)]); the first key a run logged is drawn
PANELS: list[tuple[str, list[tuple[str, str, str]]]] = [
    ("reward", [("train", "reward/mean", "train reward")]),
    (HELD_OUT, [("eval", "eval/accuracy", "held-out accuracy")]),
    ("response length", [("train", "response_length/mean", "mean tokens")]),
    ("KL to reference", [("train", "actor/kl", "KL (loss term)"), ("train", "kl/in_reward", "KL (in reward)")]),
    ("entropy", [("train", "actor/entropy", "token entropy")]),
    ("clip fraction", [("train", "actor/clip_frac", "clipped tokens")]),
]
SUMMARY_KEYS = [("train", "reward/mean"), ("train", "accuracy"), ("eval", "eval/accuracy"),
                ("train", "response_length/mean"), ("train", "response_length/truncated"), ("train", "actor/kl"),
                ("train", "actor/entropy"), ("train", "actor/clip_frac"), ("train", "time/step")]


def _run_rows(run: Path) -> list[dict]:
    if not (Path(run) / "metrics.jsonl").is_file():
        raise MmrftError(f"{run}: no metrics.jsonl (is this a run directory of `mmrft train`?)")
    return read_metrics(run)


def _has_panel(title: str, keys, data: dict[str, list[dict]]) -> bool:
    if title == HELD_OUT:
        return any(accuracy_series(rows) for rows in data.values())
    return any(metric_series(rows, ph, k)[0] for rows in data.values() for ph, k, _ in keys)


def plot_report(runs: Sequence[Path], out: Path) -> Path:
    """All panels in one PNG, each run in its own colour; written atomically."""
    fig = draw_report(runs)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out)
    return out


def _held_out_lines(ax, data: dict[str, list[dict]], colours: list[str]) -> None:
    """Held-out accuracy: a line per run and split. One run: a colour per split; several: the run's colour, a line
    style per split."""
    for i, (name, rows) in enumerate(data.items()):
        for j, (split, steps, vals) in enumerate(accuracy_series(rows)):
            label = split or "held-out accuracy"
            if len(data) > 1:
                label = f"{name}: {label}"
                colour, style = colours[i % len(colours)], LINESTYLES[j % len(LINESTYLES)]
            else:
                colour, style = colours[j % len(colours)], "o-"
            ax.plot(steps, vals, style, color=colour, lw=1.5, label=label)


def draw_report(runs: Sequence[Path]):
    """The figure of `plot_report` (open; the caller saves and closes it)."""
    data = {Path(r).name or str(r): _run_rows(Path(r)) for r in runs}
    panels = [(title, keys) for title, keys in PANELS if _has_panel(title, keys, data)]
    if not panels:
        raise MmrftError(f"{', '.join(map(str, runs))}: no metrics to plot yet")
    cols = 2
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(11, 3.2 * nrows), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, keys) in zip(axes.flat, panels):
        if title == HELD_OUT:
            _held_out_lines(ax, data, colours)
        for i, (name, rows) in enumerate(data.items() if title != HELD_OUT else ()):
            for phase, key, label in keys:
                steps, vals = metric_series(rows, phase, key)
                if not steps:
                    continue
                tag = f"{name}: {label}" if len(data) > 1 else label
                colour = colours[i % len(colours)]
                if phase == "eval":
                    ax.plot(steps, vals, "o-", color=colour, lw=1.5, label=tag)
                else:
                    ax.plot(steps, vals, color=colour, alpha=0.2, lw=1)
                    ax.plot(steps, smoothed(vals), color=colour, lw=1.8, label=tag)
                break
        ax.set_title(title)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def _stats(rows: list[dict], phase: str, key: str) -> Optional[tuple[float, float, float]]:
    """(first, last, mean of the last 10%) of a metric, or None when the run never logged it."""
    _, vals = metric_series(rows, phase, key)
    if not vals:
        return None
    tail = vals[-max(1, len(vals) // 10):]
    return vals[0], vals[-1], sum(tail) / len(tail)


def markdown_summary(runs: Sequence[Path], plot: Optional[Path] = None) -> str:
    lines = ["# Run report", ""]
    for run in runs:
        rows = _run_rows(Path(run))
        train = [r for r in rows if r.get("phase") == "train"]
        lines += [f"## {run}", "", f"{len(train)} RL steps logged.", "",
                  "| metric | first | last | mean of last 10% |", "|---|---|---|---|"]
        splits = eval_split_names(rows)
        keys = [(ph, k) for ph, k in SUMMARY_KEYS if not (splits and k == "eval/accuracy")]
        at = keys.index(("train", "response_length/mean"))  # the held-out splits where eval/accuracy would be
        keys[at:at] = [("eval", f"eval/{s}/accuracy") for s in splits]
        for phase, key in keys:
            st = _stats(rows, phase, key)
            if st is not None:
                lines.append(f"| {key} | {st[0]:.4g} | {st[1]:.4g} | {st[2]:.4g} |")
        lines.append("")
        if splits:
            lines += ["Held-out accuracy by split:", "", "| split | first | last | change |", "|---|---|---|---|"]
            for s in splits:
                st = _stats(rows, "eval", f"eval/{s}/accuracy")
                if st is not None:
                    lines.append(f"| {s} | {st[0]:.4g} | {st[1]:.4g} | {st[1] - st[0]:+.4g} |")
            lines.append("")
    if plot is not None:
        lines += [f"![training curves]({plot.name})", ""]
    return "\n".join(lines)


def write_report(runs: Sequence[str | Path], out_dir: Optional[str | Path] = None) -> tuple[Path, Path]:
    """`report.png` and `report.md` in `out_dir` (default: the first run's directory). Returns their paths."""
    runs = [Path(r) for r in runs]
    if not runs:
        raise MmrftError("mmrft report: name at least one run directory")
    out = Path(out_dir) if out_dir else runs[0]
    out.mkdir(parents=True, exist_ok=True)
    png = plot_report(runs, out / "report.png")
    md = atomic.write_text(out / "report.md", markdown_summary(runs, png))
    return png, md

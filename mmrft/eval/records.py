"""Per-item records of held-out evaluations, kept on disk, and gains read from them item by item.

A training run's evaluation of its held-out data (before RL, every `trainer.eval_every` steps, after) writes one
JSON line per item to `RUN/eval/held_out/step_<N>.jsonl` (with several `data.eval` splits,
`RUN/eval/held_out/<split>/step_<N>.jsonl`): the item's id, task, the answer written, the reference answer, its
reward, whether it was right, and for a multi-turn answer its trajectory (calls, turns, how it ended). Two
evaluations of the same items (step 0 and the last step, two runs, two seeds) can then be compared item by item:
`paired_gain` gives the accuracy difference with a paired bootstrap interval (`mmrft.eval.stats.paired_bootstrap`),
`pooled_gain` the same over several runs of the same items (seeds)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from mmrft import atomic
from mmrft.config import eval_split_prefix
from mmrft.errors import MmrftError
from mmrft.eval.stats import paired_bootstrap

RECORDS_DIR = Path("eval") / "held_out"
REQUIRED = ("id", "correct")


def records_path(run_dir: str | Path, step: int, split: str, splits: Mapping[str, str]) -> Path:
    """Where a run writes split `split`'s records of step `step`: `RUN/eval/held_out/step_<step>.jsonl` for the one
    split of `data.eval: PATH`, `RUN/eval/held_out/<split>/step_<step>.jsonl` for a split of a mapping (the rule of
    the metric names, `mmrft.config.eval_split_prefix`)."""
    sub = eval_split_prefix(split, splits).removeprefix("eval").strip("/")
    return Path(run_dir) / RECORDS_DIR / sub / f"step_{step}.jsonl"


def write_records(path: str | Path, records: Sequence[Mapping]) -> Path:
    """`records` as JSON lines, written whole or not at all (`mmrft.atomic`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic.write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records))


def keep_records(cfg, run_dir: str | Path, step: int, split: str, splits: Mapping[str, str],
                 records: Sequence[Mapping]) -> Path | None:
    """A run's evaluation of split `split` at `step`, written where `records_path` says, unless the config's
    `eval.keep_records` is off (then None)."""
    if not cfg.eval.keep_records:
        return None
    return write_records(records_path(run_dir, step, split, splits), records)


def read_records(path: str | Path) -> list[dict]:
    """The records of `path`; a line that is not a JSON object with an `id` and a `correct` is an error naming the
    file and line, and so is an id seen twice."""
    path = Path(path)
    if not path.is_file():
        raise MmrftError(f"{path}: no such records file (a held-out evaluation writes RUN/{RECORDS_DIR}/step_<N>.jsonl)")
    records, seen = [], set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise MmrftError(f"{path}:{n}: not JSON ({e.msg})") from None
        if not isinstance(rec, dict) or any(k not in rec for k in REQUIRED):
            raise MmrftError(f"{path}:{n}: expected an object with keys {', '.join(REQUIRED)}")
        if rec["id"] in seen:
            raise MmrftError(f"{path}:{n}: id {rec['id']!r} appears twice")
        seen.add(rec["id"])
        records.append(rec)
    return records


def _correct_by_id(records: Sequence[Mapping]) -> dict:
    return {r["id"]: float(bool(r["correct"])) for r in records}


def _gain(res) -> dict:
    return {"points": 100 * res.delta, "low": 100 * res.low, "high": 100 * res.high, "p_value": res.p_value,
            "n": res.n_items}


def paired_gain(a: Sequence[Mapping], b: Sequence[Mapping], *, seed: int = 0) -> dict:
    """Accuracy of records `b` minus that of records `a`, in points, paired by item id, with the 95 % percentile
    interval of a paired bootstrap over the items: {"points", "low", "high", "p_value", "n"}. The two must hold the
    same items (a ValueError otherwise): a gain over different items is not a paired one."""
    correct_a, correct_b = _correct_by_id(a), _correct_by_id(b)
    ids = sorted(correct_a, key=str)
    if sorted(correct_b, key=str) != ids:
        raise ValueError("paired_gain: the two evaluations scored different items")
    return _gain(paired_bootstrap([correct_a[i] for i in ids], [correct_b[i] for i in ids], seed=seed))


def pooled_gain(pairs: Sequence[tuple[Sequence[Mapping], Sequence[Mapping]]], *, seed: int = 0) -> dict:
    """The mean over runs (e.g. seeds) of `paired_gain`, each run's pair scored on the same items: with
    ``d_i = mean over runs of (b_i - a_i)``, the gain is ``mean_i d_i`` and the interval that of a paired bootstrap
    over the items of the per-item means (it counts the items' noise, not the runs' spread, which a handful of runs
    cannot estimate). Adds "runs": the number of pairs."""
    if not pairs:
        raise ValueError("pooled_gain: no runs to pool")
    first = sorted(_correct_by_id(pairs[0][0]), key=str)
    mean_a = dict.fromkeys(first, 0.0)
    mean_b = dict.fromkeys(first, 0.0)
    for k, (a, b) in enumerate(pairs):
        correct_a, correct_b = _correct_by_id(a), _correct_by_id(b)
        if sorted(correct_a, key=str) != first or sorted(correct_b, key=str) != first:
            raise ValueError(f"pooled_gain: run {k} scored other items than run 0; pooling needs the same items")
        for i in first:
            mean_a[i] += correct_a[i] / len(pairs)
            mean_b[i] += correct_b[i] / len(pairs)
    res = paired_bootstrap([mean_a[i] for i in first], [mean_b[i] for i in first], seed=seed)
    return {**_gain(res), "runs": len(pairs)}


def gain_line(label: str, gain: Mapping) -> str:
    """One line for a gain, e.g. 'SFT+GRPO - SFT: +9.0 points (95 % paired bootstrap interval +1.0 to +17.0, 200
    items)'; a pooled gain says over how many runs ('..., 200 items x 3 runs')."""
    runs = f" x {gain['runs']} runs" if gain.get("runs") else ""
    return (f"{label}: {gain['points']:+.1f} points (95 % paired bootstrap interval {gain['low']:+.1f} to "
            f"{gain['high']:+.1f}, {gain['n']} items{runs})")

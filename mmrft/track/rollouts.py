"""Rollout dumps: what the policy wrote at a step, one JSONL line per completion, for `mmrft view` and for reading.

`RUN/rollouts/step_000010.jsonl`, written atomically. Each line::

    {"step": 10, "group": 0, "index": 3, "sample_id": "count-d0-s1-000042", "task": "count",
     "prompt": "How many red circles are in the image?", "images": ["/abs/path/img.png"], "answer": "3",
     "completion": "<think>…</think><answer>3</answer>", "extracted": "3", "reward": 1.0,
     "components": {"count": 1.0}, "correct": true, "truncated": false, "length": 17,
     "kept": true, "advantage": 0.83}

A multi-turn trajectory adds ``"turns"``: ``[{"role": "assistant", "text": …}, {"role": "tool", "text": …,
"images": [path, …]}, …]`` (the images the tools returned, written as PNG to `RUN/rollouts/images/`),
``"calls"`` (name, arguments, error of each tool call) and ``"end"`` (why the trajectory ended); ``completion`` is
then its final answer.

`group` numbers the prompts of the step (all drawn groups, including those a filter dropped: `kept` false,
`advantage` null); `index` is the completion's place in its group. Images are referenced, not copied: paths as the
data gives them; an image embedded in the data (bytes) is written once to `RUN/rollouts/images/`. `advantage` is the
completion's scalar advantage (for token-level advantages, their mean over the completion's tokens).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Optional, Sequence

import torch

from mmrft import atomic
from mmrft.data.schema import Sample
from mmrft.rewards.extract import extract_answer
from mmrft.rewards.scoring import Scores
from mmrft.rollout.engine import group_rows

ROLLOUT_DIR = "rollouts"


def _image_refs(sample: Sample, image_dir: Path) -> list[Optional[str]]:
    out: list[Optional[str]] = []
    for ref in sample.images:
        if isinstance(ref, dict) and ref.get("bytes") is not None:
            data = ref["bytes"]
            path = image_dir / f"{hashlib.sha1(data).hexdigest()[:16]}.img"
            if not path.exists():
                image_dir.mkdir(parents=True, exist_ok=True)
                atomic.write_bytes(path, data)
            out.append(str(path))
        elif isinstance(ref, dict):
            out.append(ref.get("path"))
        else:
            out.append(str(ref))
    return out


def _png(image, image_dir: Path) -> str:
    """A returned image written once (by content) as PNG under `image_dir`; its path."""
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    data = buf.getvalue()
    path = image_dir / f"{hashlib.sha1(data).hexdigest()[:16]}.png"
    if not path.exists():
        image_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(path, data)
    return str(path)


def trajectory_fields(trajectory, image_dir: Path) -> dict:
    """The dump's view of a multi-turn trajectory (`mmrft.rollout.multiturn.Trajectory`)."""
    turns = [{"role": t["role"], "text": t.get("text", ""), **({"images": [_png(im, image_dir) for im in t["images"]]}
                                                               if t.get("images") else {})}
             for t in trajectory.turns]
    return {"turns": turns, "calls": trajectory.calls, "end": trajectory.end}


def _clean(x: float) -> Optional[float]:
    return float(x) if math.isfinite(float(x)) else None


def rollout_rows(
    step: int,
    samples: Sequence[Sample],
    n: int,
    texts: Sequence[str],
    scores: Scores,
    truncated: torch.Tensor,
    lengths: torch.Tensor,
    advantages: dict[str, list[float]],
    image_dir: Path,
    trajectories: Optional[list] = None,
) -> list[dict]:
    """One dict per completion of the `samples` groups (prompt-major, `n` each); `advantages` maps the sample id of
    each trained group to its completions' advantages."""
    rows = []
    for g, sample in enumerate(samples):
        images = _image_refs(sample, image_dir)
        adv = advantages.get(sample.id)
        for j, i in enumerate(group_rows([g], n)):
            rows.append({
                "step": step, "group": g, "index": j, "sample_id": sample.id, "task": sample.task,
                "prompt": sample.prompt, "images": images, "answer": sample.answer, "completion": texts[i],
                "extracted": extract_answer(texts[i]), "reward": _clean(scores.totals[i]),
                "components": {k: _clean(v[i]) for k, v in scores.components.items() if math.isfinite(v[i])},
                "correct": bool(scores.correct[i] > 0), "truncated": bool(truncated[i]), "length": int(lengths[i]),
                "kept": adv is not None, "advantage": None if adv is None else _clean(adv[j]),
                **(trajectory_fields(trajectories[i], image_dir) if trajectories and trajectories[i] else {}),
            })
    return rows


def write_rollouts(run_dir: Path, step: int, rows: list[dict]) -> Path:
    path = Path(run_dir) / ROLLOUT_DIR / f"step_{step:06d}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))
    return path


def read_rollouts(run_dir: Path) -> dict[int, list[dict]]:
    """Every dumped step of a run: step -> rows."""
    out = {}
    for path in sorted((Path(run_dir) / ROLLOUT_DIR).glob("step_*.jsonl")):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if rows:
            out[int(rows[0]["step"])] = rows
    return out

"""Rewards that read a multi-turn trajectory as well as its final answer.

In multi-turn runs (`rollout.tools` / `rollout.environment`) the scorer gives every reward the row's trajectory
record as ``sample["trajectory"]`` (`mmrft.rollout.multiturn.Trajectory.summary`: ``calls`` with each call's
``name``, ``arguments`` and ``error``, ``failed_calls``, ``images``, ``turns``, ``end``) and the name of the
sample's own grader as ``sample["task_reward"]``. Single-turn samples have neither, and these rewards give 0.

* ``tool_bonus`` — DeepEyes' conditional tool reward (Zheng et al. 2025, "DeepEyes: Incentivizing 'Thinking with
  Images' via Reinforcement Learning"): 1.0 when the trajectory made at least one successful tool call *and* its
  final answer is right by the sample's own grader (score >= 1); else 0.0. Conditioning on the answer rewards the
  calls that helped, not calls for their own sake. Give it a weight in ``rewards.weights`` beside ``task``.
* ``tool_failures`` — a penalty, minus the share of the trajectory's calls that failed (malformed, unknown tool, bad
  arguments, error, time-out): in [-1, 0], 0 without calls.
* ``zoom_iou`` — how well the trajectory looked where the answer is: the best IoU between a successful ``zoom_in``
  crop of the first image (its ``info["pixel_box"]``, pixels of the original image) and the sample's
  ``metadata["region"]`` (pixels; the ``zoom`` task writes it); 0 without such a call or region. A zoom with IoU >=
  ``USEFUL_ZOOM_IOU`` (0.5) is counted *useful* (`useful_zooms`), any other *wasted*.
"""

from __future__ import annotations

from mmrft.rewards.grounding import box_iou
from mmrft.rewards.registry import get_reward, register_reward

__all__ = ["USEFUL_ZOOM_IOU", "tool_bonus", "tool_failures", "useful_zooms", "zoom_ious", "zoom_iou"]

USEFUL_ZOOM_IOU = 0.5


def _calls(sample: dict) -> list[dict]:
    trajectory = sample.get("trajectory") if isinstance(sample, dict) else None
    calls = trajectory.get("calls") if isinstance(trajectory, dict) else None
    return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []


@register_reward("tool_bonus")
def tool_bonus(completion: str, sample: dict) -> float:
    """1.0 for a right final answer reached with at least one successful tool call, else 0.0."""
    if not any(c.get("error") is None for c in _calls(sample)):
        return 0.0
    grader = sample.get("task_reward")
    if not isinstance(grader, str) or grader == "tool_bonus":
        return 0.0
    return 1.0 if float(get_reward(grader)(completion, sample)) >= 1.0 - 1e-6 else 0.0


@register_reward("tool_failures")
def tool_failures(completion: str, sample: dict) -> float:
    """Minus the share of the trajectory's tool calls that failed (0 without calls)."""
    calls = _calls(sample)
    if not calls:
        return 0.0
    return -sum(c.get("error") is not None for c in calls) / len(calls)


def zoom_ious(sample: dict) -> list[float]:
    """IoU with `metadata["region"]` of each successful `zoom_in` crop of image 0, in call order ([] without a
    region)."""
    region = (sample.get("metadata") or {}).get("region") if isinstance(sample, dict) else None
    if not (isinstance(region, list) and len(region) == 4):
        return []
    out = []
    for c in _calls(sample):
        info = c.get("info") or {}
        box = info.get("pixel_box")
        if c.get("name") == "zoom_in" and c.get("error") is None and info.get("image_index", 0) == 0 and box:
            out.append(box_iou([float(v) for v in box], [float(v) for v in region]))
    return out


def useful_zooms(sample: dict) -> tuple[int, int]:
    """(useful, all) zoom_in calls on image 0 of a sample with a region: useful when IoU >= USEFUL_ZOOM_IOU."""
    ious = zoom_ious(sample)
    return sum(v >= USEFUL_ZOOM_IOU for v in ious), len(ious)


@register_reward("zoom_iou")
def zoom_iou(completion: str, sample: dict) -> float:
    """The best IoU of the trajectory's zoom_in crops with the sample's region (0 without either)."""
    return max(zoom_ious(sample), default=0.0)

"""Verifiable rewards: ``fn(completion: str, sample: dict) -> float``.

Built-in rewards (registered by name): ``format``, ``answer_format``, ``math``,
``exact``, ``numeric``, ``count``, ``choice``, ``iou``, ``detection``, ``ocr``,
``chart``, ``gui``, ``temporal_iou``, and the shaping penalties
``length_penalty`` and ``repetition_penalty``; for multi-turn trajectories ``tool_bonus`` and
``tool_failures``.  Look them up with
:func:`get_reward`, combine them with :func:`build_reward`, and grade batches
safely (time limits, worker isolation) with :class:`RewardRunner`.
"""

from mmrft.rewards.registry import REWARDS, get_reward, list_rewards, register_reward
from mmrft.rewards.compose import CompositeReward, build_reward
from mmrft.rewards.extract import extract_answer
from mmrft.rewards.format import answer_format_reward, format_reward, make_answer_format_reward, make_format_reward
from mmrft.rewards.numeric import count_reward, exact_reward, numeric_reward
from mmrft.rewards.math import math_reward
from mmrft.rewards.choice import choice_reward
from mmrft.rewards.grounding import box_iou, iou_reward
from mmrft.rewards.detection import detection_reward
from mmrft.rewards.ocr import ocr_reward
from mmrft.rewards.chart import chart_reward
from mmrft.rewards.gui import gui_reward
from mmrft.rewards.temporal import temporal_iou_reward
from mmrft.rewards.shaping import length_penalty, make_length_penalty, make_repetition_penalty, repetition_penalty
from mmrft.rewards.trajectory import tool_bonus, tool_failures
from mmrft.rewards.runner import RewardBatch, RewardRunner, RewardTimeout

__all__ = [
    "register_reward",
    "REWARDS",
    "get_reward",
    "list_rewards",
    "build_reward",
    "CompositeReward",
    "extract_answer",
    "make_format_reward",
    "make_answer_format_reward",
    "format_reward",
    "answer_format_reward",
    "exact_reward",
    "numeric_reward",
    "count_reward",
    "math_reward",
    "choice_reward",
    "iou_reward",
    "box_iou",
    "detection_reward",
    "ocr_reward",
    "chart_reward",
    "gui_reward",
    "temporal_iou_reward",
    "length_penalty",
    "repetition_penalty",
    "make_length_penalty",
    "make_repetition_penalty",
    "tool_bonus",
    "tool_failures",
    "RewardRunner",
    "RewardBatch",
    "RewardTimeout",
]

"""Verifiable rewards: ``fn(completion: str, sample: dict) -> float``.

Built-in rewards (registered by name): ``format``, ``answer_format``, ``math``,
``exact``, ``numeric``, ``count``, ``choice``, ``iou``.  Look them up with
:func:`get_reward`, combine them with :func:`build_reward`, and grade batches
safely (time limits, worker isolation) with :class:`RewardRunner`.
"""

from mmrft.rewards.registry import get_reward, list_rewards, register_reward
from mmrft.rewards.compose import CompositeReward, build_reward
from mmrft.rewards.extract import extract_answer
from mmrft.rewards.format import answer_format_reward, format_reward, make_answer_format_reward, make_format_reward
from mmrft.rewards.numeric import count_reward, exact_reward, numeric_reward
from mmrft.rewards.math import math_reward
from mmrft.rewards.choice import choice_reward
from mmrft.rewards.grounding import box_iou, iou_reward
from mmrft.rewards.runner import RewardBatch, RewardRunner, RewardTimeout

__all__ = [
    "register_reward",
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
    "RewardRunner",
    "RewardBatch",
    "RewardTimeout",
]

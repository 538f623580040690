"""Model-based rewards: generative judges (in process or over HTTP) and reward models. See `mmrft.judges.base`."""

from mmrft.judges.base import JUDGE_KINDS, Judge, JudgeRequest, JudgeResult, JudgeUnavailable

__all__ = ["JUDGE_KINDS", "Judge", "JudgeRequest", "JudgeResult", "JudgeUnavailable"]

"""Format rewards: did the model follow the ``<think>…</think><answer>…</answer>`` template?

* ``format`` — 1.0 when the completion is exactly one ``<think>…</think>``
  followed by exactly one ``<answer>…</answer>``, with only whitespace before,
  between and after, and a non-blank answer; else 0.0.  The think content may be
  empty.  Tags are case-sensitive.  Build variants with other tag names through
  :func:`make_format_reward`.
* ``answer_format`` — 1.0 when the completion contains exactly one
  ``<answer>`` and one ``</answer>`` (in that order) with non-blank content,
  anything else around it; else 0.0.

Both are plain substring counting (linear time, no regex backtracking).
"""

from __future__ import annotations

from typing import Callable

from mmrft.rewards.registry import register_reward

__all__ = ["make_format_reward", "make_answer_format_reward", "format_reward", "answer_format_reward"]


def _check_tag(tag: str) -> str:
    if not isinstance(tag, str) or not tag or any(c in tag for c in "<>/ \t\n"):
        raise ValueError(f"tag name must be a plain non-empty word, got {tag!r}")
    return tag


def make_format_reward(think_tag: str = "think", answer_tag: str = "answer") -> Callable[[str, dict], float]:
    """Strict ``<think_tag>…</think_tag><answer_tag>…</answer_tag>`` format reward (score 0.0 or 1.0)."""
    t_open, t_close = f"<{_check_tag(think_tag)}>", f"</{think_tag}>"
    a_open, a_close = f"<{_check_tag(answer_tag)}>", f"</{answer_tag}>"
    if think_tag == answer_tag:
        raise ValueError("think_tag and answer_tag must differ")

    def reward(completion: str, sample: dict) -> float:
        if not isinstance(completion, str):
            return 0.0
        text = completion.strip()
        for tag in (t_open, t_close, a_open, a_close):
            if text.count(tag) != 1:
                return 0.0
        if not (text.startswith(t_open) and text.endswith(a_close)):
            return 0.0
        t_end = text.find(t_close)
        a_start = text.find(a_open)
        if not (len(t_open) <= t_end < a_start):
            return 0.0
        if text[t_end + len(t_close) : a_start].strip():
            return 0.0  # text between </think> and <answer>
        answer = text[a_start + len(a_open) : len(text) - len(a_close)]
        return 1.0 if answer.strip() else 0.0

    reward.__name__ = reward.__qualname__ = f"format_reward_{think_tag}_{answer_tag}"
    return reward


def make_answer_format_reward(answer_tag: str = "answer") -> Callable[[str, dict], float]:
    """1.0 iff exactly one non-blank ``<answer_tag>…</answer_tag>`` block exists."""
    a_open, a_close = f"<{_check_tag(answer_tag)}>", f"</{answer_tag}>"

    def reward(completion: str, sample: dict) -> float:
        if not isinstance(completion, str):
            return 0.0
        if completion.count(a_open) != 1 or completion.count(a_close) != 1:
            return 0.0
        start, end = completion.find(a_open) + len(a_open), completion.find(a_close)
        return 1.0 if start <= end and completion[start:end].strip() else 0.0

    reward.__name__ = reward.__qualname__ = f"answer_format_reward_{answer_tag}"
    return reward


format_reward = register_reward("format")(make_format_reward())
answer_format_reward = register_reward("answer_format")(make_answer_format_reward())

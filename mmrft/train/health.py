"""Run-health warnings that a user would otherwise read off the curves too late."""

from __future__ import annotations

import logging

log = logging.getLogger("mmrft")


class FlatRewardWatch:
    """Warns when, for `patience` steps in a row, every group's completions scored alike (`filter/flat_groups` is
    1): group-relative advantages are then all zero and the policy stops changing. At the lowest reward this is a
    collapse that GRPO cannot leave by itself (e.g. a near-deterministic policy that stopped answering); at the
    highest, the task is solved at this sampling temperature. One warning per streak; `patience` 0 disables it."""

    def __init__(self, patience: int) -> None:
        self.patience, self.streak = patience, 0

    def update(self, step: int, metrics: dict[str, float]) -> bool:
        """Feed one step's combined metrics; True when the warning was given at this step."""
        flat = metrics.get("filter/flat_groups")
        self.streak = self.streak + 1 if flat is not None and flat >= 1.0 else 0
        if not self.patience or self.streak != self.patience:
            return False
        log.warning(
            "steps %d-%d: in every group all completions got the same reward (mean %.3f), so every advantage is 0 and "
            "the policy is not changing. If that is the lowest reward the policy has collapsed (see the rollout dumps, "
            "tracking.rollouts_every): resume from an earlier checkpoint with a lower trainer.lr, an entropy bonus "
            "(algorithm.entropy_coef), a KL (algorithm.kl_coef) or a higher rollout.temperature; if it is the highest, "
            "the task is solved at this temperature (harder data, or DAPO's filter, algorithm.name=dapo)",
            step - self.patience + 1, step, metrics.get("reward/mean", float("nan")))
        return True

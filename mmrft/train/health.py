"""Run-health warnings that a user would otherwise read off the curves too late."""

from __future__ import annotations

import logging

log = logging.getLogger("mmrft")


class FlatRewardWatch:
    """Speaks up when, for `patience` steps in a row, every group's completions scored alike (`filter/flat_groups`
    is 1): group-relative advantages are then all zero and the policy stops changing. With every completion correct
    the task is solved at this sampling temperature (an info line); otherwise this is most likely a collapse that
    GRPO cannot leave by itself, e.g. a near-deterministic policy that stopped answering (a warning). Once per
    streak; `patience` 0 disables it."""

    def __init__(self, patience: int) -> None:
        self.patience, self.streak = patience, 0

    def update(self, step: int, metrics: dict[str, float]) -> bool:
        """Feed one step's combined metrics; True when the warning was given at this step."""
        flat = metrics.get("filter/flat_groups")
        self.streak = self.streak + 1 if flat is not None and flat >= 1.0 else 0
        if not self.patience or self.streak != self.patience:
            return False
        steps = f"steps {step - self.patience + 1}-{step}"
        mean, acc = metrics.get("reward/mean", float("nan")), metrics.get("accuracy")
        if acc is not None and acc >= 1.0:
            log.info("%s: every completion was correct (mean reward %.3f), so every advantage is 0: the task is solved "
                     "at this temperature; harder data or DAPO's filter (algorithm.name=dapo) keeps learning going",
                     steps, mean)
            return True
        log.warning(
            "%s: in every group all completions got the same reward (mean %.3f%s), so every advantage is 0 and the "
            "policy is not changing. If no completion is right the policy has collapsed (see the rollout dumps, "
            "tracking.rollouts_every): resume from an earlier checkpoint with a lower trainer.lr, an entropy bonus "
            "(algorithm.entropy_coef), a KL (algorithm.kl_coef) or a higher rollout.temperature",
            steps, mean, "" if acc is None else f", accuracy {acc:.3f}")
        return True

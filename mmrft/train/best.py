"""`trainer.save_best`: keep the model of the best held-out evaluation beside the final one.

Checkpoint selection on a validation split, as `transformers.Trainer`'s `load_best_model_at_end` does it: every
evaluation of the run's first held-out split (before RL at step 0, every `trainer.eval_every` steps, after the last
step) whose accuracy is above every earlier one saves the policy, the way `final` is saved (`from_pretrained`
loads it; LoRA merged), to RUN/best, with RUN/best/best.json saying at which step and accuracy. A tie keeps the
earlier, less trained model. The record is part of the resumable checkpoint, so a resumed run keeps the same best.

Select on a validation split and report on another: the best of several evaluations on one split over-states what
the model does on fresh items.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from mmrft.train.state import save_model

BEST_DIR = "best"
RECORD = "best.json"


@dataclass
class BestEvaluation:
    """The best held-out accuracy so far and the step that reached it (None before any evaluation)."""

    step: Optional[int] = None
    accuracy: float = -math.inf

    def improves(self, accuracy: Optional[float]) -> bool:
        return accuracy is not None and accuracy > self.accuracy

    def record(self, step: int, accuracy: float) -> None:
        self.step, self.accuracy = step, accuracy

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "accuracy": None if self.step is None else self.accuracy}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.accuracy = -math.inf if state["accuracy"] is None else float(state["accuracy"])


def save_best(weights, processor, run_dir: Path, best: BestEvaluation) -> Path:
    """Write the model of `best` to RUN/best (replacing the previous best in one rename) with its record."""
    return save_model(weights, processor, Path(run_dir) / BEST_DIR,
                      extra_files={RECORD: json.dumps(best.state_dict(), indent=1) + "\n"})


def read_best(run_dir: Path) -> Optional[dict[str, Any]]:
    """RUN/best's record, {"step", "accuracy", "checkpoint"}; None when the run saved no best model."""
    path = Path(run_dir) / BEST_DIR
    if not (path / RECORD).is_file():
        return None
    return {**json.loads((path / RECORD).read_text()), "checkpoint": str(path)}


__all__ = ["BestEvaluation", "save_best", "read_best"]

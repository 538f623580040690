"""Training-health alarms: signals in each step's metrics that a run is degenerating, a warning that says what to
try, and an optional stop.

`HealthMonitor` is fed every step's combined metrics (`update`) and every held-out evaluation (`update_eval`). Each
alarm is a small class with one threshold-driven rule; it fires once per streak (it must clear before it fires
again) and its state is logged every step as `health/<name>` (1 while the condition holds, else 0). Alarms named in
`health.stop` ask the run to stop cleanly (the step's checkpoint is written, as on SIGTERM). The thresholds live in
`mmrft.config.HealthConfig` (the `health:` section); 0 turns a rule off.

| alarm | fires when | usual cause |
|---|---|---|
| `entropy_collapse` | `actor/entropy` < `entropy_min` for `patience` steps | the policy became near-deterministic |
| `length_collapse` | mean response length < `length_min_ratio` x its mean over the first `baseline_steps` steps, for `patience` steps | the policy stopped reasoning |
| `length_explosion` | mean length > `length_max_ratio` x that baseline, or the truncated share > `truncated_max`, for `patience` steps | rambling, repetition loops |
| `format_gaming` | over the last `format_window` steps the `format` reward rose by >= `format_rise` while accuracy rose by < `accuracy_gain` | the format is learned, the task is not |
| `heldout_drop` | held-out accuracy fell >= `heldout_drop` below its best while the train reward is above what it was then | over-fitting or reward hacking |
| `kl_blowup` | `actor/kl` (to the reference) or `actor/approx_kl` (to the rollout policy) > `kl_max` for `patience` steps | updates too large |
| `clip_blowup` | `actor/clip_frac` > `clip_frac_max` for `patience` steps | updates too large |

`FlatRewardWatch` (every group's completions scored alike) predates these and keeps its own setting
(`trainer.flat_reward_warning_steps`).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Any, Optional

from mmrft.errors import ConfigError

log = logging.getLogger("mmrft")

__all__ = ["FlatRewardWatch", "HealthMonitor", "ALARM_NAMES"]


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


def _get(metrics: dict[str, float], key: str) -> Optional[float]:
    v = metrics.get(key)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


class _Streak:
    """A condition that must hold `patience` steps in a row; `fire` is true once per streak."""

    def __init__(self, patience: int) -> None:
        self.patience, self.count, self.fired = max(1, patience), 0, False

    def step(self, holds: bool) -> bool:
        if not holds:
            self.count, self.fired = 0, False
            return False
        self.count += 1
        if self.count >= self.patience and not self.fired:
            self.fired = True
            return True
        return False


class EntropyCollapse:
    name = "entropy_collapse"

    def __init__(self, cfg) -> None:
        self.min, self.streak = cfg.entropy_min, _Streak(cfg.patience)

    def check(self, step: int, m: dict[str, float]) -> tuple[bool, Optional[str]]:
        e = _get(m, "actor/entropy")
        holds = bool(self.min) and e is not None and e < self.min
        if self.streak.step(holds):
            return True, (f"policy entropy {e:.4f} nats/token has stayed below health.entropy_min={self.min} for "
                          f"{self.streak.patience} steps: the policy is near-deterministic and stops exploring. Try a "
                          "higher rollout.temperature, an entropy bonus (algorithm.entropy_coef), a lower trainer.lr, or "
                          "clip-higher (algorithm.clip_high=0.28) with algorithm.ppo_epochs or algorithm.minibatches "
                          ">= 2: with one on-policy update per rollout batch the ratio is 1 and no clip acts")
        return holds, None


class _Lengths:
    """Mean response length relative to its mean over the run's first `baseline_steps` steps."""

    def __init__(self, cfg) -> None:
        self.baseline_steps, self.seen = max(1, cfg.baseline_steps), []

    def ratio(self, m: dict[str, float]) -> Optional[float]:
        length = _get(m, "response_length/mean")
        if length is None:
            return None
        if len(self.seen) < self.baseline_steps:
            self.seen.append(length)
            return None
        base = sum(self.seen) / len(self.seen)
        return length / base if base > 0 else None


class LengthCollapse:
    name = "length_collapse"

    def __init__(self, cfg) -> None:
        self.min, self.streak = cfg.length_min_ratio, _Streak(cfg.patience)

    def check(self, step: int, m: dict[str, float], r: Optional[float]) -> tuple[bool, Optional[str]]:
        holds = bool(self.min) and r is not None and r < self.min
        if self.streak.step(holds):
            return True, (f"mean response length is {r:.2f}x its early mean (below health.length_min_ratio="
                          f"{self.min}) for {self.streak.patience} steps: the policy stopped reasoning. Look at the "
                          "rollouts (mmrft view); a length penalty or sequence-mean loss may pay short answers; try a "
                          "lower trainer.lr or loss_agg_mode=token-mean")
        return holds, None


class LengthExplosion:
    name = "length_explosion"

    def __init__(self, cfg) -> None:
        self.max, self.truncated_max = cfg.length_max_ratio, cfg.truncated_max
        self.streak = _Streak(cfg.patience)

    def check(self, step: int, m: dict[str, float], ratio: Optional[float]) -> tuple[bool, Optional[str]]:
        cut = _get(m, "response_length/truncated")
        long = bool(self.max) and ratio is not None and ratio > self.max
        cut_off = bool(self.truncated_max) and cut is not None and cut > self.truncated_max
        holds = long or cut_off
        if self.streak.step(holds):
            what = (f"mean response length is {ratio:.2f}x its early mean (health.length_max_ratio={self.max})"
                    if long else f"{100 * cut:.0f}% of completions hit rollout.max_new_tokens "
                                 f"(health.truncated_max={self.truncated_max})")
            return True, (f"{what} for {self.streak.patience} steps: the policy rambles or loops. Try DAPO's overlong "
                          "shaping (algorithm.overlong_buffer), a repetition penalty reward, a lower trainer.lr; "
                          "raise rollout.max_new_tokens only if right answers need the room")
        return holds, None


class FormatGaming:
    name = "format_gaming"

    def __init__(self, cfg) -> None:
        self.window, self.rise, self.gain = cfg.format_window, cfg.format_rise, cfg.accuracy_gain
        self.history: deque = deque(maxlen=max(2, cfg.format_window))
        self.fired = False

    def check(self, step: int, m: dict[str, float]) -> tuple[bool, Optional[str]]:
        fmt, acc = _get(m, "reward/format"), _get(m, "accuracy")
        if not self.window or fmt is None or acc is None:
            return False, None
        self.history.append((fmt, acc))
        if len(self.history) < self.window:
            return False, None
        half = self.window // 2
        first, last = list(self.history)[:half], list(self.history)[-half:]
        d_fmt = sum(f for f, _ in last) / half - sum(f for f, _ in first) / half
        d_acc = sum(a for _, a in last) / half - sum(a for _, a in first) / half
        holds = d_fmt >= self.rise and d_acc < self.gain
        if holds and not self.fired:
            self.fired = True
            return True, (f"over the last {self.window} steps the format reward rose by {d_fmt:.2f} while accuracy "
                          f"moved {d_acc:+.3f} (health.format_rise={self.rise}, health.accuracy_gain={self.gain}): "
                          "the policy is learning the format, not the task. Lower the format weight "
                          "(rewards.weights.format), check the task grader on the rollouts, or start from an SFT "
                          "checkpoint that already follows the format")
        self.fired = self.fired and holds
        return holds, None


class UpdateSize:
    """`kl_blowup` (a KL above `kl_max`) and `clip_blowup` (a clipped share above `clip_frac_max`)."""

    def __init__(self, name: str, keys: tuple[str, ...], limit: float, option: str, patience: int) -> None:
        self.name, self.keys, self.limit, self.option = name, keys, limit, option
        self.streak = _Streak(patience)

    def check(self, step: int, m: dict[str, float]) -> tuple[bool, Optional[str]]:
        values = [(k, _get(m, k)) for k in self.keys]
        over = [(k, v) for k, v in values if v is not None and self.limit and v > self.limit]
        if self.streak.step(bool(over)):
            k, v = over[0]
            return True, (f"{k} = {v:.4g} has stayed above health.{self.option}={self.limit} for "
                          f"{self.streak.patience} steps: each update moves the policy too far. Try a lower "
                          "trainer.lr, fewer updates per batch (algorithm.ppo_epochs), a larger algorithm.kl_coef or "
                          "a tighter clip (algorithm.clip_low / clip_high)")
        return bool(over), None


ALARM_NAMES = ("entropy_collapse", "length_collapse", "length_explosion", "format_gaming", "heldout_drop",
               "kl_blowup", "clip_blowup")


class HealthMonitor:
    """Every alarm of a run (see the module docstring); `cfg` is the `health:` section."""

    def __init__(self, cfg, verbose: bool = True) -> None:
        self.verbose = verbose  # False: decide the same, say nothing (the other ranks of a torchrun job)
        unknown = [n for n in cfg.stop if n not in ALARM_NAMES]
        if unknown:
            raise ConfigError(f"health.stop: unknown alarm(s) {unknown}; expected some of {list(ALARM_NAMES)}")
        self.cfg = cfg
        self.lengths = _Lengths(cfg)
        self.entropy = EntropyCollapse(cfg)
        self.collapse = LengthCollapse(cfg)
        self.explosion = LengthExplosion(cfg)
        self.gaming = FormatGaming(cfg)
        self.kl = UpdateSize("kl_blowup", ("actor/kl", "actor/approx_kl"), cfg.kl_max, "kl_max", cfg.patience)
        self.clip = UpdateSize("clip_blowup", ("actor/clip_frac",), cfg.clip_frac_max, "clip_frac_max", cfg.patience)
        # (held-out accuracy, train reward then: None for an evaluation before any step, e.g. the starting point's)
        self.best_eval: Optional[tuple[float, Optional[float]]] = None
        self.recent_reward: deque = deque(maxlen=max(1, cfg.baseline_steps))
        self.first_rewards: list[float] = []  # the first baseline_steps steps': what "rose" is measured from then
        self.heldout_fired = False
        self.fired: list[tuple[int, str, str]] = []  # (step, alarm, message), every alarm given
        self.stop_reason: Optional[str] = None

    def _fire(self, step: int, name: str, message: str) -> None:
        self.fired.append((step, name, message))
        if self.verbose:
            log.warning("step %d: health alarm %s: %s", step, name, message)
        if name in self.cfg.stop and self.stop_reason is None:
            self.stop_reason = f"health alarm {name} (health.stop)"
            if self.verbose:
                log.warning("step %d: stopping the run after this step (health.stop lists %s)", step, name)

    def update(self, step: int, metrics: dict[str, float]) -> dict[str, float]:
        """Feed one step's combined metrics; returns this step's `health/<alarm>` signals (1: the condition holds)."""
        reward = _get(metrics, "reward/mean")
        if reward is not None:
            self.recent_reward.append(reward)
            if len(self.first_rewards) < self.recent_reward.maxlen:
                self.first_rewards.append(reward)
        ratio = self.lengths.ratio(metrics)  # None while the baseline is being measured
        checks = [(a, a.check(step, metrics)) for a in (self.entropy, self.gaming, self.kl, self.clip)]
        checks += [(a, a.check(step, metrics, ratio)) for a in (self.collapse, self.explosion)]
        signals: dict[str, float] = {}
        for alarm, (holds, message) in checks:
            signals[f"health/{alarm.name}"] = float(holds)
            if message:
                self._fire(step, alarm.name, message)
        signals["health/heldout_drop"] = float(self.heldout_fired)
        return signals

    def update_eval(self, step: int, accuracy: Optional[float]) -> bool:
        """Feed a held-out evaluation's accuracy (the run's first split); True when `heldout_drop` fired now."""
        if accuracy is None or not self.cfg.heldout_drop:
            return False
        train = sum(self.recent_reward) / len(self.recent_reward) if self.recent_reward else None
        if self.best_eval is None or accuracy > self.best_eval[0]:
            self.best_eval = (accuracy, train)
            self.heldout_fired = False
            return False
        best, train_then = self.best_eval
        if train_then is None and self.first_rewards:  # best before any step: compare with the first steps' reward
            train_then = sum(self.first_rewards) / len(self.first_rewards)
        holds = (accuracy <= best - self.cfg.heldout_drop and train is not None and train_then is not None
                 and train > train_then)
        if holds and not self.heldout_fired:
            self.heldout_fired = True
            self._fire(step, "heldout_drop", (
                f"held-out accuracy {accuracy:.3f} is {best - accuracy:.3f} below its best {best:.3f} "
                f"(health.heldout_drop={self.cfg.heldout_drop}) while the train reward rose ({train_then:.3f} -> "
                f"{train:.3f}): over-fitting or reward hacking. Compare the rollouts (mmrft view), add a KL "
                "(algorithm.kl_coef), use more or fresher training data, or keep the model of the best "
                "evaluation (trainer.save_best=true)"))
            return True
        self.heldout_fired = self.heldout_fired and holds
        return False

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps (JSON-able) so that a resumed run logs the `health/*` signals and raises the alarms
        the uninterrupted run would: the length baseline, each streak, the format window, the best evaluation, the
        recent rewards, the alarms given. A pending stop is not kept (the resumed run goes on)."""
        return {"lengths": list(self.lengths.seen),
                "streaks": {a.name: [a.streak.count, a.streak.fired] for a in self._streak_alarms()},
                "format": {"history": [list(x) for x in self.gaming.history], "fired": self.gaming.fired},
                "best_eval": list(self.best_eval) if self.best_eval is not None else None,
                "recent_reward": list(self.recent_reward), "first_rewards": list(self.first_rewards),
                "heldout_fired": self.heldout_fired,
                "fired": [list(x) for x in self.fired]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lengths.seen = [float(x) for x in state["lengths"]]
        for alarm in self._streak_alarms():
            alarm.streak.count, alarm.streak.fired = state["streaks"][alarm.name]
        self.gaming.history.clear()
        self.gaming.history.extend(tuple(x) for x in state["format"]["history"])
        self.gaming.fired = state["format"]["fired"]
        best = state["best_eval"]  # checkpoints before first_rewards wrote -inf for "no train reward yet"
        self.best_eval = (best[0], None if best[1] in (None, -math.inf) else best[1]) if best is not None else None
        self.first_rewards = [float(x) for x in state.get("first_rewards", [])]
        self.recent_reward.clear()
        self.recent_reward.extend(state["recent_reward"])
        self.heldout_fired = state["heldout_fired"]
        self.fired = [tuple(x) for x in state["fired"]]

    def _streak_alarms(self) -> tuple:
        return (self.entropy, self.collapse, self.explosion, self.kl, self.clip)

    def state(self) -> dict[str, Any]:
        return {"fired": [{"step": s, "alarm": n, "message": msg} for s, n, msg in self.fired],
                "stop_reason": self.stop_reason}

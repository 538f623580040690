"""Training-health alarms on hand-made metric sequences: each fires at the step its rule says, once per streak, with
what to try in its message; `health.stop` asks for a stop; thresholds of 0 turn a rule off. The runs driven into
alarms are in tests/e2e/test_health_runs.py."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from mmrft.config import HealthConfig
from mmrft.errors import ConfigError
from mmrft.train.health import ALARM_NAMES, HealthMonitor


def feed(monitor: HealthMonitor, rows: list[dict]) -> list[dict]:
    return [monitor.update(step, row) for step, row in enumerate(rows, start=1)]


def fired(monitor: HealthMonitor) -> list[tuple[int, str]]:
    return [(s, n) for s, n, _ in monitor.fired]


def cfg(**kw) -> HealthConfig:
    return dataclasses.replace(HealthConfig(), **kw)


def test_entropy_collapse_after_patience_steps_once_per_streak(caplog):
    m = HealthMonitor(cfg(entropy_min=0.1, patience=3))
    entropies = [1.0, 0.05, 0.05, 0.05, 0.05, 0.5, 0.02, 0.02, 0.02]
    with caplog.at_level(logging.WARNING, "mmrft"):
        signals = feed(m, [{"actor/entropy": e} for e in entropies])
    assert fired(m) == [(4, "entropy_collapse"), (9, "entropy_collapse")]
    assert [s["health/entropy_collapse"] for s in signals] == [0, 1, 1, 1, 1, 0, 1, 1, 1]
    assert "rollout.temperature" in m.fired[0][2] and "step 4: health alarm entropy_collapse" in caplog.text
    # clip-higher is void on-policy: advised only with more than one optimizer step per rollout batch
    assert "clip_high=0.28) with algorithm.ppo_epochs or algorithm.minibatches >= 2" in m.fired[0][2]


def test_length_collapse_and_explosion_against_the_early_mean():
    m = HealthMonitor(cfg(baseline_steps=2, length_min_ratio=0.5, length_max_ratio=2.0, truncated_max=0.0,
                          patience=2))
    lengths = [100, 120, 80, 50, 50, 40, 110, 250, 260]  # baseline 110: collapse below 55, explosion above 220
    signals = feed(m, [{"response_length/mean": x} for x in lengths])
    assert fired(m) == [(5, "length_collapse"), (9, "length_explosion")]
    assert [s["health/length_collapse"] for s in signals] == [0, 0, 0, 1, 1, 1, 0, 0, 0]
    assert [s["health/length_explosion"] for s in signals] == [0, 0, 0, 0, 0, 0, 0, 1, 1]


def test_truncation_counts_as_explosion():
    m = HealthMonitor(cfg(baseline_steps=1, length_max_ratio=0.0, truncated_max=0.5, patience=1))
    feed(m, [{"response_length/mean": 30, "response_length/truncated": t} for t in (0.0, 0.2, 0.75)])
    assert fired(m) == [(3, "length_explosion")] and "75% of completions hit rollout.max_new_tokens" in m.fired[0][2]


def test_format_gaming_needs_format_up_and_accuracy_flat():
    m = HealthMonitor(cfg(format_window=4, format_rise=0.3, accuracy_gain=0.05))
    rows = [(0.1, 0.2), (0.2, 0.2), (0.6, 0.21), (0.8, 0.2), (0.9, 0.2)]
    feed(m, [{"reward/format": f, "accuracy": a} for f, a in rows])
    # at step 4: format 0.15 -> 0.7 (+0.55), accuracy 0.2 -> 0.205 (+0.005): gaming
    assert fired(m) == [(4, "format_gaming")] and "rewards.weights.format" in m.fired[0][2]
    honest = HealthMonitor(cfg(format_window=4, format_rise=0.3, accuracy_gain=0.05))
    feed(honest, [{"reward/format": f, "accuracy": a} for f, a in [(0.1, 0.1), (0.2, 0.1), (0.6, 0.3), (0.8, 0.4)]])
    assert fired(honest) == []  # accuracy rose with the format


def test_kl_and_clip_blowups():
    m = HealthMonitor(cfg(kl_max=0.5, clip_frac_max=0.4, patience=2))
    rows = [{"actor/approx_kl": 0.1, "actor/clip_frac": 0.1}, {"actor/approx_kl": 0.7, "actor/clip_frac": 0.5},
            {"actor/kl": 0.9, "actor/approx_kl": 0.2, "actor/clip_frac": 0.45}, {"actor/clip_frac": 0.1}]
    feed(m, rows)
    assert fired(m) == [(3, "kl_blowup"), (3, "clip_blowup")]
    assert "actor/kl = 0.9" in m.fired[0][2] and "trainer.lr" in m.fired[1][2]


def test_heldout_drop_needs_train_reward_up_and_heldout_down():
    m = HealthMonitor(cfg(heldout_drop=0.1, baseline_steps=2))
    feed(m, [{"reward/mean": 0.2}, {"reward/mean": 0.2}])
    assert not m.update_eval(2, 0.5)  # best so far, train reward 0.2 then
    feed(m, [{"reward/mean": 0.6}, {"reward/mean": 0.7}])
    assert not m.update_eval(4, 0.45)  # down 0.05: under the threshold
    assert m.update_eval(6, 0.38)  # down 0.12 while the train reward went 0.2 -> 0.65
    assert fired(m) == [(6, "heldout_drop")] and "over-fitting or reward hacking" in m.fired[0][2]
    assert not m.update_eval(8, 0.3)  # still down: once per streak
    flat = HealthMonitor(cfg(heldout_drop=0.1))
    flat.update(1, {"reward/mean": 0.5})
    flat.update_eval(1, 0.5)
    flat.update(2, {"reward/mean": 0.4})
    assert not flat.update_eval(2, 0.3)  # held-out and train reward fell together: not this alarm


def test_heldout_drop_from_the_starting_point_compares_with_the_first_steps_reward():
    """The best evaluation is the step-0 one (no train reward yet): "rose" is measured from the first steps'."""
    m = HealthMonitor(cfg(heldout_drop=0.1, baseline_steps=2))
    assert not m.update_eval(0, 0.55)
    feed(m, [{"reward/mean": 0.5}, {"reward/mean": 0.5}, {"reward/mean": 0.5}])
    assert not m.update_eval(3, 0.40)  # down 0.15, but the train reward stayed at 0.5: not this alarm
    feed(m, [{"reward/mean": 0.7}, {"reward/mean": 0.8}])
    assert m.update_eval(5, 0.40)
    assert "(0.500 -> 0.750)" in m.fired[0][2] and "-inf" not in m.fired[0][2]
    again = HealthMonitor(cfg(heldout_drop=0.1, baseline_steps=2))  # the baseline survives a checkpoint
    again.load_state_dict(json.loads(json.dumps(m.state_dict())))
    assert again.first_rewards == [0.5, 0.5] and again.best_eval == (0.55, None)


def test_stop_and_off_switches():
    m = HealthMonitor(cfg(entropy_min=0.1, patience=1, stop=["entropy_collapse"]))
    feed(m, [{"actor/entropy": 0.5}])
    assert m.stop_reason is None
    feed(m, [{"actor/entropy": 0.01}])
    assert m.stop_reason == "health alarm entropy_collapse (health.stop)"
    off = HealthMonitor(cfg(entropy_min=0.0, length_min_ratio=0.0, length_max_ratio=0.0, truncated_max=0.0,
                            format_window=0, kl_max=0.0, clip_frac_max=0.0, heldout_drop=0.0, patience=1))
    feed(off, [{"actor/entropy": 0.0, "response_length/mean": 1e6, "actor/kl": 1e3, "actor/clip_frac": 1.0}] * 8)
    assert fired(off) == []
    with pytest.raises(ConfigError, match="health.stop: unknown alarm"):
        HealthMonitor(cfg(stop=["entropy"]))
    assert set(ALARM_NAMES) >= {"entropy_collapse", "format_gaming", "heldout_drop"}


def test_a_resumed_monitor_continues_as_the_uninterrupted_one():
    """The state a checkpoint keeps (through JSON, as in state.json): a monitor restored after step 4 gives the
    signals and alarms of one that never stopped. Started afresh, it would measure the length baseline again on the
    short answers and miss the collapse."""
    import json

    c = cfg(baseline_steps=3, length_min_ratio=0.5, patience=2, format_window=4, entropy_min=0.1)
    rows = [{"response_length/mean": n, "actor/entropy": e, "reward/format": f, "accuracy": 0.1, "reward/mean": r}
            for n, e, f, r in [(10, 1, 0, 0.1), (10, 0.05, 0.2, 0.2), (10, 0.05, 0.5, 0.2), (3, 0.05, 0.9, 0.3),
                               (3, 0.5, 1, 0.4), (2, 0.05, 1, 0.5), (2, 0.05, 1, 0.5)]]
    whole = HealthMonitor(c)
    signals = feed(whole, rows)
    first = HealthMonitor(c)
    feed(first, rows[:4])
    first.update_eval(4, 0.5)
    whole_eval = HealthMonitor(c)
    feed(whole_eval, rows[:4])
    whole_eval.update_eval(4, 0.5)
    resumed = HealthMonitor(c)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert resumed.state_dict() == first.state_dict()
    after = [resumed.update(step, row) for step, row in enumerate(rows[4:], start=5)]
    assert after == [whole_eval.update(step, row) for step, row in enumerate(rows[4:], start=5)]
    assert after == signals[4:] and any(s["health/length_collapse"] for s in after)
    assert fired(resumed) == fired(whole_eval)
    fresh = HealthMonitor(c)  # what a resumed run did before: the baseline measured on steps 5-7
    assert [fresh.update(step, row) for step, row in enumerate(rows[4:], start=5)] != after

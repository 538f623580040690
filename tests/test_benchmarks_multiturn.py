"""benchmarks/multiturn_step.py's bookkeeping, without running a model: the summary of child results, the ratios
between the runs present, the token-equality checks and the printed table (the runs themselves take minutes and
need TRL: `python benchmarks/multiturn_step.py`)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import multiturn_step as mt  # noqa: E402
from multiturn_step_mmrft import tool_segments  # noqa: E402


def fake_round(step_s: float, turns: float, images_in_loss=None, prompt=(1, 2, 3), tool_ids=(7, 8)) -> dict:
    steps = []
    for k, t in enumerate([step_s * 2, step_s, step_s * 1.1], start=1):
        steps.append({"step": k, "warmup": k == 1, "step_s": t, "interval_s": t, "rollout_s": t / 2,
                      "reward_s": 0.01, "prepare_s": 0.0, "update_s": t / 2, "reward_mean": 0.25,
                      "policy_tokens": 400, "response_tokens": 900, "turns": turns, "tool_calls": turns - 1,
                      "images": turns - 1, "failed_calls": 0.0, "images_in_loss_forward": images_in_loss})
    return {"steps": steps, "rusage_mb": {"self": 900.0, "children": 50.0}, "peak_tree_rss_mb": 1000.0,
            "startup_s": 3.0, "torch_threads": 2, "first_prompt_ids": list(prompt),
            "tool_turns": [{"text": "<tool_response>\nZoomed\n</tool_response>", "ids": list(tool_ids)}]}


def frameworks(**rounds) -> dict:
    return {fw.replace("_", "-"): {"summary": mt.summarise(r, 64), "same_prompts_as_expected": True, "rounds": r}
            for fw, r in rounds.items()}


def test_ratios_checks_and_table():
    fws = frameworks(mmrft=[fake_round(1.0, 2.0)], mmrft_prefill=[fake_round(1.25, 2.0)],
                     trl=[fake_round(2.0, 2.0)])
    s = fws["mmrft"]["summary"]
    assert s["step_s"]["median"] == pytest.approx(1.05) and s["step_s"]["n"] == 2  # the warm-up step left out
    assert s["per_trajectory"]["turns"] == 2.0 and s["policy_tokens_per_step"] == 400
    res = mt.compare(fws)
    assert res["mmrft_over_trl_compares"] == "mmrft"
    assert res["mmrft_over_trl_step_s"] == pytest.approx(1.05 / 2.1)
    assert res["continuation_over_prefill_step_s"] == pytest.approx(1.05 / (1.25 * 1.05))
    assert res["same_prompt_ids"] is True and res["same_tool_turn_ids"] is True
    assert "warning" not in res
    text = mt.table({"frameworks": fws, **res})
    assert "mmrft-prefill" in text and "target <= 0.5x" in text and "KV-cache continuation" in text


def test_unequal_work_is_flagged():
    fws = frameworks(mmrft=[fake_round(1.0, 3.0, tool_ids=(7, 9))], trl=[fake_round(2.0, 2.0, images_in_loss=False)])
    res = mt.compare(fws)
    assert res["same_tool_turn_ids"] is False
    assert "differ in turn count" in res["warning"] and "dropped the images" in res["warning"]


def test_one_framework_alone():
    fws = frameworks(mmrft_prefill=[fake_round(1.0, 2.0)])
    res = mt.compare(fws)
    assert "mmrft_over_trl_step_s" not in res
    assert "mmrft-prefill" in mt.table({"frameworks": fws, **res})


def test_tool_segments():
    assert tool_segments([1, 2, 3, 4, 5, 6], [1, 0, 0, 1, 0, 1]) == [[2, 3], [5]]
    assert tool_segments([1, 2], [1, 1]) == []

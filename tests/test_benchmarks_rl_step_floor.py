"""benchmarks/rl_step_floor.py (the bare model's floor of a GRPO step) runs one step in both variants on the tiny
model, and `rl_step.py` compares it with the other contenders (ratios, the same-input check, the table). The
figures themselves: `python benchmarks/rl_step.py --size tiny|small` (minutes)."""

import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import rl_step  # noqa: E402
import rl_step_floor  # noqa: E402


def run_floor(tmp_path, model, data, mode: str, order) -> dict:
    spec = {"model": str(model), "data": str(data), "prompts": 2, "group": 2, "max_new_tokens": 4,
            "temperature": 1.0, "lr": 1e-4, "threads": 1, "seed": 0, "warmup": 0, "steps": len(order),
            "order": order, "floor_mode": mode, "run_dir": str(tmp_path / mode)}
    spec_path, result_path = tmp_path / f"{mode}.spec.json", tmp_path / f"{mode}.result.json"
    spec_path.write_text(json.dumps(spec))
    # in this process (rl_step.py starts it as a subprocess; the imports would cost more than the step here)
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    try:
        assert rl_step_floor.main(str(spec_path), str(result_path)) == 0
    finally:
        torch.set_num_threads(threads)
        torch.set_rng_state(rng)
    return json.loads(result_path.read_text())


def test_floor_one_step_both_variants(tmp_path, tiny_model_dir, count_data):
    order = [[3, 5]]
    shared = run_floor(tmp_path, tiny_model_dir, count_data["train"], "shared", order)
    plain = run_floor(tmp_path, tiny_model_dir, count_data["train"], "plain", order)
    assert shared["framework"] == "floor" and plain["framework"] == "floor-plain"
    for res in (shared, plain):
        assert res["prompt_rows"] == order and res["torch_threads"] == 1
        assert res["first_prompt_ids"] and res["startup_s"] > 0 and res["rusage_mb"]["self"] > 0
        (step,) = res["steps"]
        assert step["warmup"] is False and step["interval_s"] is None and step["cpu_interval_s"] is None
        assert step["step_s"] >= step["rollout_s"] + step["update_s"] > 0
        assert step["reward_s"] == 0.0 and step["reward_mean"] is None
        assert 1 <= step["completion_length_max"] <= 4 and 4 <= step["tokens"] <= 16  # P*G = 4 rows, T = 4
        assert step["completion_length_mean"] == pytest.approx(step["tokens"] / 4)
    # same seed, same random draws: both variants sample the same completions and, prompt computed once or per
    # row, give the same loss (the shared path is exact)
    assert shared["first_prompt_ids"] == plain["first_prompt_ids"]
    assert shared["steps"][0]["tokens"] == plain["steps"][0]["tokens"]
    assert shared["steps"][0]["loss"] == pytest.approx(plain["steps"][0]["loss"], rel=1e-4, abs=1e-6)


def fake_round(step_s: float, tokens: int = 2000, ids=(1, 2, 3), reward=0.25) -> dict:
    steps = [{"step": k, "warmup": k == 1, "step_s": t, "interval_s": t, "cpu_interval_s": 2 * t,
              "rollout_s": t / 2, "reward_s": 0.0,
              "prepare_s": 0.0, "update_s": t / 2, "reward_mean": reward, "completion_length_mean": tokens / 64,
              "completion_length_max": 32, "tokens": tokens}
             for k, t in enumerate([step_s * 3, step_s, step_s], start=1)]
    return {"steps": steps, "rusage_mb": {"self": 800.0, "children": 0.0}, "peak_tree_rss_mb": 900.0,
            "startup_s": 2.0, "torch_threads": 2, "first_prompt_ids": list(ids)}


def test_compare_and_table():
    rounds = {"mmrft": [fake_round(1.2)], "trl": [fake_round(2.4)], "floor": [fake_round(1.0, reward=None)],
              "floor-plain": [fake_round(2.0, tokens=1000, reward=None)]}
    fws = {fw: {"summary": rl_step.summarise(r, 64), "same_prompts_as_expected": True, "rounds": r}
           for fw, r in rounds.items()}
    assert fws["floor"]["summary"]["reward_mean_measured"] is None
    res = rl_step.compare(fws)
    assert res["trl_over_mmrft_step_s"] == pytest.approx(2.0)
    assert res["mmrft_over_floor_step_s"] == pytest.approx(1.2) and res["mmrft_within_floor_target"] is True
    assert res["over_floor"]["trl"]["step_s"] == pytest.approx(2.4)
    assert res["over_floor"]["mmrft"]["cpu_interval_s"] == pytest.approx(1.2)
    assert res["over_floor_plain"]["mmrft"]["step_s"] == pytest.approx(0.6)
    assert res["over_floor_plain"]["mmrft"]["per_token"] == pytest.approx(0.3)  # twice the tokens in 0.6x the time
    assert res["floor_same_prompt_ids"] is True
    text = rl_step.table({"frameworks": fws, **res})
    assert "mmrft / floor: 1.20x per step" in text and "target <= 1.5x" in text and "floor-plain" in text

    fws["floor"]["rounds"][0]["first_prompt_ids"] = [9]
    assert rl_step.compare(fws)["floor_same_prompt_ids"] is False
    alone = {fw: fws[fw] for fw in ("mmrft", "floor")}
    assert "trl_over_mmrft_step_s" not in rl_step.compare(alone)

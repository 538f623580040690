"""benchmarks/demo_tools_seeds.py: finished demos are read back, not run again; each gain is pooled over the seeds
item by item (hand-computed on made-up demo directories; no model)."""

import importlib.util
import json
from pathlib import Path

import pytest

from mmrft.demo_tools import held_out_records
from mmrft.eval.records import write_records

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "demo_tools_seeds.py"


def load():
    spec = importlib.util.spec_from_file_location("demo_tools_seeds", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fake_demo(seed_dir: Path, correct: dict[str, list[int]]) -> None:
    """A finished tools demo: each recipe's answers on items i0, i1, ... and the demo_results.json it would write."""
    results = {}
    for recipe, marks in correct.items():
        write_records(held_out_records(seed_dir, recipe), [{"id": f"i{k}", "correct": bool(c)}
                                                           for k, c in enumerate(marks)])
        results[recipe] = {"per_task": {"zoom_named": {"accuracy": sum(marks) / len(marks), "n": len(marks)}}}
    acc = {r: 100 * sum(m) / len(m) for r, m in correct.items()}
    gains = {f"{a}->{b}": {"points": acc[b] - acc[a]} for a, b in (("tools_sft", "tools_grpo"),
                                                                    ("no_tools", "tools_grpo"))}
    (seed_dir / "demo_results.json").write_text(json.dumps(
        {"task": "zoom_named", "results": results, "gains": gains, "minutes": 24.0}))


def test_finished_demos_are_read_back_and_pooled(tmp_path):
    mod = load()
    # seed 0: (b) -> (c) gains item 0; seed 1: gains item 1, loses item 2. Per item mean gain (c) - (b):
    # (+0.5, +0.5, -0.5, 0) -> +12.5 points; (c) - (a): (a) is all wrong, (c) per item (1, 0.5, 0, 0) -> +37.5
    fake_demo(tmp_path / "seed_0", {"no_tools": [0, 0, 0, 0], "tools_sft": [0, 0, 0, 0],
                                    "tools_grpo": [1, 0, 0, 0]})
    fake_demo(tmp_path / "seed_1", {"no_tools": [0, 0, 0, 0], "tools_sft": [1, 0, 1, 0],
                                    "tools_grpo": [1, 1, 0, 0]})
    out = tmp_path / "seeds.json"
    assert mod.main(["--seeds", "0", "1", "--out", str(tmp_path), "--json", str(out)]) == 0  # runs no demo
    summary = json.loads(out.read_text())
    assert summary["seeds"] == [0, 1]
    assert summary["pooled"]["tools_sft->tools_grpo"]["points"] == pytest.approx(12.5)
    assert summary["pooled"]["no_tools->tools_grpo"]["points"] == pytest.approx(37.5)
    assert all(g["runs"] == 2 and g["n"] == 4 and g["low"] <= g["points"] <= g["high"]
               for g in summary["pooled"].values())
    assert summary["mean_accuracy"] == pytest.approx({"no_tools": 0.0, "tools_sft": 0.25, "tools_grpo": 0.375})
    assert summary["per_seed"]["1"]["gains"]["tools_sft->tools_grpo"]["points"] == pytest.approx(0.0)
    text = mod.report(mod.summarize({0: tmp_path / "seed_0", 1: tmp_path / "seed_1"}))
    assert "| mean | 0.0 % | 25.0 % | 37.5 % | +12.5 | +37.5 |" in text
    assert "mean over seeds 0, 1, (c) - (b): +12.5 points" in text and "4 items x 2 runs" in text


def test_a_demo_without_its_records_is_not_finished(tmp_path):
    mod = load()
    fake_demo(tmp_path, {"no_tools": [1], "tools_sft": [1], "tools_grpo": [1]})
    assert mod.finished(tmp_path)
    held_out_records(tmp_path, "tools_sft").unlink()  # a demo of before the records were kept: run it again
    assert not mod.finished(tmp_path)

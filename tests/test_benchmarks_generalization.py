"""benchmarks/generalization.py runs its whole path (`--quick`: tiny budgets, so the figures mean nothing): both arms
trained, every test split scored by both checkpoints, paired intervals in the JSON."""

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "generalization.py"


def test_generalization_quick(tmp_path):
    spec = importlib.util.spec_from_file_location("generalization", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "g.json"
    assert mod.main(["--quick", "--workdir", str(tmp_path / "work"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["splits"]) == set(mod.TEST_SPLITS)
    for s in result["splits"].values():
        assert s["n"] == 16 and 0 <= s["sft"] <= 1 and 0 <= s["sft_grpo"] <= 1
        assert s["ci95"][0] <= s["delta"] <= s["ci95"][1]
    rows = [json.loads(x) for x in (tmp_path / "work" / "grpo" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r.get("phase") == "eval"]
    assert {"eval/id/accuracy", "eval/compare/accuracy"} <= set(evals[0])  # the validation splits, side by side

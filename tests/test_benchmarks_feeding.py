"""benchmarks/feeding.py runs its whole path (`--quick`: tiny budgets, so the figures mean nothing): every arm from
one SFT checkpoint on equal completions, every test split scored, paired intervals against plain GRPO."""

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "feeding.py"


def test_feeding_quick(tmp_path):
    spec = importlib.util.spec_from_file_location("feeding", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "f.json"
    assert mod.main(["--quick", "--workdir", str(tmp_path / "work"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["arms"]) == set(mod.ARMS)
    assert len({a["completions"] for a in result["arms"].values()}) == 1  # equal budgets
    assert set(result["splits"]) == {*mod.TEST_SPLITS, "all"}
    for row in result["splits"].values():
        assert set(row["accuracy"]) == {"sft", *mod.ARMS}
        for cmp in row["vs_grpo"].values():
            assert cmp["ci95"][0] <= cmp["delta"] <= cmp["ci95"][1]
    pool = [json.loads(x) for x in (tmp_path / "work" / "data" / "pool" / "data.jsonl").read_text().splitlines()]
    assert [r["metadata"]["difficulty"] for r in pool[:6]] == [0, 1, 2, 0, 1, 2]
    assert all((tmp_path / "work" / "data" / "pool" / r["images"][0]).is_file() for r in pool)

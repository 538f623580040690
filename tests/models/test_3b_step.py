"""One LoRA GRPO step of the Qwen2.5-VL-3B-shaped model on the CPU (bf16, gradient checkpointing, frozen tower).

Slow (a few minutes and ~9 GB of memory; `make test-slow`): builds the 3.44 G-parameter model once under
benchmarks/results/plan_check/qwen2.5-vl-3b/ (reused by `benchmarks/plan_check.py`), runs one step in a fresh process
(one prompt with one image, G=2, 8 new tokens, LoRA r=8 on the decoder's attention) and writes its peak RSS and step
time to benchmarks/results/3b_step.json.
"""

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.mark.slow
def test_one_lora_grpo_step_of_the_3b_shape(monkeypatch):
    import plan_check

    monkeypatch.chdir(ROOT)
    res = plan_check.run_case("qwen2.5-vl-3b", baseline=0)
    m = res["measured"]
    (step,) = m["steps"]
    assert step["loss"] is not None and math.isfinite(step["loss"])
    assert m["lora_tensors"] > 0 and m["lora_changed"] > 0  # the update moved the adapter
    shape = res["plan"]["settings"]["shape"]
    assert (shape["layers"], shape["hidden"], shape["intermediate"]) == (36, 2048, 11008)
    assert 3.4e9 < shape["params"] < 3.5e9  # the published shapes with the tiny tokenizer's vocabulary
    out = ROOT / "benchmarks" / "results" / "3b_step.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "model": "Qwen2.5-VL-3B-Instruct shapes (random bf16 weights, tiny tokenizer)", "parameters": shape["params"],
        "settings": res["overrides"], "peak_rss_bytes": m["peak_rss_bytes"], "rss_after_load_bytes": m["rss_after_load_bytes"],
        "load_s": m["load_s"], "step_s": step["step_s"], "rollout_s": step["rollout_s"], "update_s": step["update_s"],
        "loss": step["loss"], "lora_tensors_changed": m["lora_changed"],
    }, indent=2))
    # bf16 weights (6.9 GB) + the runtime: more than the weights, far less than an fp32 copy on top
    assert 6.9e9 < m["peak_rss_bytes"] < 20e9

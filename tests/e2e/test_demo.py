"""Whole commands on the tiny model."""

import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

import mmrft  # noqa: F401


def test_demo_quick(tmp_path):
    """`mmrft demo --quick`: every stage runs and leaves its artefacts; the final model loads with from_pretrained."""
    out = tmp_path / "demo"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "mmrft.cli", "demo", "--quick", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "SFT acc" in r.stdout and "SFT+GRPO acc" in r.stdout
    assert "count" in r.stdout.split("SFT+GRPO acc")[1]
    results = json.loads((out / "demo_results.json").read_text())
    assert set(results["before"]) == {"count"} and results["after"]["count"]["n"] == 64
    rows = [json.loads(line) for line in (out / "grpo" / "metrics.jsonl").read_text().splitlines()]
    train_rows = [row for row in rows if row["phase"] == "train"]
    assert [row["step"] for row in train_rows] == [1, 2, 3]
    assert all(0.0 <= row["reward/mean"] <= 1.0 for row in train_rows)
    assert [row["step"] for row in rows if row["phase"] == "eval"] == [0, 3]
    # each evaluation's answers, item by item, and GRPO's gain read from them with its paired interval
    evals = {row["step"]: row for row in rows if row["phase"] == "eval"}
    for step in (0, 3):
        records = [json.loads(x) for x in (out / "grpo" / "eval" / "held_out" / f"step_{step}.jsonl").read_text()
                   .splitlines()]
        assert len(records) == 64 and len({r["id"] for r in records}) == 64
        assert sum(r["correct"] for r in records) / 64 == pytest.approx(evals[step]["eval/accuracy"])
    gain = results["gain"]
    delta = results["after"]["count"]["accuracy"] - results["before"]["count"]["accuracy"]
    assert gain["n"] == 64 and gain["points"] == pytest.approx(100 * delta)
    assert gain["low"] <= gain["points"] <= gain["high"]
    assert "SFT+GRPO - SFT: " in r.stdout and "paired bootstrap interval" in r.stdout
    assert (out / "grpo" / "reward_accuracy.png").stat().st_size > 10_000
    assert list((out / "grpo" / "tensorboard").glob("events.out.tfevents.*"))
    assert (out / "grpo" / "config.yaml").read_text().count("group_size: 8") == 1

    final = out / "grpo" / "final"
    model = AutoModelForImageTextToText.from_pretrained(final)
    proc = AutoProcessor.from_pretrained(final)
    sft = AutoModelForImageTextToText.from_pretrained(out / "sft" / "final")
    changed = any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), sft.state_dict().values()))
    assert changed, "three GRPO steps left the weights untouched"
    assert proc.tokenizer.convert_tokens_to_ids("<think>") != proc.tokenizer.unk_token_id


@pytest.mark.parametrize("modality", ["video", "audio", pytest.param("multi-image", marks=pytest.mark.slow)])
def test_demo_quick_other_modalities(tmp_path, modality):
    """`mmrft demo --modality M --quick`: the same five stages on that modality's task and model family."""
    from mmrft.demo import DEMOS, run_demo

    out = tmp_path / modality
    result = run_demo(out, quick=True, modality=modality)
    spec = DEMOS[modality]
    assert result["task"] == spec.task and result["arch"] == spec.arch
    assert set(result["before"]) == {spec.task} and result["after"][spec.task]["n"] == 64
    media = {"video": "videos", "audio": "audio", "multi-image": "images"}[modality]
    assert len(list((out / "data" / "test" / media).iterdir())) == 64 * (2 if modality == "multi-image" else 1)
    assert json.loads((out / "model" / "config.json").read_text())["model_type"] == spec.arch
    table = (out / "demo_table.txt").read_text()
    assert spec.task in table and "SFT+GRPO acc" in table


@pytest.mark.slow
def test_demo_quick_tools(tmp_path):
    """`mmrft demo --modality tools --quick`: the three recipes (no tools; SFT with tools; SFT+GRPO with tools) run
    on the zoom task and are scored on the held-out items with their tool calls and useful zooms."""
    from mmrft.demo import run_demo
    from mmrft.demo_tools import SPEC

    out = tmp_path / "tools"
    result = run_demo(out, quick=True, modality="tools")
    assert set(result["results"]) == {"no_tools", "tools_sft", "tools_grpo"}
    assert result["results"]["no_tools"]["calls_per_answer"] == 0.0
    task = result["task"]
    for key in ("tools_sft", "tools_grpo"):
        assert result["results"][key]["per_task"][task]["n"] == 32
    rows = [json.loads(x) for x in (out / "data" / "labelled-tools" / "data.jsonl").read_text().splitlines()]
    assert all(r["trajectory"][0]["content"].count("<tool_call>") == 1 for r in rows)
    # (a) and (c): the model of the best validation evaluation (steps 0 and 2 here), the last step's beside it
    for key, run_dir in (("no_tools", "no-tools-grpo"), ("tools_grpo", "tools-grpo")):
        r = result["results"][key]
        assert r["last_step"] == 2 and r["selected_step"] in (0, 2) and r["last_step_per_task"][task]["n"] == 32
        assert r["last_checkpoint"] == str(out / run_dir / "final")
        assert r["checkpoint"] == (r["last_checkpoint"] if r["selected_step"] == 2 else str(out / run_dir / "best"))
    assert "selected_step" not in result["results"]["tools_sft"]
    table = (out / "demo_table.txt").read_text()
    assert "(c) SFT+GRPO with tools" in table and "useful zooms" in table
    assert table.count("best on validation") == 2
    # GRPO's gain over (b), and (c)'s over (a), each paired over the 32 held-out items with its interval
    gains = result["gains"]
    assert set(gains) == {"tools_sft->tools_grpo", "no_tools->tools_grpo"}
    for pair, g in gains.items():
        a, b = (result["results"][k]["per_task"][task]["accuracy"] for k in pair.split("->"))
        assert g["n"] == 32 and g["points"] == pytest.approx(100 * (b - a)) and g["low"] <= g["points"] <= g["high"]
    assert table.count("paired bootstrap interval") == 2
    # each model's answers on the held-out items are kept, item by item
    for key, r in result["results"].items():
        kept = [json.loads(x) for x in (out / "held_out" / f"{key}.jsonl").read_text().splitlines()]
        assert r["records"] == str(out / "held_out" / f"{key}.jsonl") and len(kept) == 32
        assert sum(x["correct"] for x in kept) / 32 == pytest.approx(r["per_task"][task]["accuracy"])
    assert (out / "held_out" / "tools_grpo-last.jsonl").is_file()
    assert json.loads((out / "demo_results.json").read_text())["task"] == SPEC.task

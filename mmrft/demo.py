"""`mmrft demo`: the whole recipe on a laptop CPU — tiny Qwen2-VL, synthetic counting, SFT on few labels, then
GRPO on fresh scenes that a program checks, and a held-out table of SFT vs SFT+GRPO."""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

from mmrft.config import load_config
from mmrft.data.prompts import prompt_corpus
from mmrft.data.synthetic import task_corpus, write_dataset
from mmrft.models.tiny import make_tiny_model
from mmrft.report.plots import plot_reward_accuracy
from mmrft.report.table import comparison_table
from mmrft import atomic
from mmrft.train.rl import train_rl
from mmrft.train.sft import train_sft

# Data budget: SFT sees only the labelled set; RL sees fresh scenes and only the checker's verdict on its samples.
TASK = "count"
N_LABELLED, N_RL, N_TEST = 256, 4096, 200
SEEDS = {"labelled": 1, "rl": 2, "test": 3}


def config_path(name: str) -> str:
    return str(resources.files("mmrft.configs").joinpath(name))


def run_demo(out: str | Path = "runs/demo", quick: bool = False, overrides: list[str] | tuple = ()) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    print(f"[1/5] tiny Qwen2-VL with a locally trained tokenizer -> {out / 'model'}")
    model_dir = make_tiny_model(out / "model", corpus=task_corpus() + prompt_corpus(), overwrite=True)

    print(f"[2/5] synthetic '{TASK}' data: {N_LABELLED} labelled, {N_RL} for RL, {N_TEST} held out")
    data = {}
    for split, n in (("labelled", N_LABELLED), ("rl", N_RL), ("test", N_TEST)):
        n = min(n, 64) if quick else n
        data[split] = write_dataset(TASK, n, out / "data" / split, seed=SEEDS[split])

    quick_sft = ["sft.steps=5"] if quick else []
    quick_rl = ["trainer.steps=3", "trainer.eval_every=0"] if quick else []
    print("[3/5] SFT cold start on the labelled scenes")
    sft_cfg = load_config(config_path("demo_sft.yaml"), [
        f"model.path={model_dir}", f"data.train={data['labelled']}", f"trainer.output_dir={out / 'sft'}",
        "trainer.overwrite=true", *quick_sft,
    ])
    sft = train_sft(sft_cfg)

    print("[4/5] GRPO from the SFT checkpoint on fresh scenes (reward: the counting checker)")
    rl_cfg = load_config(config_path("demo_grpo.yaml"), [
        f"model.path={sft['checkpoint']}", f"data.train={data['rl']}", f"data.eval={data['test']}",
        f"trainer.output_dir={out / 'grpo'}", "trainer.overwrite=true", *quick_rl, *overrides,
    ])
    rl = train_rl(rl_cfg)
    rl["plot"] = str(plot_reward_accuracy(rl["run_dir"]))
    if rl["stopped_at"] is not None:
        print(f"GRPO stopped at step {rl['stopped_at']} (checkpoint in {rl['run_dir']}); no results table")
        return {"stopped_at": rl["stopped_at"], "run_dir": rl["run_dir"]}
    # The RL run evaluates its starting point (the SFT model) at step 0 with the same held-out set and decoding.
    before, after = rl["eval_before"], rl["eval_after"]

    print("[5/5] held-out results (greedy decoding)")
    table = comparison_table(before, after, "SFT", "SFT+GRPO")
    minutes = (time.time() - t0) / 60
    print(table)
    print(f"\nrun directory: {out}\nplot: {rl['plot']}\nfinal model: {rl['checkpoint']}\ntotal time: {minutes:.1f} min")
    result = {"before": before, "after": after, "minutes": minutes, "plot": rl["plot"], "checkpoint": rl["checkpoint"]}
    atomic.write_text(out / "demo_results.json", json.dumps(result, indent=2))
    atomic.write_text(out / "demo_table.txt", table + "\n")
    return result

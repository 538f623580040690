"""The command line: --help everywhere, and user errors end with one line and a non-zero exit, no traceback."""

import json
import os
import subprocess
import sys

import pytest

COMMANDS = ["make-tiny-model", "synth", "sft", "train", "demo", "plan"]


def run(*args, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "mmrft.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help(cmd):
    r = run(cmd, "--help")
    assert r.returncode == 0
    assert "usage: mmrft " + cmd in r.stdout


def _assert_one_line_error(r, *fragments):
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_bad_yaml_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("trainer:\n  stepz: 3\n")
    _assert_one_line_error(run("train", str(cfg)), "unknown key 'trainer.stepz'", "did you mean 'trainer.steps'")


def test_bad_model_path(tmp_path, count_data):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model:\n  path: {tmp_path / 'nope'}\ndata:\n  train: {count_data['train']}\n"
                   f"trainer:\n  output_dir: {tmp_path / 'run'}\n")
    _assert_one_line_error(run("sft", str(cfg)), "model.path", "nope")


def test_malformed_row(tmp_path, tiny_model_dir):
    data = tmp_path / "data.jsonl"
    rows = [{"id": "a", "prompt": "How many?", "answer": "3"}, {"id": "b", "prompt": "How many?"}]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model:\n  path: {tiny_model_dir}\ndata:\n  train: {data}\ntrainer:\n  output_dir: {tmp_path / 'run'}\n")
    _assert_one_line_error(run("sft", str(cfg)), "data.jsonl:2", "answer")


def test_unknown_task_and_missing_config(tmp_path):
    _assert_one_line_error(run("synth", "counting", "--n", "2", "--out", str(tmp_path / "d")), "counting", "count")
    _assert_one_line_error(run("train", str(tmp_path / "missing.yaml")), "config file not found")


def test_synth_writes_rows(tmp_path):
    r = run("synth", "count", "--n", "3", "--out", str(tmp_path / "d"), "--seed", "4")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (tmp_path / "d" / "data.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all((tmp_path / "d" / row["images"][0]).is_file() for row in rows)


def test_unknown_estimator_is_a_config_error(tmp_path, tiny_model_dir, count_data):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model:\n  path: {tiny_model_dir}\ndata:\n  train: {count_data['train']}\n"
                   f"algorithm:\n  advantage: grpoo\ntrainer:\n  output_dir: {tmp_path / 'run'}\n")
    _assert_one_line_error(run("train", str(cfg)), "algorithm.advantage", "grpoo", "dr_grpo")


def test_reward_registered_by_a_plugin_module_reaches_the_grading_worker(tmp_path, tiny_model_dir, count_data):
    """`imports:` names a module whose `@register_reward` entry the rewards use; with the default
    `rewards.workers=1` the reward runs in a worker process (a fresh interpreter), which must import that module
    too. Run in-process through the `mmrft train` entry point (the worker is a separate process either way)."""
    from mmrft.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"imports: [tests.train.plugin_rewards]\nmodel:\n  path: {tiny_model_dir}\ndata:\n  train: {count_data['train']}\n"
        "rewards:\n  weights: {plugin_shorter_is_better: 1.0}\n"
        "rollout:\n  group_size: 2\n  prompts_per_step: 2\n  max_new_tokens: 6\n"
        f"trainer:\n  steps: 1\n  progress: false\n  output_dir: {tmp_path / 'run'}\n")
    assert main(["train", str(cfg)]) == 0
    assert "workers" not in cfg.read_text()  # the default: one grading worker process
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [row for row in rows if row["phase"] == "train"]
    assert len(train) == 1
    # scored by the plugin (lengths differ, so the scores are negative and spread), not 0 for an unknown reward
    assert train[0]["reward/plugin_shorter_is_better"] < 0


def test_eval_takes_its_budget_and_dtype_from_a_run_config(tmp_path, tiny_model_dir, caplog):
    """`mmrft eval --config RUN.yaml` generates as that run's evaluations do (eval.max_new_tokens, else
    rollout.max_new_tokens; eval.batch_size; model.dtype); flags win over the config."""
    from mmrft.cli import main
    from mmrft.data.synthetic import write_dataset

    data = write_dataset("count", 3, tmp_path / "data", seed=5).parent
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model:\n  dtype: bfloat16\nrollout:\n  max_new_tokens: 7\neval:\n  batch_size: 2\n")
    common = ["eval", "--model", str(tiny_model_dir), "--benchmark", "synthetic", "--data", str(data), "--no-progress"]
    assert main([*common, "--config", str(cfg), "--out", str(tmp_path / "a")]) == 0
    meta = json.loads((tmp_path / "a" / "results.json").read_text())["meta"]
    assert (meta["max_new_tokens"], meta["dtype"]) == (7, "bfloat16")
    with caplog.at_level("WARNING", logger="mmrft.eval"):
        assert main([*common, "--config", str(cfg), "--dtype", "float32", "--max-new-tokens", "5",
                     "--out", str(tmp_path / "b")]) == 0
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    assert (results["meta"]["max_new_tokens"], results["meta"]["dtype"]) == (5, "float32")
    # a random tiny model does not stop within 5 tokens: the summary counts it and the command says so
    assert results["overall"]["truncated"] == 3
    assert "hit max_new_tokens=5" in caplog.text

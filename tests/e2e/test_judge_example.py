"""examples/grpo_judge.yaml runs: GRPO on counting scenes with the `count` rule and a generative judge served over
HTTP by a real `transformers serve` on localhost (`python -m mmrft.judges.serve`, the tiny model as the judge).
The judge's verdicts are noise (random weights); what is checked is the wiring: every step sends the judge its
requests, the reward carries its component, its calls and failures are in the metrics, the run finishes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmrft.config import load_config
from mmrft.data.synthetic import tokenizer_corpus, write_dataset
from mmrft.models.tiny import make_tiny_model
from mmrft.train.rl import train_rl
from tests.judges.conftest import free_port
from tests.judges.test_http_judge import get_json, stop

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "grpo_judge.yaml"


def test_grpo_with_a_served_judge(tmp_path):
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        pytest.skip("needs the serving extra: pip install 'transformers[serving]'")
    model = make_tiny_model(tmp_path / "model", corpus=tokenizer_corpus(), seed=0)
    data = write_dataset("count", 16, tmp_path / "data", seed=2)
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mmrft.judges.serve", str(model), "--host", "127.0.0.1",
                                 "--port", str(port), "--device", "cpu", "--dtype", "float32"],
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                get_json(url + "/models")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.25)
        cfg = load_config(EXAMPLE, [
            f"model.path={model}", f"data.train={data}", f"trainer.output_dir={tmp_path / 'run'}",
            "trainer.steps=2", "rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.max_new_tokens=8",
            f"rewards.judges.judge.url={url}", f"rewards.judges.judge.model={model}",
            "rewards.judges.judge.gate=always",  # a random policy never passes the format gate
            "rewards.judges.judge.max_tokens=4", "rewards.judges.judge.timeout_s=30", "trainer.progress=false"])
        train_rl(cfg)
    finally:
        stop(proc)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "judge/judge/calls" in r]
    assert len(steps) == 2
    for r in steps:
        # 8 completions a step, judged once per distinct (sample, answer); every verdict a number or a counted error
        assert 1 <= r["judge/judge/calls"] <= 8 and r["judge/judge/calls"] + r["judge/judge/cached"] == 8
        assert 0 <= r["judge/judge/errors"] <= 8 and r["judge/judge/latency_s"] > 0
        assert "reward/judge" in r and "reward/count" in r

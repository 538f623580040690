"""A GRPO run whose judge's server dies mid-run, comes back, then stalls, then replies garbage: the run goes on to
its last step, never hangs, counts every failed verdict in the step metrics, and uses the restarted server again;
with `rewards.on_error: raise` a failed verdict stops the run. The server is a real HTTP server in another process
(`tests/judges/_stall_server.py`, whose answers the test controls); the policy is the tiny model."""

from __future__ import annotations

import json
import threading
import time

import pytest

from mmrft.config import load_config
from mmrft.data.synthetic import tokenizer_corpus, write_dataset
from mmrft.models.tiny import make_tiny_model
from mmrft.rewards.scoring import RewardError
from mmrft.train.rl import train_rl
from tests.judges.test_http_judge import StallServer


# The operator below acts between steps; `hold`, a zero-weight rule reward (rule rewards run before the judges, here
# in process), keeps step n+1 from being scored until the operator has done what it does after step n.
ALLOWED = {"step": 1, "calls": 0}
PER_STEP = 8  # prompts_per_step x group_size
_cond = threading.Condition()


def hold(completion: str, sample: dict) -> float:
    with _cond:
        step = ALLOWED["calls"] // PER_STEP + 1
        ALLOWED["calls"] += 1
        _cond.wait_for(lambda: ALLOWED["step"] >= step, timeout=60)
    return 0.0


def allow(step: int) -> None:
    with _cond:
        ALLOWED["step"] = step
        _cond.notify_all()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("judge-faults")
    model = make_tiny_model(root / "model", corpus=tokenizer_corpus(), seed=0)
    data = write_dataset("count", 16, root / "data", seed=2)
    return model, data


def config(model, data, out, url, *extra):
    cfg = load_config(None, [
        f"model.path={model}", f"data.train={data}", f"trainer.output_dir={out}", "trainer.progress=false",
        "rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.max_new_tokens=8",
        "rewards.weights={task: 1.0, judge: 1.0}", "rewards.workers=0",
        f"rewards.judges={{judge: {{kind: http, url: '{url}', template: correctness, timeout_s: 1.5, retries: 1, "
        "backoff_s: 0.05, cache: false}}", *extra])
    cfg.rewards.weights[f"{__name__}:hold"] = 0.0
    return cfg


def steps_logged(path) -> list[dict]:
    if not path.exists():
        return []
    return [r for r in map(json.loads, path.read_text().splitlines()) if "judge/judge/calls" in r]


def test_server_dies_comes_back_stalls_and_replies_garbage(setup, tmp_path):
    model, data = setup
    server = StallServer().start()
    metrics = tmp_path / "run" / "metrics.jsonl"
    events: list[tuple[int, str]] = []

    def operator():  # acts between steps, as the metrics file shows them
        plan = {1: "kill", 2: "restart", 3: "stall", 4: "garbage"}
        done = 0
        deadline = time.monotonic() + 300
        while done < len(plan) and time.monotonic() < deadline:
            n = len(steps_logged(metrics))
            if n > done and n in plan:
                action = plan[n]
                if action == "kill":
                    server.kill()
                elif action == "restart":
                    server.start()
                elif action == "stall":
                    server.control(stall=True)
                else:
                    server.control(stall=False, reply="I am not sure.")
                events.append((n, action))
                done = n
                allow(n + 1)
            time.sleep(0.02)

    ALLOWED.update(step=1, calls=0)
    watcher = threading.Thread(target=operator, daemon=True)
    watcher.start()
    t0 = time.monotonic()
    try:
        train_rl(config(model, data, tmp_path / "run", server.url, "trainer.steps=5"))
    finally:
        watcher.join(5)
        if server.proc.poll() is None:
            server.kill()
    elapsed = time.monotonic() - t0
    assert [a for _, a in events] == ["kill", "restart", "stall", "garbage"]
    rows = steps_logged(metrics)
    assert len(rows) == 5  # the run reached its last step
    calls = [r["judge/judge/calls"] for r in rows]
    errors = [r["judge/judge/errors"] for r in rows]
    assert calls == [8.0] * 5  # cache off: every completion judged
    # step 1: the server answers "Yes"; step 2: it is dead (connection refused); step 3: restarted, used again;
    # step 4: it stalls (each request cut at timeout_s, twice); step 5: replies no parser reads
    assert errors == [0.0, 8.0, 0.0, 8.0, 8.0]
    assert rows[0]["reward/judge"] == 1.0 and rows[2]["reward/judge"] == 1.0
    assert rows[1]["reward/judge"] == 0.0 and rows[3]["reward/judge"] == 0.0 and rows[4]["reward/judge"] == 0.0
    # a stalled step costs about (retries + 1) x timeout_s, not forever
    assert rows[3]["judge/judge/latency_s"] < 2 * 1.5 + 1.0
    assert elapsed < 120


def test_on_error_raise_stops_the_run(setup, tmp_path):
    model, data = setup
    server = StallServer().start()
    ALLOWED.update(step=10**6, calls=0)  # no operator here
    try:
        server.control(reply="I am not sure.")
        with pytest.raises(RewardError, match=r"judge=judge: verdict"):
            train_rl(config(model, data, tmp_path / "run", server.url, "trainer.steps=2", "rewards.on_error=raise"))
    finally:
        server.kill()

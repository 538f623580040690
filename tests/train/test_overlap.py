"""One-step off-policy rollouts (`rollout.overlap`): each batch is sampled from exactly the policy one update
before the one it updates, on a background thread, side by side with the update; a resumed run repeats the
uninterrupted one; the settings it cannot run with are refused by name."""

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmrft.config import load_config
from mmrft.errors import ConfigError
from mmrft.train import run as run_module
from mmrft.train.overlap import PolicyCopyEngine, check_overlap
from mmrft.train.rl import train_rl

VOLATILE = ("time/", "tokens/s")
SPREAD = "rewards.weights={'tests.train.rewards_for_tests:shorter_is_better': 1.0}"  # every group learns something


def _cfg(tmp_path, tiny_model_dir, count_data, *extra):
    return load_config(None, [
        f"model.path={tiny_model_dir}", f"data.train={count_data['train']}", f"trainer.output_dir={tmp_path / 'run'}",
        "trainer.steps=5", "trainer.checkpoint_every=0", "trainer.progress=false", "rollout.group_size=4",
        "rollout.prompts_per_step=2", "rollout.max_new_tokens=6", "trainer.lr=1e-3", "tracking.tensorboard=false",
        "rollout.overlap=true", "rollout.correction=tis", SPREAD, *extra,
    ])


def _rows(run: Path) -> dict[int, dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows if r["phase"] == "train"}


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in model.parameters()])


def test_each_batch_comes_from_the_policy_one_update_old(tmp_path, tiny_model_dir, count_data, monkeypatch):
    sampled, policies, spans = [], [], {"generate": [], "update": []}
    generate, update = PolicyCopyEngine.generate, run_module.RLRun.update

    def recording_generate(self, prompts, params):
        t0 = time.time()
        sampled.append((_flat(self.model), threading.current_thread().name))
        out = generate(self, prompts, params)
        spans["generate"].append((t0, time.time()))
        return out

    def recording_update(self, batch, advantages, returns):
        policies.append(_flat(self.model))  # the policy this update starts from: θ_{k-1} at step k
        t0 = time.time()
        out = update(self, batch, advantages, returns)
        spans["update"].append((t0, time.time()))
        return out

    monkeypatch.setattr(PolicyCopyEngine, "generate", recording_generate)
    monkeypatch.setattr(run_module.RLRun, "update", recording_update)
    train_rl(_cfg(tmp_path, tiny_model_dir, count_data))

    assert len(sampled) == len(policies) == 5
    # step 1 samples on-policy (nothing to overlap with); step k > 1 from θ_{k-2}, one update behind θ_{k-1}
    assert torch.equal(sampled[0][0], policies[0])
    for k in range(2, 6):
        assert torch.equal(sampled[k - 1][0], policies[k - 2]), k
        assert not torch.equal(sampled[k - 1][0], policies[k - 1]), k  # the update did change the weights
    assert [name for _, name in sampled] == ["MainThread"] + ["mmrft-rollout_0"] * 4
    rows = _rows(tmp_path / "run")
    assert [rows[k]["rollout/staleness"] for k in range(1, 6)] == [0, 1, 1, 1, 1]
    # the correction sees the lag: the sampler's log-probs differ from π_old's once the batch is one update old
    assert rows[1]["actor/mismatch_logp_abs"] < 1e-5 < min(rows[k]["actor/mismatch_logp_abs"] for k in range(2, 6))
    # the rollout of step k+1 ran while step k updated (k = 1..4)
    overlapping = sum(g0 < u1 and u0 < g1 for (g0, g1), (u0, u1) in zip(spans["generate"][1:], spans["update"]))
    assert overlapping >= 1


def test_a_resumed_run_repeats_the_uninterrupted_one(tmp_path, tiny_model_dir, count_data):
    """A step with a checkpoint due samples nothing ahead, so step 3 samples on-policy in both runs."""
    extra = ("trainer.steps=4", "trainer.checkpoint_every=2", "trainer.keep_checkpoints=5")
    run = tmp_path / "run"
    train_rl(_cfg(tmp_path, tiny_model_dir, count_data, *extra))
    full = _rows(run)
    assert [full[k]["rollout/staleness"] for k in range(1, 5)] == [0, 1, 0, 1]
    weights = load_file(str(run / "final" / "model.safetensors"))
    shutil.rmtree(run / "checkpoint-000004")  # as if the run had stopped after step 2's checkpoint
    shutil.rmtree(run / "final")
    res = train_rl(_cfg(tmp_path, tiny_model_dir, count_data, *extra, "trainer.resume=auto"))
    resumed = _rows(run)
    for step in (3, 4):
        a = {k: v for k, v in full[step].items() if not k.startswith(VOLATILE)}
        b = {k: v for k, v in resumed[step].items() if not k.startswith(VOLATILE)}
        assert a == b, (step, {k: (a.get(k), v) for k, v in b.items() if a.get(k) != v})
    again = load_file(str(Path(res["checkpoint"]) / "model.safetensors"))
    assert all(torch.equal(weights[k], again[k]) for k in weights)


@pytest.mark.parametrize("extra,named", [
    (("algorithm.filter_zero_variance=true",), "algorithm.filter_zero_variance"),
    (("rollout.augment=gaussian",), "rollout.augment"),
    (("rollout.tools=[zoom_in]",), "rollout.tools"),
    (("rewards.workers=0",), "rewards.workers=0"),
    (("trainer.fsdp=true",), "trainer.fsdp"),
    (("rollout.engine=vllm", "rollout.vllm_sleep_level=1"), "rollout.vllm_sleep_level"),
])
def test_settings_it_cannot_run_with_are_refused(extra, named):
    cfg = load_config(None, ["rollout.overlap=true", *extra])
    with pytest.raises(ConfigError, match="rollout.overlap=true cannot be combined with " + named.replace(".", r"\.")):
        check_overlap(cfg)


def test_uncorrected_overlap_warns(caplog):
    check_overlap(load_config(None, ["rollout.overlap=true"]))
    assert "rollout.correction=tis is the usual choice" in caplog.text

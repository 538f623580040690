"""Rollout correction in the update, with the sampler's own log-probs: the HF engine's agree with the trainer's when
they are the same fp32 model; a bf16 sampler differs (a real mismatch, measured); the update's loss carries the
correction's weights."""

import copy
import math

import pytest
import torch

from mmrft.config import AlgorithmConfig, ModelConfig, RolloutConfig
from mmrft.data.collate import encode_prompts
from mmrft.data.sources import load_samples
from mmrft.models.load import load_policy
from mmrft.rollout.engine import SamplingParams
from mmrft.rollout.hf import HFRolloutEngine
from mmrft.train.forward import build_sequences
from mmrft.train.optim import make_optimizer
from mmrft.train.update import batched_logprobs, policy_update, rollout_correction


@pytest.fixture(scope="module")
def setup(tiny_model_dir, count_data):
    samples = load_samples(count_data["train"])[:3]
    model, proc = load_policy(ModelConfig(path=str(tiny_model_dir)))
    return model, proc, encode_prompts(proc, samples)


def _sample(model, proc, prompts, seed=0):
    engine = HFRolloutEngine(model, proc, keep_logprobs=True)
    torch.manual_seed(seed)
    rollout = engine.generate(prompts, SamplingParams(n=4, max_new_tokens=8, temperature=1.0))
    seqs = build_sequences(prompts, rollout.completion_ids, rollout.completion_mask, 4, engine.suppress)
    return rollout, seqs


def test_engine_logprobs_equal_the_trainers_for_the_same_model(setup):
    model, proc, prompts = setup
    rollout, seqs = _sample(model, proc, prompts)
    trainer = batched_logprobs(model, seqs, 1.0, micro=64)
    mask = rollout.completion_mask.bool()
    assert mask.sum() > 10
    diff = (trainer - rollout.logprobs)[mask].abs()
    assert float(diff.max()) < 1e-4  # same weights, same precision: only summation-order noise
    assert float(rollout.logprobs[mask].max()) < 0  # real log-probs, not the zeros of padding


def test_bf16_sampler_is_a_real_mismatch_that_the_metrics_see(setup):
    model, proc, prompts = setup
    sampler_model = copy.deepcopy(model).to(torch.bfloat16)
    rollout, seqs = _sample(sampler_model, proc, prompts)
    trainer = batched_logprobs(model, seqs, 1.0, micro=64)
    mask = rollout.completion_mask
    correct = rollout_correction(RolloutConfig(correction="tis", correction_options={"cap": 2.0}))
    from mmrft.algorithms.correction import correction_metrics, sampler_log_ratio

    log_ratio = sampler_log_ratio(trainer, rollout.logprobs, mask)
    weights = correct(log_ratio, mask)
    m = correction_metrics(log_ratio, weights, mask)
    assert m["mismatch_logp_abs"] > 1e-3  # bf16 kernels move the log-probs
    assert m["mismatch_kl"] > 0
    assert 0.5 < m["is_weight"] < 2.0
    torch.testing.assert_close(weights[mask.bool()], log_ratio.exp().clamp(max=2.0)[mask.bool()])


def _update(model, seqs, mask, advantages, sampler_logp, ro: RolloutConfig):
    model = copy.deepcopy(model)
    opt, sched = make_optimizer(model, lr=0.0, weight_decay=0.0, warmup_steps=0)  # lr 0: keep weights, read grads
    algo = AlgorithmConfig(loss_agg_mode="token-mean", kl_coef=0.0)
    metrics = policy_update(model, opt, sched, seqs, mask, advantages, algo, temperature=1.0, max_len=8,
                            max_grad_norm=1e9, sampler_logp=sampler_logp, correction=rollout_correction(ro))
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]), metrics


def test_update_multiplies_the_policy_loss_by_the_weights(setup):
    model, proc, prompts = setup
    rollout, seqs = _sample(model, proc, prompts, seed=1)
    mask = rollout.completion_mask
    advantages = torch.linspace(-1.0, 2.0, 12)  # not summing to 0, so the loss is not ~0
    trainer = batched_logprobs(model, seqs, 1.0, micro=64)
    sampler = trainer - math.log(2.0)  # every token: rho = pi_trainer / pi_sampler = 2
    plain_grad, plain = _update(model, seqs, mask, advantages, sampler, RolloutConfig(correction="none"))
    for ro, factor in ((RolloutConfig(correction="tis", correction_options={"cap": 3.0}), 2.0),
                       (RolloutConfig(correction="tis", correction_options={"cap": 1.5}), 1.5),
                       (RolloutConfig(correction="seq_mask", correction_options={"cap": 1.0}), 0.0)):
        grad, m = _update(model, seqs, mask, advantages, sampler, ro)
        assert m["loss"] == pytest.approx(factor * plain["loss"], rel=1e-4, abs=1e-6), ro.correction_options
        torch.testing.assert_close(grad, factor * plain_grad, rtol=1e-4, atol=1e-7)
        assert m["mismatch_kl"] == pytest.approx(2 - 1 - math.log(2.0), rel=1e-4)
        assert m["is_masked"] == pytest.approx(1.0 if factor == 0.0 else 0.0)
    assert "mismatch_kl" not in plain  # `none`: the loss is left alone


def test_a_run_with_a_correction_logs_the_mismatch(tmp_path, tiny_model_dir, count_data):
    """`rollout.correction` end to end: the HF engine keeps its log-probs, the update weighs with them; sampler and
    trainer are the same fp32 model, so the measured mismatch is ~0 and no token is masked."""
    import json

    from mmrft.config import load_config
    from mmrft.train.rl import train_rl

    cfg = load_config(None, [
        f"model.path={tiny_model_dir}", f"data.train={count_data['train']}", f"trainer.output_dir={tmp_path / 'run'}",
        "trainer.steps=2", "trainer.progress=false", "rollout.group_size=4", "rollout.prompts_per_step=2",
        "rollout.max_new_tokens=8", "trainer.lr=1e-3", "rollout.correction=icepop", "algorithm.minibatches=2",
        "rewards.weights={task: 1.0, 'tests.train.rewards_for_tests:shorter_is_better': 1.0}"])
    train_rl(cfg)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["phase"] == "train"]
    assert len(train) == 2
    for r in train:
        assert 0 <= r["actor/mismatch_kl"] < 1e-6 and r["actor/is_masked"] == 0.0
        assert r["actor/is_weight"] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("overrides,match", [
    (["rollout.correction=nope"], "rollout.correction"),
    (["rollout.correction=tis", "rollout.correction_options={bogus: 1}"], "bogus"),
    (["rollout.correction=tis", "rollout.augment=gaussian"], "rollout.augment"),
])
def test_bad_correction_settings_stop_before_any_work(tmp_path, tiny_model_dir, count_data, overrides, match):
    from mmrft.config import load_config
    from mmrft.errors import ConfigError
    from mmrft.train.run import check_algorithm

    cfg = load_config(None, [f"model.path={tiny_model_dir}", f"data.train={count_data['train']}", *overrides])
    with pytest.raises(ConfigError, match=match):
        check_algorithm(cfg)

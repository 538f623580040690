"""policy_update on the tiny model: micro-batching (gradient accumulation) leaves the gradient unchanged."""

import copy

import pytest
import torch

from mmrft.algorithms import AGGREGATION_MODES
from mmrft.config import AlgorithmConfig, ModelConfig
from mmrft.data.collate import encode_prompts
from mmrft.data.sources import load_samples
from mmrft.models.load import load_policy
from mmrft.rollout.engine import SamplingParams
from mmrft.rollout.hf import HFRolloutEngine
from mmrft.train.common import make_optimizer
from mmrft.train.forward import build_sequences
from mmrft.train.update import micro_batches, policy_update


def test_micro_batches_keep_groups_whole():
    assert micro_batches([0, 1, 2, 3, 4], n=4, micro_batch_size=8) == [[0, 1], [2, 3], [4]]
    assert micro_batches([3, 1], n=8, micro_batch_size=4) == [[3], [1]]  # never split a group


@pytest.fixture(scope="module")
def rollout_batch(tiny_model_dir, count_data):
    samples = load_samples(count_data["train"])[:3]
    model, proc = load_policy(ModelConfig(path=str(tiny_model_dir)))
    prompts = encode_prompts(proc, samples)
    engine = HFRolloutEngine(model, proc)
    torch.manual_seed(0)
    rollout = engine.generate(prompts, SamplingParams(n=4, max_new_tokens=8, temperature=1.0))
    seqs = build_sequences(prompts, rollout.completion_ids, rollout.completion_mask, 4, engine.suppress)
    advantages = torch.linspace(-1.0, 1.0, 12)
    return model, seqs, rollout.completion_mask, advantages


def _grads_after_update(model, seqs, mask, advantages, mode, micro):
    model = copy.deepcopy(model)
    opt, sched = make_optimizer(model, lr=0.0, weight_decay=0.0, warmup_steps=0)  # lr 0: keep weights, read grads
    algo = AlgorithmConfig(loss_agg_mode=mode, micro_batch_size=micro, kl_coef=0.0)
    metrics = policy_update(model, opt, sched, seqs, mask, advantages, algo, temperature=1.0, max_len=8,
                            max_grad_norm=1e9)
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]), metrics


@pytest.mark.parametrize("mode", AGGREGATION_MODES)
def test_gradient_accumulation_matches_one_batch(rollout_batch, mode):
    model, seqs, mask, advantages = rollout_batch
    whole, m_whole = _grads_after_update(model, seqs, mask, advantages, mode, micro=12)
    split, m_split = _grads_after_update(model, seqs, mask, advantages, mode, micro=4)  # one group per micro-batch
    assert whole.norm() > 0
    torch.testing.assert_close(split, whole, rtol=1e-4, atol=1e-7)
    # the loss is a near-zero sum of O(1) terms (advantages sum to 0): compare with an absolute float32 tolerance
    assert m_split["loss"] == pytest.approx(m_whole["loss"], rel=1e-4, abs=1e-5)

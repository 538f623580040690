"""policy_update on the tiny model: micro-batching (gradient accumulation) leaves the gradient unchanged."""

import copy

import pytest
import torch

from mmrft.algorithms import AGGREGATIONS
from mmrft.config import AlgorithmConfig, ModelConfig
from mmrft.data.collate import encode_prompts
from mmrft.data.sources import load_samples
from mmrft.models.load import load_policy
from mmrft.rollout.engine import SamplingParams
from mmrft.rollout.hf import HFRolloutEngine
from mmrft.train.optim import make_optimizer
from mmrft.train.forward import build_sequences
from mmrft.train.update import batched_logprobs, micro_batches, policy_update


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


def _grads_after_update(model, seqs, mask, advantages, mode, micro, sort=True):
    model = copy.deepcopy(model)
    opt, sched = make_optimizer(model, lr=0.0, weight_decay=0.0, warmup_steps=0)  # lr 0: keep weights, read grads
    algo = AlgorithmConfig(loss_agg_mode=mode, micro_batch_size=micro, kl_coef=0.0, length_sorted_micro_batches=sort)
    metrics = policy_update(model, opt, sched, seqs, mask, advantages, algo, temperature=1.0, max_len=8,
                            max_grad_norm=1e9)
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]), metrics


@pytest.mark.parametrize("mode", AGGREGATIONS)
def test_gradient_accumulation_matches_one_batch(rollout_batch, mode):
    model, seqs, mask, advantages = rollout_batch
    whole, m_whole = _grads_after_update(model, seqs, mask, advantages, mode, micro=12)
    split, m_split = _grads_after_update(model, seqs, mask, advantages, mode, micro=4)  # one group per micro-batch
    assert whole.norm() > 0
    torch.testing.assert_close(split, whole, rtol=1e-4, atol=1e-7)
    # the loss is a near-zero sum of O(1) terms (advantages sum to 0): compare with an absolute float32 tolerance
    assert m_split["loss"] == pytest.approx(m_whole["loss"], rel=1e-4, abs=1e-5)


def test_length_sorted_micro_batches_group_similar_lengths():
    # group lengths 3, 9, 1, 7: longest first, two groups (4 sequences) per micro-batch
    assert micro_batches([0, 1, 2, 3], n=2, micro_batch_size=4, lengths=[3, 9, 1, 7]) == [[1, 3], [0, 2]]
    # within a PPO minibatch (a subset of groups, shuffled): only those groups, sorted
    assert micro_batches([2, 0, 3], n=2, micro_batch_size=2, lengths=[3, 9, 1, 7]) == [[3], [0], [2]]
    # one micro-batch: nothing to gain, the order is kept
    assert micro_batches([2, 0], n=2, micro_batch_size=4, lengths=[3, 9, 1, 7]) == [[2, 0]]


@pytest.fixture(scope="module")
def ragged_batch(rollout_batch):
    """The rollout with completions cut to different lengths per group (2-3, 8, 4-5 tokens): what a trained model's
    completions look like, where trimming and sorting matter."""
    model, seqs, _, advantages = rollout_batch
    lengths = torch.tensor([2, 3, 3, 2, 8, 8, 7, 8, 5, 4, 5, 5])
    mask = (torch.arange(seqs.width).unsqueeze(0) < lengths.unsqueeze(1)).float()
    ids = torch.where(mask.bool(), seqs.completion_ids, seqs.completion_ids.new_zeros(()))
    ragged = build_sequences(seqs.prompts, ids, mask, seqs.n, seqs.suppressed_ids)
    return model, ragged, mask, advantages


def test_trimmed_selection_keeps_only_the_needed_columns(ragged_batch):
    _, seqs, mask, _ = ragged_batch
    assert seqs.group_lengths() == [3, 8, 5]
    sub = seqs.select_groups([2, 0], trim=True)
    assert sub.width == 5
    torch.testing.assert_close(sub.completion_mask, mask[[8, 9, 10, 11, 0, 1, 2, 3], :5])
    assert seqs.select_groups([2, 0]).width == seqs.width  # untrimmed by default


def test_length_sorted_logprobs_keep_row_order_and_values(ragged_batch):
    model, seqs, mask, _ = ragged_batch
    plain = batched_logprobs(model, seqs, 1.0, micro=4, length_sorted=False)
    widths = []
    real_forward = model.forward

    def recording_forward(*args, **kwargs):
        if kwargs.get("past_key_values") is not None:  # the completion part of the shared-prompt forward
            widths.append(int(kwargs["input_ids"].shape[1]) + 1)
        return real_forward(*args, **kwargs)

    model.forward = recording_forward
    try:
        sorted_ = batched_logprobs(model, seqs, 1.0, micro=4, length_sorted=True)
    finally:
        del model.forward
    assert widths == [8, 5, 3]  # longest group first, each micro-batch cut to its longest completion
    torch.testing.assert_close(sorted_ * mask, plain * mask, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", AGGREGATIONS)
def test_length_sorted_update_matches_one_batch(ragged_batch, mode):
    model, seqs, mask, advantages = ragged_batch
    whole, m_whole = _grads_after_update(model, seqs, mask, advantages, mode, micro=12, sort=False)
    split, m_split = _grads_after_update(model, seqs, mask, advantages, mode, micro=4, sort=True)
    assert whole.norm() > 0
    torch.testing.assert_close(split, whole, rtol=1e-4, atol=1e-7)
    assert m_split["loss"] == pytest.approx(m_whole["loss"], rel=1e-4, abs=1e-5)
    assert m_split["entropy"] == pytest.approx(m_whole["entropy"], rel=1e-4)


def test_minibatch_schedule_parts():
    from mmrft.train.update import minibatch_schedule

    assert minibatch_schedule(3, 1, 1) == [[0, 1, 2]]  # on-policy: rollout order
    g = torch.Generator().manual_seed(0)
    plan = minibatch_schedule(5, 2, 2, g)
    assert [len(p) for p in plan] == [3, 2, 3, 2]
    assert sorted(plan[0] + plan[1]) == sorted(plan[2] + plan[3]) == [0, 1, 2, 3, 4]
    assert [len(p) for p in minibatch_schedule(5, 1, 4, g)] == [2, 2, 1]  # ceil-sized parts: 3, not 4
    # data-parallel: always `minibatches` parts per epoch, so ranks with 5, 1 and 0 groups meet at every step
    assert [len(p) for p in minibatch_schedule(5, 1, 4, g, exact=True)] == [2, 2, 1, 0]
    assert minibatch_schedule(1, 2, 2, g, exact=True) == [[0], [], [0], []]
    assert minibatch_schedule(0, 1, 3, g, exact=True) == [[], [], []]
    assert minibatch_schedule(0, 1, 1, exact=True) == [[]]


def test_options_reach_registered_losses_and_estimators_by_their_signatures():
    """No trainer code names a loss or an estimator: each gets the knobs its signature names plus the user's
    options dict, and an option it does not take fails before any work (check_algorithm)."""
    from mmrft.algorithms import POLICY_LOSSES, register_policy_loss
    from mmrft.config import load_config
    from mmrft.errors import ConfigError
    from mmrft.train.learn import advantage_options
    from mmrft.train.run import check_algorithm
    from mmrft.train.update import policy_loss_options

    @register_policy_loss("test_scaled_pg")
    def scaled_pg(logp, old_logp, advantages, mask, *, clip_high=0.2, scale=1.0):
        return -scale * advantages * logp * mask, {}

    try:
        cfg = load_config(None, ["algorithm.policy_loss=test_scaled_pg", "algorithm.clip_high=0.28",
                                 "algorithm.policy_loss_options={scale: 3.0}"])
        check_algorithm(cfg)
        assert policy_loss_options(cfg.algorithm) == {"clip_high": 0.28, "scale": 3.0}
        # the built-in ppo_clip gets dual_clip, gspo too (it takes it), grpo's eps only from advantage_options
        ppo = load_config(None, ["algorithm.dual_clip=3.0"]).algorithm
        assert policy_loss_options(ppo) == {"clip_low": 0.2, "clip_high": 0.2, "dual_clip": 3.0}
        gspo = load_config(None, ["algorithm.name=gspo", "algorithm.dual_clip=3.0"]).algorithm
        assert policy_loss_options(gspo)["dual_clip"] == 3.0
        assert advantage_options(load_config(None, ["algorithm.advantage_options={eps: 0.5}"])) == {"eps": 0.5}
        assert advantage_options(load_config(None, ["algorithm.name=ppo", "critic.lam=0.9"])) == {"gamma": 1.0,
                                                                                                "lam": 0.9}
        with pytest.raises(ConfigError, match="algorithm.policy_loss_options: scaled_pg has no option 'beta' "
                                              r"\(accepted: clip_high, scale\)"):
            check_algorithm(load_config(None, ["algorithm.policy_loss=test_scaled_pg",
                                               "algorithm.policy_loss_options={beta: 1.0}"]))
        with pytest.raises(ConfigError, match="algorithm.advantage_options: grpo has no option 'gamma'"):
            check_algorithm(load_config(None, ["algorithm.advantage_options={gamma: 1.0}"]))
        with pytest.raises(ConfigError, match="algorithm.loss_agg_mode: unknown loss aggregation mode 'mean'"):
            check_algorithm(load_config(None, ["algorithm.loss_agg_mode=mean"]))
        with pytest.raises(ConfigError, match="rollout.group_size=1: the rloo estimator compares"):
            check_algorithm(load_config(None, ["algorithm.advantage=rloo", "rollout.group_size=1"]))
    finally:
        POLICY_LOSSES.unregister("test_scaled_pg")

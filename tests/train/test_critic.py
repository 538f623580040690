"""The PPO critic: value model forward, GAE targets, the value update, saving and loading."""

import pytest
import torch
from torch.testing import assert_close

from mmrft.algorithms import gae
from mmrft.config import AlgorithmConfig, Config, CriticConfig, ModelConfig
from mmrft.data.collate import encode_prompts
from mmrft.data.sources import load_samples
from mmrft.models.load import load_policy
from mmrft.models.value import ValueModel, load_critic
from mmrft.rollout.engine import SamplingParams
from mmrft.rollout.hf import HFRolloutEngine
from mmrft.train.critic import batched_values, critic_update, gae_advantages
from mmrft.train.forward import build_sequences, completion_values

F64 = torch.float64


def _rollout_batch(tiny_model_dir, count_data, n=4, prompts=3, seed=1):
    samples = load_samples(count_data["train"])[:prompts]
    model, proc = load_policy(ModelConfig(path=str(tiny_model_dir)))
    batch = encode_prompts(proc, samples)
    engine = HFRolloutEngine(model, proc)
    torch.manual_seed(seed)
    rollout = engine.generate(batch, SamplingParams(n=n, max_new_tokens=10, temperature=1.0))
    return build_sequences(batch, rollout.completion_ids, rollout.completion_mask, n, engine.suppress), rollout


def _critic(tiny_model_dir, seed=0):
    torch.manual_seed(seed)
    cfg = Config(model=ModelConfig(path=str(tiny_model_dir)))
    return load_critic(cfg)


def test_gae_advantages_hand_values():
    rewards = torch.tensor([1.0, 0.0], dtype=F64)
    values = torch.tensor([[0.5, 0.25, 0.0], [0.5, 0.5, 0.5]], dtype=F64)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    kl = torch.tensor([[0.5, 1.0, 7.0], [0.0, 0.0, 1.0]], dtype=F64)
    # token rewards: row 0 [-0.05, -0.1 + 1, 0]; row 1 [0, 0, -0.1]
    adv, ret = gae_advantages(gae, rewards, values, mask, kl, 0.1, {"gamma": 1.0, "lam": 1.0})
    # gamma = lam = 1: returns are rewards-to-go, advantages = returns - values
    assert_close(ret, torch.tensor([[0.85, 0.9, 0.0], [-0.1, -0.1, -0.1]], dtype=F64))
    assert_close(adv, torch.tensor([[0.35, 0.65, 0.0], [-0.6, -0.6, -0.6]], dtype=F64))
    # lam = 0: one-step TD errors r_t + V_{t+1} - V_t
    adv0, _ = gae_advantages(gae, rewards, values, mask, options={"gamma": 1.0, "lam": 0.0})
    assert_close(adv0, torch.tensor([[-0.25, 0.75, 0.0], [0.0, 0.0, -0.5]], dtype=F64))


def test_estimate_advantages_gae_reads_the_critic_config_and_whitens():
    """`algorithm.advantage=gae` gets gamma and lam from the `critic:` section; `algorithm.whiten_advantages`
    whitens the result over the valid tokens (unbiased variance); the returns stay as they are."""
    from mmrft.config import load_config
    from mmrft.train.learn import TrainBatch, estimate_advantages

    rewards = torch.tensor([1.0, 0.0], dtype=F64)
    values = torch.tensor([[0.5, 0.25, 0.0], [0.5, 0.5, 0.5]], dtype=F64)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], dtype=F64)
    batch = TrainBatch(None, mask, rewards, torch.tensor([0, 0]), torch.zeros(2, dtype=torch.bool), values=values)
    plain = load_config(None, ["algorithm.name=ppo", "critic.lam=0.0", "algorithm.whiten_advantages=false"])
    adv, ret = estimate_advantages(plain, batch)
    assert_close(adv, torch.tensor([[-0.25, 0.75, 0.0], [0.0, 0.0, -0.5]], dtype=F64))
    whitened, ret_w = estimate_advantages(load_config(None, ["algorithm.name=ppo", "critic.lam=0.0"]), batch)
    valid = whitened[mask.bool()]
    assert abs(float(valid.mean())) < 1e-9 and float(valid.var()) == pytest.approx(1.0, abs=1e-6)
    assert_close(ret_w, ret)


def test_value_model_shared_prompt_equals_expanded(tiny_model_dir, count_data):
    seqs, rollout = _rollout_batch(tiny_model_dir, count_data)
    critic = _critic(tiny_model_dir)
    critic.train()
    m = rollout.completion_mask.bool()
    results = {}
    for shared in (False, True):
        critic.zero_grad()
        values = completion_values(critic, seqs, shared_prompt=shared)
        assert values.shape == rollout.completion_ids.shape and values.dtype == torch.float32
        (values * m).sum().backward()
        grads = torch.cat([p.grad.flatten() for p in critic.parameters() if p.grad is not None])
        results[shared] = (values.detach(), grads)
    assert_close(results[True][0][m], results[False][0][m], atol=2e-5, rtol=0)
    g_shared, g_full = results[True][1], results[False][1]
    assert g_full.norm() > 0 and critic.value_head.weight.grad.norm() > 0
    assert (g_shared - g_full).norm() / g_full.norm() < 1e-4
    # the first completion token's value is the prompt's last state: identical across a group
    first = results[True][0][:, 0].view(-1, seqs.n)
    assert_close(first, first[:, :1].expand_as(first), atol=1e-5, rtol=0)


def _one_critic_step(tiny_model_dir, seqs, old_values, returns, mask, micro):
    critic = _critic(tiny_model_dir, seed=3)
    opt = torch.optim.SGD(critic.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    algo = AlgorithmConfig(loss_agg_mode="token-mean", micro_batch_size=micro)
    metrics = critic_update(critic, opt, sched, seqs, mask, old_values, returns, algo, CriticConfig(value_clip=0.2),
                            max_len=10, max_grad_norm=1e9)
    return torch.cat([p.detach().flatten() for p in critic.parameters()]), metrics


def test_critic_update_micro_batches_equal_one_batch(tiny_model_dir, count_data):
    """Gradient accumulation over micro-batches gives the same update (SGD: params move by exactly the grad)."""
    seqs, rollout = _rollout_batch(tiny_model_dir, count_data)
    mask = rollout.completion_mask
    with torch.no_grad():
        old_values = completion_values(_critic(tiny_model_dir, seed=3), seqs)
    returns = torch.where(mask.bool(), torch.rand(mask.shape, generator=torch.Generator().manual_seed(0)), 0.0)
    before = torch.cat([p.detach().flatten() for p in _critic(tiny_model_dir, seed=3).parameters()])
    whole, m_whole = _one_critic_step(tiny_model_dir, seqs, old_values, returns, mask, micro=64)
    split, m_split = _one_critic_step(tiny_model_dir, seqs, old_values, returns, mask, micro=4)  # 1 group each
    assert (whole - before).norm() > 0
    assert (whole - split).norm() / (whole - before).norm() < 1e-4
    assert abs(m_whole["vf_loss"] - m_split["vf_loss"]) < 1e-5
    assert 0.0 <= m_whole["vf_clip_frac"] <= 1.0


def test_critic_learns_its_targets(tiny_model_dir, count_data):
    """A few value updates on fixed returns (1 on the last token of half the completions) cut the error."""
    seqs, rollout = _rollout_batch(tiny_model_dir, count_data)
    mask = rollout.completion_mask
    critic = _critic(tiny_model_dir)
    critic.train()
    rewards = torch.tensor([1.0, 0.0] * (mask.shape[0] // 2))
    old_values = batched_values(critic, seqs, 64)
    _, returns = gae_advantages(gae, rewards, old_values, mask, options={"gamma": 1.0, "lam": 1.0})
    opt = torch.optim.AdamW(critic.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    algo = AlgorithmConfig(loss_agg_mode="token-mean", ppo_epochs=4, minibatches=1)
    first = critic_update(critic, opt, sched, seqs, mask, old_values, returns, algo, CriticConfig(value_clip=None),
                          max_len=10, max_grad_norm=1.0)
    for _ in range(5):
        last = critic_update(critic, opt, sched, seqs, mask, old_values, returns, algo,
                             CriticConfig(value_clip=None), max_len=10, max_grad_norm=1.0)
    assert last["vf_mse"] < 0.5 * first["vf_mse"], (first, last)


def test_saved_critic_loads_with_the_same_values(tmp_path, tiny_model_dir, count_data):
    seqs, _ = _rollout_batch(tiny_model_dir, count_data, n=2, prompts=2)
    critic = _critic(tiny_model_dir, seed=5)
    with torch.no_grad():
        critic.value_head.bias.fill_(0.75)  # not the fresh-init value, so loading must read the file
        want = completion_values(critic, seqs)
    _, proc = load_policy(ModelConfig(path=str(tiny_model_dir)))
    critic.save(tmp_path / "critic", proc)
    cfg = Config(model=ModelConfig(path=str(tiny_model_dir)), critic=CriticConfig(model_path=str(tmp_path / "critic")))
    torch.manual_seed(123)  # a different fresh head, were it not loaded
    loaded = load_critic(cfg)
    assert isinstance(loaded, ValueModel) and float(loaded.value_head.bias.detach()) == 0.75
    with torch.no_grad():
        assert_close(completion_values(loaded, seqs), want, atol=1e-6, rtol=0)

import torch

from mmrft.config import ModelConfig
from mmrft.data.collate import encode_prompts
from mmrft.data.sources import load_samples
from mmrft.models.load import load_policy
from mmrft.rollout.engine import SamplingParams, completion_mask_from_ids
from mmrft.rollout.hf import HFRolloutEngine
from mmrft.train.forward import build_sequences, completion_logprobs


def test_completion_mask_from_ids():
    ids = torch.tensor([[5, 2, 9, 9], [5, 6, 7, 8], [2, 0, 0, 0]])
    mask, truncated = completion_mask_from_ids(ids, eos_ids=[2])
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert truncated.tolist() == [False, True, False]


def test_training_forward_reproduces_sampling_logprobs(tiny_model_dir, count_data):
    """The loss's log-probs must be those of the distribution the tokens were sampled from."""
    samples = load_samples(count_data["train"])[:3]
    model, proc = load_policy(ModelConfig(path=str(tiny_model_dir)))
    model.eval()
    prompts = encode_prompts(proc, samples)
    engine = HFRolloutEngine(model, proc)
    torch.manual_seed(0)
    rollout = engine.generate(prompts, SamplingParams(n=2, max_new_tokens=10, temperature=0.7))
    assert rollout.completion_ids.shape[0] == 6 and rollout.group_ids.tolist() == [0, 0, 1, 1, 2, 2]

    # the same sampling run again, keeping generate's own per-step scores (after temperature and suppression)
    torch.manual_seed(0)
    out = model.generate(**prompts.inputs, max_new_tokens=10, num_return_sequences=2, do_sample=True,
                         temperature=0.7, top_k=0, top_p=1.0, suppress_tokens=engine.suppress,
                         eos_token_id=engine.eos_ids, pad_token_id=engine.pad_id,
                         output_scores=True, return_dict_in_generate=True)
    t = len(out.scores)
    ref = torch.stack(out.scores, 1).log_softmax(-1)
    ref = ref.gather(-1, out.sequences[:, prompts.prompt_len:, None]).squeeze(-1)
    seqs = build_sequences(prompts, rollout.completion_ids, rollout.completion_mask, n=2, suppressed_ids=engine.suppress)
    with torch.no_grad():
        logp, entropy = completion_logprobs(model, seqs, temperature=0.7, with_entropy=True, shared_prompt=False)
    m = rollout.completion_mask[:, :t].bool()
    assert torch.equal(out.sequences[:, prompts.prompt_len:][m], rollout.completion_ids[:, :t][m])
    torch.testing.assert_close(logp[:, :t][m], ref[m], atol=1e-4, rtol=0)
    assert (entropy[:, :t][m] >= 0).all()

    # a subset of groups gives the same log-probs as in the full batch
    sub = seqs.select_groups([2, 0])
    assert [s.id for s in sub.prompts.samples] == [samples[2].id, samples[0].id]
    with torch.no_grad():
        logp_sub, _ = completion_logprobs(model, sub, temperature=0.7, shared_prompt=False)
    torch.testing.assert_close(logp_sub, logp[[4, 5, 0, 1]], atol=1e-5, rtol=0)


def test_shared_prompt_forward_equals_expanded(tiny_model_dir, count_data):
    """Prompt computed once + KV cache repeated over the group: same log-probs and gradients as n full sequences."""
    samples = load_samples(count_data["train"])[:3]
    model, proc = load_policy(ModelConfig(path=str(tiny_model_dir)))
    prompts = encode_prompts(proc, samples)
    engine = HFRolloutEngine(model, proc)
    torch.manual_seed(1)
    rollout = engine.generate(prompts, SamplingParams(n=4, max_new_tokens=12, temperature=1.0))
    seqs = build_sequences(prompts, rollout.completion_ids, rollout.completion_mask, 4, engine.suppress)
    mask = rollout.completion_mask
    model.train()
    results = {}
    for shared in (False, True):
        model.zero_grad()
        logp, entropy = completion_logprobs(model, seqs, with_entropy=True, shared_prompt=shared)
        (logp * mask).sum().backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results[shared] = (logp.detach(), entropy.detach(), grads)
    m = mask.bool()
    torch.testing.assert_close(results[True][0][m], results[False][0][m], atol=2e-5, rtol=0)
    torch.testing.assert_close(results[True][1][m], results[False][1][m], atol=2e-5, rtol=0)
    g_shared, g_full = results[True][2], results[False][2]
    assert g_full.norm() > 0
    assert (g_shared - g_full).norm() / g_full.norm() < 1e-4


def test_shared_prefill_generation_matches_plain_generate(tiny_model_dir, count_data):
    """Prefill once + cache repeated n times samples exactly what num_return_sequences=n samples."""
    samples = load_samples(count_data["train"])[:3]
    model, proc = load_policy(ModelConfig(path=str(tiny_model_dir)))
    prompts = encode_prompts(proc, samples)
    params = SamplingParams(n=4, max_new_tokens=10, temperature=1.0)
    runs = {}
    for share in (False, True):
        torch.manual_seed(3)
        runs[share] = HFRolloutEngine(model, proc, share_prefill=share).generate(prompts, params)
    assert torch.equal(runs[True].completion_ids, runs[False].completion_ids)
    assert torch.equal(runs[True].completion_mask, runs[False].completion_mask)
    assert runs[True].texts == runs[False].texts


def test_shared_prefill_greedy_copies_equal_plain_greedy(tiny_model_dir, count_data):
    samples = load_samples(count_data["train"])[:3]
    model, proc = load_policy(ModelConfig(path=str(tiny_model_dir)))
    prompts = encode_prompts(proc, samples)
    shared = HFRolloutEngine(model, proc).generate(prompts, SamplingParams(n=2, max_new_tokens=10, temperature=0))
    plain = HFRolloutEngine(model, proc).generate(prompts, SamplingParams(n=1, max_new_tokens=10, temperature=0))
    t = plain.completion_ids.shape[1]
    assert torch.equal(shared.completion_ids[::2, :t], plain.completion_ids)
    assert torch.equal(shared.completion_ids[1::2, :t], plain.completion_ids)


def test_concatenated_batches_left_pad_without_changing_logprobs(tiny_model_dir, count_data):
    """Dynamic sampling concatenates rounds of different prompt lengths; extra left padding must change nothing."""
    import dataclasses

    from mmrft.rollout.engine import concat_rollouts

    samples = load_samples(count_data["train"])[:2]
    longer = dataclasses.replace(samples[1], prompt=samples[1].prompt + " Look carefully at every part of it.")
    model, proc = load_policy(ModelConfig(path=str(tiny_model_dir)))
    engine = HFRolloutEngine(model, proc)
    params = SamplingParams(n=2, max_new_tokens=6, temperature=1.0)
    torch.manual_seed(0)
    a = engine.generate(encode_prompts(proc, samples[:1]), params)
    b = engine.generate(encode_prompts(proc, [longer]), params)
    assert a.prompts.prompt_len < b.prompts.prompt_len
    both = concat_rollouts([a, b], proc.tokenizer.pad_token_id)
    assert both.prompts.prompt_len == b.prompts.prompt_len and both.texts == a.texts + b.texts
    with torch.no_grad():
        alone = [completion_logprobs(model, build_sequences(r.prompts, r.completion_ids, r.completion_mask, 2))[0]
                 for r in (a, b)]
        joint, _ = completion_logprobs(model, build_sequences(both.prompts, both.completion_ids, both.completion_mask, 2))
    for i, (r, lp) in enumerate(zip((a, b), alone)):
        m = r.completion_mask.bool()
        rows = slice(2 * i, 2 * i + 2)
        torch.testing.assert_close(joint[rows, : lp.shape[1]][m], lp[m], atol=2e-5, rtol=0)


def test_share_prompt_switch_picks_the_expanded_path(tiny_model_dir, count_data, monkeypatch):
    """rollout.share_prompt_forward=false reaches the forward through the SequenceBatch (for measuring)."""
    import mmrft.train.forward as fwd

    samples = load_samples(count_data["train"])[:2]
    model, proc = load_policy(ModelConfig(path=str(tiny_model_dir)))
    prompts = encode_prompts(proc, samples)
    rollout = HFRolloutEngine(model, proc).generate(prompts, SamplingParams(n=2, max_new_tokens=4))
    seqs = build_sequences(prompts, rollout.completion_ids, rollout.completion_mask, 2, share_prompt=False)
    assert seqs.select_groups([1]).share_prompt is False

    def no_sharing(*a, **k):
        raise AssertionError("the shared-prompt path ran although it was switched off")

    monkeypatch.setattr(fwd, "_logits_shared", no_sharing)
    with torch.no_grad():
        logp, _ = completion_logprobs(model, seqs.select_groups([1, 0]))
    assert logp.shape == (4, rollout.completion_ids.shape[1])


def test_gradient_checkpointing_gives_the_same_gradients(tiny_model_dir, count_data):
    """model.gradient_checkpointing recomputes activations in backward: same log-probs and gradients, and the
    shared-prompt path (which needs the KV cache checkpointing turns off) is not taken."""
    from mmrft.models.positions import supports_cache_reuse

    samples = load_samples(count_data["train"])[:2]
    results = {}
    for ckpt in (False, True):
        model, proc = load_policy(ModelConfig(path=str(tiny_model_dir), gradient_checkpointing=ckpt))
        assert supports_cache_reuse(model) is (not ckpt)
        prompts = encode_prompts(proc, samples)
        engine = HFRolloutEngine(model, proc)
        torch.manual_seed(2)
        rollout = engine.generate(prompts, SamplingParams(n=2, max_new_tokens=8, temperature=1.0))
        seqs = build_sequences(prompts, rollout.completion_ids, rollout.completion_mask, 2, engine.suppress)
        model.train()
        logp, _ = completion_logprobs(model, seqs)
        (logp * rollout.completion_mask).sum().backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results[ckpt] = (rollout.completion_ids, logp.detach(), grads)
    assert torch.equal(results[True][0], results[False][0])
    torch.testing.assert_close(results[True][1], results[False][1], atol=2e-5, rtol=0)
    assert results[False][2].norm() > 0
    assert (results[True][2] - results[False][2]).norm() / results[False][2].norm() < 1e-4


def test_shared_prompt_forward_of_one_token_completions(tiny_model_dir, count_data, monkeypatch):
    """Completions one token wide still take the shared path's two passes (a masked column is scored and dropped;
    under FSDP every rank must make the same passes) and give the expanded path's log-probs."""
    import mmrft.train.forward as fwd

    samples = load_samples(count_data["train"])[:2]
    model, proc = load_policy(ModelConfig(path=str(tiny_model_dir)))
    prompts = encode_prompts(proc, samples)
    rollout = HFRolloutEngine(model, proc).generate(prompts, SamplingParams(n=2, max_new_tokens=4))
    ids, mask = rollout.completion_ids[:, :1], rollout.completion_mask[:, :1]
    seqs = build_sequences(prompts, ids, mask, 2)
    calls = []
    real = model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad():
        shared, _ = completion_logprobs(model, seqs, shared_prompt=True)
        assert len(calls) == 2
        expanded, _ = completion_logprobs(model, seqs, shared_prompt=False)
    assert shared.shape == expanded.shape == (4, 1)
    torch.testing.assert_close(shared, expanded, atol=2e-5, rtol=0)
    assert fwd.SequenceBatch.widened(seqs, 1) is seqs

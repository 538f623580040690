"""mmrft's sampling loop (`mmrft.rollout.decode`): the processed distribution by hand, the same tokens and KV cache
as `generate` when rows end at different steps, and ended rows leaving the batch."""

from __future__ import annotations

import math

import pytest
import torch

from mmrft.config import ModelConfig
from mmrft.data.collate import encode_prompts
from mmrft.data.sources import load_samples
from mmrft.models.load import load_policy
from mmrft.rollout.decode import draw, process_logits
from mmrft.rollout.engine import SamplingParams
from mmrft.models.positions import prompt_positions
from mmrft.rollout.hf import HFRolloutEngine
from mmrft.train.forward import build_sequences, completion_logprobs

NEG = float("-inf")


def test_processed_scores_by_hand():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, 3.0]])
    # suppressed token 4 (the highest), temperature 2
    s = process_logits(logits, 2.0, suppress=[4])
    assert torch.equal(s, torch.tensor([[1.0, 0.5, 0.0, -0.5, NEG]]))
    # top-k 2: the two highest of what is left
    s = process_logits(logits, 2.0, top_k=2, suppress=[4])
    assert torch.equal(s, torch.tensor([[1.0, 0.5, NEG, NEG, NEG]]))
    # top-p: the probabilities of [1, .5, 0, -.5] are e^s / Z = .455, .276, .167, .102; the fewest highest that sum
    # to p keep two tokens for p = 0.6 (.731) and three for p = 0.8 (.898)
    z = sum(math.exp(v) for v in (1.0, 0.5, 0.0, -0.5))
    assert math.exp(1.0) / z < 0.6 < (math.exp(1.0) + math.exp(0.5)) / z < 0.8
    assert torch.equal(process_logits(logits, 2.0, top_p=0.6, suppress=[4]), torch.tensor([[1.0, 0.5, NEG, NEG, NEG]]))
    assert torch.equal(process_logits(logits, 2.0, top_p=0.8, suppress=[4]), torch.tensor([[1.0, 0.5, 0.0, NEG, NEG]]))
    # a tiny top-p keeps the top token only; greedy: suppression only, no temperature
    assert torch.equal(process_logits(logits, 2.0, top_p=1e-6, suppress=[4]).isfinite(),
                       torch.tensor([[True, False, False, False, False]]))
    assert torch.equal(process_logits(logits, 0.0, suppress=[4]), torch.tensor([[2.0, 1.0, 0.0, -1.0, NEG]]))
    assert draw(process_logits(logits, 0.0, suppress=[4]), greedy=True).tolist() == [0]
    torch.manual_seed(0)
    assert set(draw(process_logits(logits.expand(200, 5), 1.0, top_k=2), greedy=False).tolist()) == {0, 4}


@pytest.fixture(scope="module")
def setup(tiny_model_dir, count_data):
    model, proc = load_policy(ModelConfig(path=str(tiny_model_dir)))
    model.eval()
    prompts = encode_prompts(proc, load_samples(count_data["train"])[:3])
    return model, proc, prompts


def _engine(model, proc, decoder, **kw):
    engine = HFRolloutEngine(model, proc, decoder=decoder, **kw)
    # a random tiny model rarely ends: let a fifth of the vocabulary end a row, so rows end at different steps
    engine.eos_ids = engine.eos_ids + [i for i in range(0, len(proc.tokenizer), 5) if i not in engine.suppress]
    return engine


def test_rows_that_end_apart_are_sampled_and_cached_as_the_model_scores_them(setup):
    """Rows ending at different steps (so the batch shrinks): the sampled tokens' log-probs are the training
    forward's, and the cache left to continue from equals a fresh prefill of the sequences, column by column
    wherever a row has a token (keys carry the positions, so these are checked too)."""
    model, proc, prompts = setup
    params = SamplingParams(n=2, max_new_tokens=16, temperature=1.0)
    torch.manual_seed(0)
    engine = _engine(model, proc, "loop", keep_logprobs=True)
    rollout, sequences, cache = engine.sample(prompts, params, keep_cache=True)
    lengths = rollout.lengths.tolist()
    assert len(set(lengths)) > 2 and min(lengths) < params.max_new_tokens, lengths  # rows ended apart
    seqs = build_sequences(prompts, rollout.completion_ids, rollout.completion_mask, 2, engine.suppress)
    with torch.no_grad():
        logp, _ = completion_logprobs(model, seqs, temperature=1.0)
    m = rollout.completion_mask.bool()
    torch.testing.assert_close(logp[m], rollout.logprobs[m], atol=2e-5, rtol=0)
    # the fresh prefill of every column but the last
    attended = torch.cat([prompts.inputs["attention_mask"].repeat_interleave(2, 0), m.long()], 1)[:, :-1]
    expanded = prompts.select([0, 1, 2], repeat=2).inputs
    p = prompts.prompt_len
    inputs = dict(expanded, input_ids=sequences[:, :-1], attention_mask=attended,
                  mm_token_type_ids=torch.cat([expanded["mm_token_type_ids"],
                                               torch.zeros_like(sequences[:, p:-1])], 1))
    pos, _ = prompt_positions(model, inputs)
    with torch.no_grad():
        fresh = model(**inputs, position_ids=pos, use_cache=True).past_key_values
    assert len(fresh.layers) == len(cache.layers)
    for lf, lc in zip(fresh.layers, cache.layers):
        assert lf.keys.shape == lc.keys.shape
        for r in range(attended.shape[0]):
            cols = attended[r].bool()
            torch.testing.assert_close(lc.keys[r][:, cols], lf.keys[r][:, cols], atol=1e-5, rtol=0)
            torch.testing.assert_close(lc.values[r][:, cols], lf.values[r][:, cols], atol=1e-5, rtol=0)


def test_greedy_loop_writes_what_generate_writes(setup):
    model, proc, prompts = setup
    params = SamplingParams(n=2, max_new_tokens=12, temperature=0.0)
    loop, gen = (_engine(model, proc, d, keep_logprobs=True).generate(prompts, params) for d in ("loop", "generate"))
    assert torch.equal(loop.completion_ids, gen.completion_ids) and loop.texts == gen.texts
    m = loop.completion_mask.bool()
    torch.testing.assert_close(loop.logprobs[m], gen.logprobs[m], atol=1e-5, rtol=0)


def test_ended_rows_leave_the_batch(setup):
    model, proc, prompts = setup
    sizes: list[int] = []
    torch.manual_seed(0)
    hook = model.register_forward_pre_hook(lambda mod, args, kw: sizes.append(kw["input_ids"].shape[0]),
                                           with_kwargs=True)
    try:
        rollout = _engine(model, proc, "loop").generate(prompts, SamplingParams(n=2, max_new_tokens=16,
                                                                                 temperature=1.0))
    finally:
        hook.remove()
    steps = sizes[1:]  # after the prefill (3 prompts), one forward per generated column but the last
    assert sizes[0] == 3 and steps[0] <= 6
    assert steps == sorted(steps, reverse=True) and len(set(steps)) > 1  # the batch shrank, never grew
    # each row was fed while it ran, its tokens but the last: no step for a row that ended
    assert sum(steps) == int(rollout.lengths.sum()) - rollout.lengths.numel()


def test_top_k_one_samples_the_greedy_tokens(setup):
    model, proc, prompts = setup
    greedy = _engine(model, proc, "loop").generate(prompts, SamplingParams(n=2, max_new_tokens=10, temperature=0.0))
    torch.manual_seed(1)
    top1 = _engine(model, proc, "loop").generate(prompts, SamplingParams(n=2, max_new_tokens=10, temperature=1.3,
                                                                         top_k=1))
    assert torch.equal(top1.completion_ids, greedy.completion_ids)

"""SFT batches scored with their common prompt prefix computed once: the same log-probs and gradients as the B
separate sequences (Qwen2-VL, Qwen2.5-VL), for one-turn answers and tool-use trajectories with returned images."""

from __future__ import annotations

import pytest
import torch

from mmrft.config import ModelConfig
from mmrft.data.collate import encode_prompts
from mmrft.data.sources import load_samples
from mmrft.data.synthetic import tokenizer_corpus, write_dataset
from mmrft.models.load import load_policy, media_token_ids
from mmrft.models.tiny import make_tiny_model
from mmrft.rollout.tool_trajectories import write_zoom_trajectories
from mmrft.tools import tool_schemas
from mmrft.train.forward import build_sequences, completion_logprobs
from mmrft.train.sft import encode_answers
from mmrft.train.shared_prefix import common_prefix_length, shared_prefix_batch


def test_common_prefix_length():
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 5]], set()) == 2
    assert common_prefix_length([[1, 2, 3], [1, 2, 3]], set()) == 2  # each row keeps a token of its own
    assert common_prefix_length([[1, 2, 9, 3], [1, 2, 9, 3, 4]], {9}) == 2  # stops at a media placeholder
    assert common_prefix_length([[5], [6]], set()) == 0


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen2_5_vl"])
def test_shared_prefix_equals_separate_sequences(tmp_path, arch):
    path = make_tiny_model(tmp_path / arch, arch=arch, corpus=tokenizer_corpus(10), seed=0)
    model, proc = load_policy(ModelConfig(path=str(path)))
    data = write_dataset("zoom", 4, tmp_path / "zoom", seed=0, difficulty=1)
    box = "norm1000" if arch == "qwen2_vl" else "model_pixel"
    tool_rows = load_samples(write_zoom_trajectories(data, tmp_path / "sft", proc, box))
    samples = tool_rows[:2] + load_samples(data)[2:]  # two trajectories with a returned image, two one-turn answers
    prompts = encode_prompts(proc, samples, tools=tool_schemas(["zoom_in"]))
    ids, weights, mask, keys, media = encode_answers(proc, samples, "r1")
    shared = shared_prefix_batch(prompts, ids, weights, mask, keys, media, media_token_ids(proc, model),
                                 proc.tokenizer.pad_token_id)
    assert shared is not None
    seqs, w = shared
    assert seqs.num_groups == 1 and seqs.n == 4 and seqs.prompts.prompt_len > 200  # the tool list, once
    separate = build_sequences(prompts, ids, mask, n=1, response_media=media, response_keys=keys)

    def loss_and_grads(batch, weights):
        model.zero_grad(set_to_none=True)
        logp, _ = completion_logprobs(model, batch)
        loss = -(logp * weights).sum() / weights.sum()
        loss.backward()
        return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    a, ga = loss_and_grads(separate, weights)
    b, gb = loss_and_grads(seqs, w)
    assert b == pytest.approx(a, rel=1e-5)
    assert ga.keys() == gb.keys()
    worst = max(float((ga[k] - gb[k]).abs().max() / (ga[k].abs().max() + 1e-12)) for k in ga)
    assert worst < 1e-3, worst
    assert float(w.sum()) == float(weights.sum())  # the answers' weights only, none on the prompt part

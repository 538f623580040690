"""Multi-turn rollouts on the vLLM engine: the loop (`MultiTurnEngine`) drives vLLM the way it drives transformers'
generate, re-prefilling each running trajectory as token ids with every image. On CPU with a stand-in for vllm.LLM
that records the requests; on a GPU with vLLM itself (`pytest -m gpu`; skipped without CUDA or vllm)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from mmrft.data.collate import chat_texts, encode_prompts
from mmrft.data.sources import load_samples
from mmrft.data.turns import encode_tool_turn
from mmrft.models.load import AUTO_MODEL, load_processor
from mmrft.rollout.engine import SamplingParams
from mmrft.rollout.multiturn import MultiTurnEngine, TurnLimits, check_multi_turn
from mmrft.rollout.vllm import VLLMRolloutEngine, continuation_requests

from tests.rollout.scripted_env import AlwaysZooms

FAKE_VLLM = SimpleNamespace(SamplingParams=lambda **kw: SimpleNamespace(**kw))


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    return AUTO_MODEL.from_pretrained(str(tiny_model_dir), dtype=torch.float32)


class TurnScriptLLM:
    """A stand-in for vllm.LLM whose k-th `generate` call answers every completion with `turns[k]` then the end
    token (finish_reason "stop"), echoing the prompt tokens it was given; it records every request."""

    def __init__(self, turns: list[list[int]], eos: int):
        self.turns, self.eos, self.requests = turns, eos, []

    def sleep(self, level):
        pass

    def wake_up(self, tags):
        pass

    def apply_model(self, fn):
        return [fn(SimpleNamespace(load_weights=lambda weights: list(weights)))]

    def reset_prefix_cache(self):
        pass

    def reset_encoder_cache(self):
        pass

    def generate(self, requests, sampling_params, use_tqdm):
        toks = self.turns[len(self.requests)] + [self.eos]
        self.requests.append(requests)
        return [SimpleNamespace(prompt_token_ids=r.get("prompt_token_ids"), outputs=[
            SimpleNamespace(index=j, token_ids=list(toks), finish_reason="stop", stop_reason=self.eos)
            for j in range(sampling_params.n)]) for r in requests]


def test_multi_turn_loop_on_the_vllm_engine(tiny_model_dir, count_data, tiny_model):
    proc = load_processor(str(tiny_model_dir))
    tok = proc.tokenizer
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    turns = [tok(t, add_special_tokens=False)["input_ids"] for t in ("look closer", "again", "three")]
    llm = TurnScriptLLM(turns, eos)
    tools = AlwaysZooms.tool_schemas()
    vllm_engine = VLLMRolloutEngine(tiny_model, proc, model_path="unused", sleep_level=1, llm=llm,
                                    vllm_module=FAKE_VLLM, tools=tools)
    envs = []

    def make_env(sample, ctx):
        envs.append(AlwaysZooms(turns=2))
        return envs[-1]

    engine = MultiTurnEngine(vllm_engine, tiny_model, proc, make_env, TurnLimits(max_turns=4, max_total_tokens=600),
                             reuse_cache=True)  # vLLM has no turn cache of ours: every turn is re-prefilled
    samples = load_samples(count_data["train"])[:2]
    prompts = encode_prompts(proc, samples, tools=tools)
    r = engine.generate(prompts, SamplingParams(n=2, max_new_tokens=16))

    # three assistant turns: the first from the prompts' text (tools rendered as encode_prompts renders them), one
    # completion per trajectory after that, each as token ids with every image
    first, second, third = llm.requests
    assert len(first) == 2 and len(second) == len(third) == 4
    assert [q["prompt"] for q in first] == chat_texts(proc, samples, [], tools=tools)
    assert all("zoom_in" in q["prompt"] and len(q["multi_modal_data"]["image"].size) == 2 for q in first)
    crops = [envs[0].ctx.returned[0], envs[0].ctx.returned[1]]
    tool1, _, _ = encode_tool_turn(proc, "zoomed 1", [crops[0]])
    tool2, _, _ = encode_tool_turn(proc, "zoomed 2", [crops[1]])
    prompt0 = prompts.inputs["input_ids"][0][prompts.inputs["attention_mask"][0].bool()].tolist()
    turn = [t + [eos] for t in turns]
    assert second[0]["prompt_token_ids"] == prompt0 + turn[0] + tool1
    assert third[0]["prompt_token_ids"] == prompt0 + turn[0] + tool1 + turn[1] + tool2
    images = third[0]["multi_modal_data"]["image"]
    assert len(images) == 3 and [im.size for im in images[1:]] == [c.size for c in crops]
    assert len(second[0]["multi_modal_data"]["image"]) == 2

    # the trajectories: the policy's turns with loss, the tool turns without, ended by the answer
    assert [t.end for t in r.trajectories] == ["answer"] * 4
    row = turn[0] + tool1 + turn[1] + tool2 + turn[2]
    n = len(row)
    assert r.completion_ids[0, :n].tolist() == row
    loss = [1.0] * len(turn[0]) + [0.0] * len(tool1) + [1.0] * len(turn[1]) + [0.0] * len(tool2) + [1.0] * len(turn[2])
    assert r.loss_mask[0, :n].tolist() == loss
    assert r.texts[0] == "three"
    assert vllm_engine.prompt_mismatches == 0


def test_continuation_requests_need_a_continuation(tiny_model_dir, count_data):
    proc = load_processor(str(tiny_model_dir))
    prompts = encode_prompts(proc, load_samples(count_data["train"])[:1])
    with pytest.raises(ValueError, match="not a multi-turn continuation"):
        continuation_requests(proc, prompts)


def test_multi_turn_settings_are_accepted_for_vllm():
    from mmrft.config import load_config

    check_multi_turn(load_config(None, ["rollout.engine=vllm", "rollout.tools=[zoom_in]"]))


# ------------------------------------------------------------------------------------------------- on a GPU


@pytest.mark.gpu
def test_gpu_vllm_trajectories_are_scored_by_the_training_forward(tmp_path, count_data):
    """vLLM samples multi-turn trajectories with returned images; the training forward (transformers, every image,
    M-RoPE over the whole sequence) scores each policy token within the tolerance of greedy decoding, and tool
    tokens are never sampled by the policy."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("vllm")
    from mmrft.config import ModelConfig
    from mmrft.data.synthetic import tokenizer_corpus
    from mmrft.models.load import load_policy
    from mmrft.models.tiny import make_tiny_model
    from mmrft.train.forward import build_sequences

    path = make_tiny_model(tmp_path / "model", size="small", corpus=tokenizer_corpus(50), seed=0)
    model, proc = load_policy(ModelConfig(path=str(path), dtype="bfloat16"), "cuda")
    model.eval()
    tools = AlwaysZooms.tool_schemas()
    inner = VLLMRolloutEngine(model, proc, model_path=str(path), dtype="bfloat16", gpu_memory_utilization=0.3,
                              sleep_level=1, seed=0, llm_kwargs={"enforce_eager": True}, tools=tools)
    engine = MultiTurnEngine(inner, model, proc, lambda sample, ctx: AlwaysZooms(turns=2),
                             TurnLimits(max_turns=3, max_total_tokens=400))
    prompts = encode_prompts(proc, load_samples(count_data["train"])[:2], tools=tools).to("cuda")
    r = engine.generate(prompts, SamplingParams(n=1, max_new_tokens=8, temperature=0.0))
    assert inner.prompt_mismatches == 0  # vLLM saw the tokens the training forward scores
    assert any(len(t.images) == 2 for t in r.trajectories), [t.end for t in r.trajectories]
    media = [{k: v.to("cuda") for k, v in m.items()} for m in r.media]
    keys = {k: v.to("cuda") for k, v in (r.token_keys or {}).items()} or None
    seqs = build_sequences(prompts, r.completion_ids.to("cuda"), r.completion_mask.to("cuda"), n=1,
                           response_media=media, response_keys=keys)
    t = r.completion_ids.shape[1]
    with torch.no_grad():
        logits = model(**seqs.expanded_inputs(), use_cache=False, logits_to_keep=t + 1).logits[:, -(t + 1):-1].float()
    logits[..., inner.suppress] = float("-inf")
    best = logits.max(-1).values
    ids = r.completion_ids.to("cuda")
    gap = best - logits.gather(-1, ids[..., None]).squeeze(-1)
    policy = r.loss_mask.to("cuda").bool()
    assert float((gap - 0.05 - 0.02 * best.abs())[policy].max()) <= 0

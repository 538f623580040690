"""The vLLM rollout engine: its pure parts and its control flow on CPU (a stand-in for vllm.LLM), the real thing on
a GPU (`pytest -m gpu`; skipped without CUDA or without vllm)."""

from __future__ import annotations

import copy
import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from mmrft.config import RolloutConfig, load_config
from mmrft.rollout.engine import check_rollout_engine
from mmrft.data.clips import AudioClip, VideoClip
from mmrft.data.collate import MediaOptions, encode_prompts, load_media
from mmrft.data.schema import Sample
from mmrft.data.sources import load_samples
from mmrft.errors import ConfigError, MmrftError
from mmrft.models.load import AUTO_MODEL, load_processor, lora_targets
from mmrft.rollout.engine import SamplingParams
from mmrft.rollout.vllm import (SUPPRESS_BIAS, VLLMRolloutEngine, build_requests, completion_tokens, import_vllm,
                                prompt_mismatches, rollout_from_outputs, sampling_kwargs, vllm_requests)
from mmrft.rollout.vllm_weights import vllm_weight_name, vllm_weights

# vLLM's Qwen2VLForConditionalGeneration.hf_to_vllm_mapper (vllm/model_executor/models/qwen2_vl.py), first match wins
QWEN2_VL_PREFIXES = {"model.language_model.": "language_model.model.", "model.visual.": "visual.",
                     "lm_head.": "language_model.lm_head.", "model.": "language_model.model."}


def _to_vllm_qwen2_vl(name: str) -> str:
    for old, new in QWEN2_VL_PREFIXES.items():
        if name.startswith(old):
            return new + name[len(old):]
    return name


# ------------------------------------------------------------------------------------------------- weights


def test_vllm_weight_name_strips_peft_wrappers():
    assert vllm_weight_name("model.language_model.layers.0.self_attn.q_proj.weight") == \
        "model.language_model.layers.0.self_attn.q_proj.weight"
    assert vllm_weight_name("base_model.model.model.language_model.layers.0.self_attn.q_proj.base_layer.weight") == \
        "model.language_model.layers.0.self_attn.q_proj.weight"
    assert vllm_weight_name("base_model.model.model.language_model.layers.0.self_attn.q_proj.base_layer.bias") == \
        "model.language_model.layers.0.self_attn.q_proj.bias"
    assert vllm_weight_name("base_model.model.model.visual.blocks.0.attn.qkv.weight") == \
        "model.visual.blocks.0.attn.qkv.weight"
    assert vllm_weight_name("base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.default.weight") \
        is None
    assert vllm_weight_name("base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_B.default.weight") \
        is None
    assert vllm_weight_name("base_model.model.model.language_model.embed_tokens.lora_embedding_A.default") is None
    assert vllm_weight_name("base_model.model.lm_head.original_module.weight") is None
    assert vllm_weight_name("base_model.model.lm_head.modules_to_save.default.weight") == "lm_head.weight"


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    return AUTO_MODEL.from_pretrained(str(tiny_model_dir), dtype=torch.float32)


def test_vllm_weights_of_a_plain_model_are_its_parameters(tiny_model):
    got = list(vllm_weights(tiny_model))
    assert [n for n, _ in got] == [n for n, _ in tiny_model.named_parameters()]
    params = dict(tiny_model.named_parameters())
    assert all(t.data_ptr() == params[n].data_ptr() for n, t in got)  # no copies
    # transformers 5 names the Qwen2-VL parts model.language_model.* / model.visual.* / lm_head.*, all of which
    # vLLM's Qwen2-VL mapper knows
    mapped = {_to_vllm_qwen2_vl(n) for n, _ in got}
    assert all(m.startswith(("language_model.", "visual.")) for m in mapped)
    assert "language_model.model.embed_tokens.weight" in mapped and "visual.patch_embed.proj.weight" in mapped


def test_vllm_weights_of_a_lora_model_are_the_merged_weights(tiny_model):
    from peft import LoraConfig, get_peft_model

    model = copy.deepcopy(tiny_model)
    plain_names = [n for n, _ in model.named_parameters()]
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=lora_targets(model, ["q_proj", "v_proj"], True),
                     init_lora_weights=False)  # random A and B: a non-zero update
    peft_model = get_peft_model(model, cfg)
    before = {n: p.detach().clone() for n, p in peft_model.named_parameters()}
    got = dict(vllm_weights(peft_model))
    assert sorted(got) == sorted(plain_names)
    merged = copy.deepcopy(peft_model).merge_and_unload()
    expected = dict(merged.named_parameters())
    changed = [n for n in got if not torch.equal(got[n], dict(tiny_model.named_parameters())[n])]
    assert changed and all(n.endswith(("q_proj.weight", "v_proj.weight")) and ".visual." not in n for n in changed)
    for n, t in got.items():
        torch.testing.assert_close(t, expected[n], atol=1e-6, rtol=0)
    # the policy itself is untouched (nothing merged in place)
    assert all(torch.equal(p, before[n]) for n, p in peft_model.named_parameters())


# ------------------------------------------------------------------------------------------------- requests


def test_build_requests_puts_each_samples_media_with_its_prompt():
    red, blue = Image.new("RGB", (8, 6), "red"), Image.new("RGB", (8, 6), "blue")
    frames = [Image.new("RGB", (4, 2), (i, 0, 0)) for i in range(3)]
    clip = VideoClip(frames, [0.0, 0.5, 1.0], fps=2.0, duration=1.5)
    sound = AudioClip(np.zeros(160, dtype=np.float32), 16000)
    samples = [Sample("a", "text only", 1), Sample("b", "one image", 1, images=["x.png"]),
               Sample("c", "two images and a video", 1, images=["x.png", "y.png"], videos=["v.mp4"]),
               Sample("d", "two sounds", 1, audios=["s.wav", "t.wav"])]
    reqs = build_requests(samples, ["P0", "P1", "P2", "P3"], [[], [red], [red, blue], []], [clip], [sound, sound])
    assert reqs[0] == {"prompt": "P0"}
    assert reqs[1] == {"prompt": "P1", "multi_modal_data": {"image": red}}
    assert reqs[2]["prompt"] == "P2" and reqs[2]["multi_modal_data"]["image"] == [red, blue]
    video = reqs[2]["multi_modal_data"]["video"]
    assert isinstance(video, np.ndarray) and video.shape == (3, 2, 4, 3) and video.dtype == np.uint8
    assert video[:, 0, 0, 0].tolist() == [0, 1, 2]
    audio = reqs[3]["multi_modal_data"]["audio"]
    assert len(audio) == 2 and audio[0][1] == 16000 and audio[0][0].shape == (160,)


def test_request_prompts_tokenize_to_the_prompt_batch(tiny_model_dir, count_data):
    """The text sent to vLLM is the one `encode_prompts` gives the processor: the same tokens, media included."""
    proc = load_processor(str(tiny_model_dir))
    samples = load_samples(count_data["train"])[:3]
    batch = encode_prompts(proc, samples)
    reqs = vllm_requests(proc, samples)
    images, _, _ = load_media(proc, samples, MediaOptions())
    for i, (req, imgs) in enumerate(zip(reqs, images)):
        assert req["multi_modal_data"]["image"].size == imgs[0].size
        ids = proc(text=[req["prompt"]], images=[imgs], return_tensors="pt")["input_ids"][0].tolist()
        assert ids == batch.inputs["input_ids"][i][batch.inputs["attention_mask"][i].bool()].tolist()


def test_sampling_kwargs():
    kw = sampling_kwargs(SamplingParams(n=4, max_new_tokens=7, temperature=0.8, top_p=0.9, top_k=0), [5, 6], [9, 3])
    assert kw == dict(n=4, max_tokens=7, temperature=0.8, top_p=0.9, top_k=-1, stop_token_ids=[5, 6],
                      logit_bias={9: SUPPRESS_BIAS, 3: SUPPRESS_BIAS}, detokenize=False)
    assert sampling_kwargs(SamplingParams(n=2, top_k=20), [5], [])["top_k"] == 20
    greedy = sampling_kwargs(SamplingParams(n=3, max_new_tokens=4, temperature=0.0, top_p=0.5, top_k=20), [5], [])
    assert (greedy["n"], greedy["temperature"], greedy["top_p"], greedy["top_k"], greedy["logit_bias"]) == \
        (1, 0.0, 1.0, -1, None)


# ------------------------------------------------------------------------------------------------- outputs

EOS, PAD = 2, 0


class _Tok:
    """Decodes id k as 't<k>', skipping the pad and end ids (as skip_special_tokens does)."""

    def batch_decode(self, ids, skip_special_tokens=True):
        return [" ".join(f"t{int(t)}" for t in row if int(t) not in (PAD, EOS)) for row in ids]


def _out(*completions, prompt=None):
    return SimpleNamespace(prompt_token_ids=prompt, outputs=[
        SimpleNamespace(index=j, token_ids=toks, finish_reason=reason, stop_reason=stop)
        for j, (toks, reason, stop) in enumerate(completions)])


def test_completion_tokens():
    c = SimpleNamespace(token_ids=[7, 2, 9], finish_reason="stop", stop_reason=None)
    assert completion_tokens(c, [EOS]) == ([7, 2], True)
    assert completion_tokens(SimpleNamespace(token_ids=[7, 8], finish_reason="length"), [EOS]) == ([7, 8], False)
    # vLLM ended it on a stop token it did not put among the ids
    assert completion_tokens(SimpleNamespace(token_ids=[7], finish_reason="stop", stop_reason=4), [EOS, 4]) == \
        ([7, 4], True)
    assert completion_tokens(SimpleNamespace(token_ids=[], finish_reason="stop", stop_reason=None), [EOS]) == \
        ([EOS], True)


def test_rollout_from_outputs_is_prompt_major_and_padded():
    outputs = [
        # completions listed out of order: rows follow .index
        SimpleNamespace(prompt_token_ids=None, outputs=[
            SimpleNamespace(index=1, token_ids=[5, 6, 7, 8], finish_reason="length", stop_reason=None),
            SimpleNamespace(index=0, token_ids=[5, EOS], finish_reason="stop", stop_reason=None)]),
        _out(([9, 9, EOS], "stop", None), ([], "length", None)),
    ]
    r = rollout_from_outputs(SimpleNamespace(samples=["p", "q"]), outputs, 2, [EOS], PAD, _Tok())
    assert r.n == 2 and r.group_ids.tolist() == [0, 0, 1, 1]
    assert r.completion_ids.tolist() == [[5, EOS, PAD, PAD], [5, 6, 7, 8], [9, 9, EOS, PAD], [PAD, PAD, PAD, PAD]]
    assert r.completion_mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0], [0, 0, 0, 0]]
    assert r.truncated.tolist() == [False, True, False, True]
    assert r.texts == ["t5", "t5 t6 t7 t8", "t9 t9", ""]
    # one greedy completion per prompt stands for all n; the pad id may be the end id itself
    g = rollout_from_outputs(SimpleNamespace(samples=["p"]), [_out(([4], "length", None))], 3, [EOS], EOS, _Tok())
    assert g.completion_ids.tolist() == [[4]] * 3 and g.truncated.tolist() == [True] * 3
    with pytest.raises(ValueError, match="2 completions, expected 3"):
        rollout_from_outputs(SimpleNamespace(samples=["p"]), [_out(([4], "length", None), ([4], "length", None))],
                             3, [EOS], PAD, _Tok())


def test_rollout_from_outputs_keeps_the_sampled_tokens_logprobs():
    """vLLM's `logprobs=0` answer: per generated token a dict token id -> Logprob (the sampled one at least); a stop
    token vLLM left out and `completion_tokens` appended has none (NaN: the correction counts it as no mismatch)."""
    lp = lambda v: SimpleNamespace(logprob=v)  # noqa: E731
    outputs = [SimpleNamespace(prompt_token_ids=None, outputs=[
        SimpleNamespace(index=0, token_ids=[5, EOS], finish_reason="stop", stop_reason=None,
                        logprobs=[{5: lp(-0.5), 6: lp(-2.0)}, {EOS: lp(-0.25)}]),
        SimpleNamespace(index=1, token_ids=[7], finish_reason="stop", stop_reason=None,
                        logprobs=[{7: lp(-1.0)}])])]
    r = rollout_from_outputs(SimpleNamespace(samples=["p"]), outputs, 2, [EOS], PAD, _Tok(), logprobs=True)
    assert r.completion_ids.tolist() == [[5, EOS], [7, EOS]]
    assert r.logprobs[0].tolist() == [-0.5, -0.25]
    assert r.logprobs[1, 0].item() == -1.0 and torch.isnan(r.logprobs[1, 1])
    assert rollout_from_outputs(SimpleNamespace(samples=["p"]), outputs, 2, [EOS], PAD, _Tok()).logprobs is None
    assert sampling_kwargs(SamplingParams(n=2), [EOS], [], logprobs=True)["logprobs"] == 0
    assert "logprobs" not in sampling_kwargs(SamplingParams(n=2), [EOS], [])


def test_prompt_mismatches():
    batch = SimpleNamespace(inputs={"input_ids": torch.tensor([[PAD, 3, 4], [5, 6, 7]]),
                                    "attention_mask": torch.tensor([[0, 1, 1], [1, 1, 1]])})
    assert prompt_mismatches(batch, [_out(prompt=[3, 4]), _out(prompt=[5, 6, 7])]) == []
    assert prompt_mismatches(batch, [_out(prompt=[PAD, 3, 4]), _out(prompt=None)]) == [0]


# ------------------------------------------------------------------------- the engine, with a stand-in for vllm.LLM


class FakeLLM:
    """Records what the engine asks of vllm.LLM; every completion is `script[j]` for completion j."""

    def __init__(self, script):
        self.script, self.calls, self.loaded = script, [], []

    def sleep(self, level):
        self.calls.append(("sleep", level))

    def wake_up(self, tags):
        self.calls.append(("wake_up", tuple(tags)))

    def apply_model(self, fn):
        model = SimpleNamespace(load_weights=lambda weights: self.loaded.append([n for n, _ in weights]))
        self.calls.append(("load",))
        return [fn(model)]

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))

    def reset_encoder_cache(self):
        self.calls.append(("reset_encoder_cache",))

    def generate(self, requests, sampling_params, use_tqdm):
        self.calls.append(("generate", len(requests), sampling_params.n))
        return [_out(*[(list(self.script[j]), "length", None) for j in range(sampling_params.n)])
                for _ in requests]


FAKE_VLLM = SimpleNamespace(SamplingParams=lambda **kw: SimpleNamespace(**kw))


def test_engine_control_flow(tiny_model_dir, count_data, tiny_model):
    proc = load_processor(str(tiny_model_dir))
    eos = proc.tokenizer.convert_tokens_to_ids("<|im_end|>")
    llm = FakeLLM(script=[[11, 12, eos], [13, 14, 15, 16], [17]])
    engine = VLLMRolloutEngine(tiny_model, proc, model_path="unused", sleep_level=1, llm=llm, vllm_module=FAKE_VLLM)
    names = [n for n, _ in tiny_model.named_parameters()]
    # built: the policy's weights loaded (a resumed run's differ from the checkpoint on disk), then asleep
    assert llm.calls == [("load",), ("reset_prefix_cache",), ("reset_encoder_cache",), ("sleep", 1)]
    assert llm.loaded == [names]

    llm.calls.clear()
    prompts = encode_prompts(proc, load_samples(count_data["train"])[:2])
    r = engine.generate(prompts, SamplingParams(n=3, max_new_tokens=4))
    assert llm.calls == [("wake_up", ("weights",)), ("wake_up", ("kv_cache",)), ("generate", 2, 3), ("sleep", 1)]
    pad = proc.tokenizer.pad_token_id
    assert r.completion_ids.tolist() == [[11, 12, eos, pad], [13, 14, 15, 16], [17, pad, pad, pad]] * 2
    assert r.truncated.tolist() == [False, True, True] * 2
    assert r.texts == proc.tokenizer.batch_decode(r.completion_ids, skip_special_tokens=True)

    # after an update: weights woken and loaded; the KV cache waits for the next generate
    llm.calls.clear()
    engine.sync_weights(tiny_model)
    assert llm.calls == [("wake_up", ("weights",)), ("load",), ("reset_prefix_cache",), ("reset_encoder_cache",)]
    llm.calls.clear()
    r = engine.generate(prompts, SamplingParams(n=2, max_new_tokens=4, temperature=0.0))  # greedy: one, repeated
    assert llm.calls == [("wake_up", ("kv_cache",)), ("generate", 2, 1), ("sleep", 1)]
    assert r.completion_ids[0].tolist() == r.completion_ids[1].tolist() == [11, 12, eos]


def test_engine_reloads_weights_dropped_by_level_2_sleep(tiny_model_dir, count_data, tiny_model):
    proc = load_processor(str(tiny_model_dir))
    llm = FakeLLM(script=[[11]])
    engine = VLLMRolloutEngine(tiny_model, proc, model_path="unused", sleep_level=2, llm=llm, vllm_module=FAKE_VLLM)
    prompts = encode_prompts(proc, load_samples(count_data["train"])[:1])
    engine.generate(prompts, SamplingParams(n=1, max_new_tokens=2))
    llm.calls.clear()
    engine.generate(prompts, SamplingParams(n=1, max_new_tokens=2))  # no update in between (e.g. all groups dropped)
    assert llm.calls == [("wake_up", ("weights",)), ("load",), ("reset_prefix_cache",), ("reset_encoder_cache",),
                         ("wake_up", ("kv_cache",)), ("generate", 1, 1), ("sleep", 2)]
    no_sleep = FakeLLM(script=[[11]])
    VLLMRolloutEngine(tiny_model, proc, model_path="unused", sleep_level=0, llm=no_sleep, vllm_module=FAKE_VLLM) \
        .generate(prompts, SamplingParams(n=1, max_new_tokens=2))
    assert [c[0] for c in no_sleep.calls] == ["load", "reset_prefix_cache", "reset_encoder_cache", "generate"]


# ------------------------------------------------------------------------------------------------- config


def test_check_rollout_engine(monkeypatch):
    check_rollout_engine(RolloutConfig())  # hf: nothing to check
    with pytest.raises(ConfigError, match="rollout.engine: 'sglang' is not one of hf, vllm"):
        check_rollout_engine(RolloutConfig(engine="sglang"))
    with pytest.raises(ConfigError, match="vllm_sleep_level: 3"):
        check_rollout_engine(RolloutConfig(engine="vllm", vllm_sleep_level=3))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        check_rollout_engine(RolloutConfig(engine="vllm"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install 'mmrft\[vllm\]'"):
        check_rollout_engine(RolloutConfig(engine="vllm"))


def test_vllm_settings_from_the_command_line():
    cfg = load_config(None, ["rollout.engine=vllm", "rollout.vllm_kwargs.enforce_eager=true",
                             "rollout.vllm_sleep_level=2", "rollout.vllm_max_model_len=2048"])
    ro = cfg.rollout
    assert (ro.engine, ro.vllm_kwargs, ro.vllm_sleep_level, ro.vllm_max_model_len) == \
        ("vllm", {"enforce_eager": True}, 2, 2048)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_missing_vllm_names_the_extra():
    with pytest.raises(MmrftError, match=r"pip install 'mmrft\[vllm\]'"):
        import_vllm()


# ------------------------------------------------------------------------------------------------- on a GPU
# Token-level equality of greedy vLLM and greedy transformers cannot be required: their kernels differ (fused,
# batched bf16 attention and matmuls), so logits differ in the last bits and a near-tie can flip an argmax, after
# which the sequences part. What is required: each token vLLM picks greedily is, under the policy itself, within
# GREEDY_ATOL + GREEDY_RTOL * |best logit| of the best logit at its position (teacher-forced on vLLM's completion).
GREEDY_ATOL, GREEDY_RTOL = 0.05, 0.02


@pytest.fixture(scope="module")
def gpu(request, tmp_path_factory):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("vllm")
    from mmrft.config import ModelConfig
    from mmrft.data.synthetic import tokenizer_corpus
    from mmrft.models.load import load_policy
    from mmrft.models.tiny import make_tiny_model

    # `small` (head sizes 64 text, 32 vision) rather than `tiny` (48, 24): sizes every attention backend takes
    path = make_tiny_model(tmp_path_factory.mktemp("vllm") / "model", size="small",
                           corpus=tokenizer_corpus(50), seed=0)
    model, proc = load_policy(ModelConfig(path=str(path), dtype="bfloat16"), "cuda")
    model.eval()
    engine = VLLMRolloutEngine(model, proc, model_path=str(path), dtype="bfloat16", gpu_memory_utilization=0.3,
                               sleep_level=1, seed=0, llm_kwargs={"enforce_eager": True})
    samples = load_samples(request.getfixturevalue("count_data")["train"])[:4]
    prompts = encode_prompts(proc, samples).to("cuda")
    return SimpleNamespace(engine=engine, model=model, proc=proc, prompts=prompts)


def _greedy_excess(model, prompts, rollout, suppress) -> torch.Tensor:
    """How far below the best logit the chosen token's is, beyond the tolerance, at every generated position
    (teacher-forced; <= 0 where the choice is greedy up to numerics)."""
    from mmrft.train.forward import build_sequences

    seqs = build_sequences(prompts, rollout.completion_ids, rollout.completion_mask, n=rollout.n)
    t = rollout.completion_ids.shape[1]
    with torch.no_grad():
        logits = model(**seqs.expanded_inputs(), use_cache=False, logits_to_keep=t + 1).logits[:, -(t + 1):-1]
    logits = logits.float()
    logits[..., suppress] = float("-inf")
    best = logits.max(-1).values
    gap = best - logits.gather(-1, rollout.completion_ids[..., None]).squeeze(-1)
    return (gap - GREEDY_ATOL - GREEDY_RTOL * best.abs())[rollout.completion_mask.bool()]


@pytest.mark.gpu
def test_gpu_rollout_contract(gpu):
    params = SamplingParams(n=4, max_new_tokens=24, temperature=1.0)
    r = gpu.engine.generate(gpu.prompts, params)
    ids, mask = r.completion_ids, r.completion_mask
    assert ids.shape[0] == 16 and ids.shape[1] <= 24 and ids.device.type == "cuda"
    assert r.group_ids.tolist() == [g for g in range(4) for _ in range(4)]
    assert torch.all(mask[:, 1:] <= mask[:, :-1])  # a prefix
    assert torch.all(ids[mask == 0] == gpu.engine.pad_id)
    lengths = mask.sum(1).long()
    last = ids.gather(1, (lengths - 1).clamp(min=0)[:, None]).squeeze(1)
    for i in range(16):
        if r.truncated[i]:
            assert lengths[i] == 24
        else:
            assert int(last[i]) in gpu.engine.eos_ids
    assert not torch.isin(ids[mask.bool()], torch.tensor(gpu.engine.suppress, device=ids.device)).any()
    assert r.texts == gpu.proc.tokenizer.batch_decode(ids, skip_special_tokens=True)
    assert gpu.engine.prompt_mismatches == 0  # vLLM saw the prompts the training forward scores


@pytest.mark.gpu
def test_gpu_greedy_agrees_with_the_policy(gpu):
    from mmrft.rollout.hf import HFRolloutEngine

    params = SamplingParams(n=1, max_new_tokens=16, temperature=0.0)
    v = gpu.engine.generate(gpu.prompts, params)
    h = HFRolloutEngine(gpu.model, gpu.proc).generate(gpu.prompts, params)
    same = sum(v.completion_ids[i, : int(v.lengths[i])].tolist() == h.completion_ids[i, : int(h.lengths[i])].tolist()
               for i in range(4))
    excess = _greedy_excess(gpu.model, gpu.prompts, v, gpu.engine.suppress)
    assert float(excess.max()) <= 0, f"{same}/4 identical to HF greedy; worst excess {float(excess.max()):.3f}"


@pytest.mark.gpu
def test_gpu_sync_weights_reaches_vllm(gpu):
    greedy = SamplingParams(n=1, max_new_tokens=8, temperature=0.0)
    before = gpu.engine.generate(gpu.prompts, greedy).completion_ids
    norm = dict(gpu.model.named_parameters())["model.language_model.norm.weight"]
    saved = norm.detach().clone()
    with torch.no_grad():
        norm.zero_()  # every logit exactly 0: greedy takes the first id that is not suppressed, on both sides
    try:
        from mmrft.rollout.hf import HFRolloutEngine

        expected = HFRolloutEngine(gpu.model, gpu.proc).generate(gpu.prompts, greedy).completion_ids
        assert not torch.equal(gpu.engine.generate(gpu.prompts, greedy).completion_ids, expected)  # not yet synced
        gpu.engine.sync_weights(gpu.model)
        assert torch.equal(gpu.engine.generate(gpu.prompts, greedy).completion_ids, expected)
    finally:
        with torch.no_grad():
            norm.copy_(saved)
        gpu.engine.sync_weights(gpu.model)
    assert torch.equal(gpu.engine.generate(gpu.prompts, greedy).completion_ids, before)


@pytest.mark.gpu
def test_gpu_sync_weights_merges_lora(gpu):
    """Last: wraps the shared policy in peft."""
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(gpu.model, LoraConfig(
        r=8, lora_alpha=16, target_modules=lora_targets(gpu.model, ["q_proj", "k_proj", "v_proj", "o_proj"], True)))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)  # a large update, so stale weights in vLLM would show
    gpu.engine.sync_weights(peft_model)
    v = gpu.engine.generate(gpu.prompts, SamplingParams(n=1, max_new_tokens=16, temperature=0.0))
    assert float(_greedy_excess(peft_model, gpu.prompts, v, gpu.engine.suppress).max()) <= 0

"""Multi-turn rollouts with tools that return images: the loop, the tool turns in the model's own chat template, and
the training forward on whole trajectories (every image, the model's own positions) reproducing the log-probs the
sampler drew the policy's tokens from, for Qwen2-VL, Qwen2.5-VL and a non-Qwen family; tool tokens carry no loss."""

from __future__ import annotations

import pytest
import torch

from mmrft.config import ModelConfig
from mmrft.data.collate import encode_prompts
from mmrft.data.sources import load_samples
from mmrft.data.turns import tool_turn_text
from mmrft.models.families import family_of
from mmrft.models.load import load_policy
from mmrft.rollout.engine import SamplingParams, concat_rollouts
from mmrft.rollout.hf import HFRolloutEngine
from mmrft.rollout.multiturn import END_REASONS, MultiTurnEngine, TurnLimits
from mmrft.train.forward import build_sequences, completion_logprobs

from tests.rollout.scripted_env import AlwaysZooms

ARCHS = ["qwen2_vl", "qwen2_5_vl", "gemma3"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from mmrft.data.synthetic import tokenizer_corpus
    from mmrft.models.tiny import make_tiny_model

    root = tmp_path_factory.mktemp("mt-models")
    cache: dict = {}

    def get(arch):
        if arch not in cache:
            path = make_tiny_model(root / arch, arch=arch, corpus=tokenizer_corpus(20), seed=0)
            cache[arch] = load_policy(ModelConfig(path=str(path)))
        return cache[arch]

    return get


def _engine(model, processor, turns=2, limits=None, keep_logprobs=True, reuse_cache=False):
    inner = HFRolloutEngine(model, processor, keep_logprobs=keep_logprobs)
    # a random tiny model rarely ends a turn: let about a quarter of the vocabulary end one, so turns are short
    inner.eos_ids = inner.eos_ids + [i for i in range(0, len(processor.tokenizer), 4) if i not in inner.suppress]
    return MultiTurnEngine(inner, model, processor, lambda sample, ctx: AlwaysZooms(turns=turns),
                           limits or TurnLimits(max_turns=4, max_total_tokens=600), reuse_cache=reuse_cache)


def test_a_tool_turn_is_written_in_the_model_chat_template(models):
    _, processor = models("qwen2_vl")
    text = tool_turn_text(processor, "zoomed", 1)
    # the generated turn ends with <|im_end|>; the template's newline, the tool turn with its image, the next header
    assert text == ("\n<|im_start|>tool\n<|vision_start|><|image_pad|><|vision_end|>zoomed<|im_end|>\n"
                    "<|im_start|>assistant\n")


@pytest.mark.parametrize("cache", [False, True], ids=["re-prefill", "cache"])
@pytest.mark.parametrize("arch", ARCHS)
def test_training_forward_reproduces_the_sampler_on_trajectories_with_returned_images(arch, cache, models,
                                                                                        count_data):
    """Both ways of continuing a row (prefilling its whole sequence again, or its KV cache with the tool turn
    appended after masked holes) sample from the distribution the training forward scores."""
    model, processor = models(arch)
    model.eval()
    samples = load_samples(count_data["train"])[:2]
    prompts = encode_prompts(processor, samples, layout=family_of(model).layout or None)
    engine = _engine(model, processor, reuse_cache=cache)
    from mmrft.rollout.continuation import supports_turn_cache

    assert supports_turn_cache(engine.engine, model) == arch.startswith("qwen")  # Gemma 3 prefills again
    torch.manual_seed(0)
    rollout = engine.generate(prompts, SamplingParams(n=2, max_new_tokens=12, temperature=0.8))
    ends = [t.end for t in rollout.trajectories]
    assert set(ends) <= set(END_REASONS)
    full = [i for i, t in enumerate(rollout.trajectories) if len(t.images) == 2]
    assert full, ends  # at least one trajectory went through both tool turns, two images returned
    loss, attend = rollout.loss_mask, rollout.completion_mask
    assert (loss <= attend).all() and (loss.sum(1) < attend.sum(1))[full].all()  # tool tokens: attended, no loss
    seqs = build_sequences(prompts, rollout.completion_ids, rollout.completion_mask, 2, engine.suppress,
                           response_media=rollout.media, response_keys=rollout.token_keys)
    assert seqs.multi_turn
    with torch.no_grad():
        logp, _ = completion_logprobs(model, seqs, temperature=0.8)
    m = loss.bool()
    torch.testing.assert_close(logp[m], rollout.logprobs[m], atol=2e-4, rtol=0)
    # every response token is scored: the tool turns are context, not padding
    assert torch.isfinite(logp[attend.bool()]).all()


def test_tool_tokens_get_no_gradient(models, count_data):
    """The loss mask of a trajectory is 0 on the tool turns: the gradient of the policy loss reaches the outputs
    that predict the policy's own tokens only."""
    from mmrft.algorithms import aggregate, ppo_clip
    from mmrft.train import forward

    model, processor = models("qwen2_vl")
    samples = load_samples(count_data["train"])[:1]
    prompts = encode_prompts(processor, samples)
    torch.manual_seed(1)
    rollout = _engine(model, processor, keep_logprobs=False).generate(
        prompts, SamplingParams(n=2, max_new_tokens=12, temperature=1.0))
    seqs = build_sequences(prompts, rollout.completion_ids, rollout.completion_mask, 2,
                           response_media=rollout.media, response_keys=rollout.token_keys)
    captured = {}
    real = forward._logits

    def keep(model_, batch, shared):
        out = real(model_, batch, shared)
        out.retain_grad()
        captured["logits"] = out
        return out

    model.train()
    forward._logits = keep
    try:
        logp, _ = completion_logprobs(model, seqs)
    finally:
        forward._logits = real
    mask = rollout.loss_mask
    loss_mat, _ = ppo_clip(logp, logp.detach(), torch.tensor([1.0, -1.0]), mask)
    aggregate(loss_mat, mask, "token-mean").backward()
    grad = captured["logits"].grad.abs().sum(-1)  # [rows, T]: per predicted token
    tool = (rollout.completion_mask - mask).bool()
    assert tool.any() and mask.bool().any()
    assert (grad[tool] == 0).all()
    assert (grad[mask.bool()] > 0).any()
    model.zero_grad()


def test_limits_end_trajectories_with_their_reason(models, count_data):
    model, processor = models("qwen2_vl")
    model.eval()
    samples = load_samples(count_data["train"])[:2]
    prompts = encode_prompts(processor, samples)
    params = SamplingParams(n=2, max_new_tokens=12, temperature=1.0)
    torch.manual_seed(0)
    one_turn = _engine(model, processor, turns=3, limits=TurnLimits(max_turns=1)).generate(prompts, params)
    assert {t.end for t in one_turn.trajectories} <= {"max_turns", "truncated"}
    assert all(len(t.images) == 0 for t in one_turn.trajectories)  # the last allowed turn's call is not run
    torch.manual_seed(0)
    one_image = _engine(model, processor, turns=3, limits=TurnLimits(max_images=1)).generate(prompts, params)
    assert all(len(t.images) <= 1 for t in one_image.trajectories)
    assert "max_images" in {t.end for t in one_image.trajectories}
    torch.manual_seed(0)
    short = _engine(model, processor, turns=3, limits=TurnLimits(max_total_tokens=40)).generate(prompts, params)
    assert all(n <= 40 for n in short.completion_mask.sum(1).tolist())
    assert {t.end for t in short.trajectories} & {"max_tokens"}


def test_rollouts_of_trajectories_select_and_concatenate(models, count_data):
    model, processor = models("qwen2_vl")
    samples = load_samples(count_data["train"])[:2]
    prompts = encode_prompts(processor, samples)
    engine = _engine(model, processor)
    torch.manual_seed(0)
    a = engine.generate(prompts, SamplingParams(n=2, max_new_tokens=10, temperature=1.0))
    b = a.select_groups([1])
    assert b.trajectories == a.trajectories[2:] and len(b.media) == 2
    torch.testing.assert_close(b.loss_mask, a.loss_mask[2:])
    both = concat_rollouts([b, a.select_groups([0])], engine.pad_id)
    assert both.trajectories == a.trajectories[2:] + a.trajectories[:2]
    assert both.loss_mask.shape == both.completion_ids.shape
    for key in both.token_keys:
        assert both.token_keys[key].shape == both.completion_ids.shape


@pytest.mark.parametrize("algo", [(), ("algorithm.name=dapo", "algorithm.overlong_buffer=190")], ids=["grpo", "dapo"])
def test_grpo_on_trajectories_end_to_end(tmp_path, short_turn_model_dir, count_data, algo):
    """`mmrft train` with an environment: multi-turn rollouts, trajectory metrics, an update, and rollout dumps
    whose rows hold the turns and the images the tools returned. DAPO's filter and overlong shaping measure the whole
    trajectory against rollout.max_total_tokens (a tool turn alone is longer than rollout.max_new_tokens)."""
    import json

    from mmrft.config import load_config
    from mmrft.train.rl import train_rl

    model_dir = short_turn_model_dir
    cfg = load_config(None, [
        "imports=[tests.rollout.scripted_env]", "rollout.environment=test_always_zooms",
        "rollout.environment_options={turns: 1}", f"model.path={model_dir}", f"data.train={count_data['train']}",
        f"data.eval={count_data['test']}", "data.eval_limit=2", f"trainer.output_dir={tmp_path / 'run'}",
        "trainer.steps=2", "trainer.progress=false", "rollout.group_size=2", "rollout.prompts_per_step=2",
        "rollout.max_new_tokens=6", "rollout.max_total_tokens=200", "tracking.rollouts_every=1", "trainer.lr=1e-3",
        "rewards.weights={'tests.train.rewards_for_tests:shorter_is_better': 1.0, tool_failures: 1.0}", *algo,
    ])
    res = train_rl(cfg)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["phase"] == "train"]
    assert len(train) == 2 and res["eval_after"] is not None
    for r in train:
        assert r["trajectory/turns"] >= 1 and "trajectory/end/answer" in r
        assert abs(sum(r[f"trajectory/end/{e}"] for e in END_REASONS) - 1.0) < 1e-9
        assert "actor/loss" in r
        assert r["reward/tool_failures"] == 0.0  # read the trajectory in the reward worker: no call failed
        if algo:  # 190 tokens of buffer before 200: trajectories of 10+ tokens are shaped, none fully
            assert -1.0 < r["reward/overlong_penalty"] < 0.0
    dump = [json.loads(x) for x in (tmp_path / "run" / "rollouts" / "step_000001.jsonl").read_text().splitlines()]
    with_images = [d for d in dump if any(t.get("images") for t in d.get("turns", []))]
    assert with_images, dump[0]
    tool_turn = next(t for t in with_images[0]["turns"] if t["role"] == "tool")
    assert tool_turn["text"] == "zoomed 1" and all(p.endswith(".png") for p in tool_turn["images"])
    from pathlib import Path
    assert Path(tool_turn["images"][0]).is_file()


class ScriptedPolicy:
    """An inner engine that writes the given assistant turns in order (every row the same), so the loop runs real
    tool calls through `ToolEnvironment`; it stands in for sampling, which a random tiny model cannot do."""

    def __init__(self, processor, turns):
        self.processor, self.turns, self.k = processor, list(turns), 0
        self.suppress, self.pad_id = [], processor.tokenizer.pad_token_id

    def generate(self, prompts, params):
        from mmrft.rollout.engine import Rollout

        tok = self.processor.tokenizer
        text = self.turns[min(self.k, len(self.turns) - 1)]
        self.k += 1
        ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        rows = len(prompts.samples) * params.n
        completion = torch.tensor([ids] * rows)
        return Rollout(prompts, params.n, completion, torch.ones(completion.shape), torch.zeros(rows, dtype=torch.bool),
                       [text] * rows)


def test_real_tool_calls_through_the_loop(models, count_data):
    """zoom_in (a box in Qwen2-VL's 0-1000 convention) returns the quarter of the image it names; a box outside the
    image is an error the model reads, counted as a failed call; the answer ends the trajectory. The prompt lists
    the tools (the Qwen2-VL template ignores `tools=`, so the system message carries them)."""
    from mmrft.rollout.multiturn import environment_factory, prompt_tools
    from mmrft.config import load_config

    model, processor = models("qwen2_vl")
    cfg = load_config(None, ["rollout.tools=[zoom_in, calculator]"])
    samples = load_samples(count_data["train"])[:1]
    tools = prompt_tools(cfg)
    prompts = encode_prompts(processor, samples, tools=tools)
    prompt_text = processor.tokenizer.decode(prompts.inputs["input_ids"][0])
    assert '"name": "zoom_in"' in prompt_text and "<tool_call>" in prompt_text
    zoom = '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [0, 0, 500, 500]}}</tool_call>'
    outside = '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [1200, 0, 1300, 80]}}</tool_call>'
    policy = ScriptedPolicy(processor, [zoom, outside, "<answer>3</answer>"])
    engine = MultiTurnEngine(policy, model, processor, environment_factory(cfg), TurnLimits(max_turns=4, max_total_tokens=2000))
    rollout = engine.generate(prompts, SamplingParams(n=2, max_new_tokens=256))
    t = rollout.trajectories[0]
    assert t.end == "answer" and [c["name"] for c in t.calls] == ["zoom_in", "zoom_in"]
    assert t.calls[0]["error"] is None and t.calls[1]["error"] == "bad_arguments"
    # the top-left quarter of the 112 x 112 image, enlarged to the tiny processor's pixel budget (112 x 112)
    original = load_samples(count_data["train"])[0]
    from PIL import Image

    quarter = Image.open(original.images[0]).convert("RGB").crop((0, 0, 56, 56))
    assert len(t.images) == 1 and t.images[0].size == (112, 112)
    assert t.images[0].tobytes() == quarter.resize((112, 112), Image.Resampling.BICUBIC).tobytes()
    tool_texts = [x["text"] for x in t.turns if x["role"] == "tool"]
    assert "image 1" in tool_texts[0] and "<tool_response>" in tool_texts[0]
    assert tool_texts[1] and t.summary()["failed_calls"] == 1
    assert rollout.texts[0] == "<answer>3</answer>"
    seqs = build_sequences(prompts, rollout.completion_ids, rollout.completion_mask, 2,
                           response_media=rollout.media, response_keys=rollout.token_keys)
    with torch.no_grad():
        logp, _ = completion_logprobs(model, seqs)
    assert torch.isfinite(logp).all()
    from mmrft.train.step_metrics import trajectory_metrics

    m = trajectory_metrics(rollout.trajectories)
    assert m["trajectory/tool_calls"] == 2 and m["trajectory/failed_calls"] == 1 and m["trajectory/images"] == 1
    assert m["trajectory/calls/zoom_in"] == 2 and m["trajectory/end/answer"] == 1.0 and m["trajectory/turns"] == 3


def test_tools_without_their_list_in_the_prompt(models, count_data):
    """`rollout.tool_list=false`: no schemas in the prompts of training, SFT and evaluation (all read
    `prompt_tools`, `mmrft eval --config` its `multi_turn_setup`), while the tools still run."""
    from mmrft.config import load_config
    from mmrft.eval.harness import answer_engine, multi_turn_setup
    from mmrft.rollout.multiturn import environment_factory, prompt_tools

    model, processor = models("qwen2_vl")
    cfg = load_config(None, ["rollout.tools=[zoom_in]", "rollout.tool_list=false"])
    assert prompt_tools(cfg) is None and environment_factory(cfg) is not None
    engine, schemas = answer_engine(model, processor, multi_turn_setup(cfg.rollout))
    assert isinstance(engine, MultiTurnEngine) and schemas is None
    samples = load_samples(count_data["train"])[:1]
    text = processor.tokenizer.decode(encode_prompts(processor, samples, tools=prompt_tools(cfg)).inputs["input_ids"][0])
    assert "zoom_in" not in text and "<tools>" not in text
    listed = load_config(None, ["rollout.tools=[zoom_in]"])
    assert [t["function"]["name"] for t in prompt_tools(listed)] == ["zoom_in"]
    assert answer_engine(model, processor, multi_turn_setup(listed.rollout))[1] == prompt_tools(listed)


def test_cache_continuation_equals_prefilling_again(models, count_data):
    """Greedy trajectories are the same token for token whether each turn continues the rows' KV caches or prefills
    their whole sequences again."""
    model, processor = models("qwen2_vl")
    model.eval()
    samples = load_samples(count_data["train"])[:2]
    prompts = encode_prompts(processor, samples)
    params = SamplingParams(n=1, max_new_tokens=12, temperature=0.0)
    runs = [_engine(model, processor, turns=2, reuse_cache=cache).generate(prompts, params) for cache in (False, True)]
    assert torch.equal(runs[0].completion_ids, runs[1].completion_ids)
    assert [t.end for t in runs[0].trajectories] == [t.end for t in runs[1].trajectories]
    assert sum(len(t.images) for t in runs[1].trajectories) >= 2  # tool turns with images were continued


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen2_5_vl"])
def test_shared_prompt_forward_on_trajectories_equals_expanded(arch, models, count_data):
    """The prompt computed once per group and its KV cache continued over trajectories whose tool turns carry
    images gives the log-probs and gradients of the expanded sequences."""
    model, processor = models(arch)
    samples = load_samples(count_data["train"])[:2]
    prompts = encode_prompts(processor, samples)
    torch.manual_seed(2)
    rollout = _engine(model, processor, keep_logprobs=False).generate(
        prompts, SamplingParams(n=3, max_new_tokens=12, temperature=1.0))
    assert sum(len(t.images) for t in rollout.trajectories) >= 2
    seqs = build_sequences(prompts, rollout.completion_ids, rollout.completion_mask, 3,
                           response_media=rollout.media, response_keys=rollout.token_keys)
    mask = rollout.loss_mask
    model.train()
    results = {}
    for shared in (False, True):
        model.zero_grad()
        logp, _ = completion_logprobs(model, seqs, shared_prompt=shared)
        (logp * mask).sum().backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results[shared] = (logp.detach(), grads)
    m = rollout.completion_mask.bool()
    torch.testing.assert_close(results[True][0][m], results[False][0][m], atol=5e-5, rtol=0)
    assert (results[True][1] - results[False][1]).norm() / results[False][1].norm() < 1e-4
    model.zero_grad()


WRAPPING_TEMPLATE = (  # the tool part of Qwen2.5/Qwen3's templates: consecutive tool messages in one user turn
    "{% for m in messages %}{% if m.role == 'tool' %}"
    "{% if loop.first or messages[loop.index0 - 1].role != 'tool' %}<|im_start|>user{% endif %}"
    "\n<tool_response>\n{% for c in m.content %}{% if c.type == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ c.text }}{% endif %}{% endfor %}\n</tool_response>"
    "{% if loop.last or messages[loop.index0 + 1].role != 'tool' %}<|im_end|>\n{% endif %}"
    "{% else %}<|im_start|>{{ m.role }}\n{% for c in m.content %}{{ c.text }}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_a_template_that_wraps_tool_answers_gets_them_unwrapped(models):
    """ToolEnvironment wraps each call's answer in <tool_response> for templates that render a bare tool turn; a
    template that wraps tool messages itself gets one unwrapped tool message per call instead (not wrapped twice)."""
    import copy

    _, processor = models("qwen2_vl")
    wrapping = copy.copy(processor)
    wrapping.chat_template = WRAPPING_TEMPLATE
    text = "<tool_response>\nZoomed in; this is image 1.\n</tool_response>\n<tool_response>\nError: no image 7\n</tool_response>"
    turn = tool_turn_text(wrapping, text, 1)
    assert turn.count("<tool_response>") == 2 and "<tool_response>\n<tool_response>" not in turn
    assert turn.startswith("\n<|im_start|>user") and turn.endswith("<|im_start|>assistant\n")
    first, second = turn.split("</tool_response>")[:2]  # the image goes with the last call's answer
    assert "Zoomed in; this is image 1." in first and "<|image_pad|>" not in first
    assert "<|image_pad|>" in second and "Error: no image 7" in second
    bare = tool_turn_text(processor, text, 1)  # the Qwen2-VL template: the text as written, once
    assert bare.count("<tool_response>") == 2 and bare.startswith("\n<|im_start|>tool\n")

"""Every model family with a tiny builder, end to end through mmrft's own code path: the tiny model loads through
the Auto classes, its processor round-trips a chat with its media, one GRPO step (full weights and LoRA) changes
the weights; each media kind (multi-image, video, audio) gets a GRPO step on a family that takes it; the family
box conventions are checked on a grounding sample."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from mmrft.config import load_config
from mmrft.data.collate import encode_prompts
from mmrft.data.sources import load_samples
from mmrft.models.families import family_of, get_family
from mmrft.models.load import load_policy
from mmrft.models.tiny import ARCHS, make_tiny_model
from mmrft.train.rl import train_rl
from mmrft.config import ModelConfig

# (family, modality of its synthetic task): every family with its first modality, plus the other media kinds
IMAGE_TASK = "count"
TASKS = {"image": "count", "multi_image": "multi_image_more", "video": "video_direction", "audio": "audio_count_beeps"}
FAMILY_MODALITY = {arch: get_family(arch).modalities[0] for arch in ARCHS}
MEDIA_RUNS = [("qwen2_vl", "multi_image"), ("qwen2_vl", "video"), ("qwen2_5_vl", "video")]
USER_REWARD = "rewards.weights={task: 1.0, 'tests.train.rewards_for_tests:shorter_is_better': 1.0}"


@pytest.fixture(scope="module")
def family_models(tmp_path_factory):
    from mmrft.data.synthetic import tokenizer_corpus

    root = tmp_path_factory.mktemp("families")
    corpus = tokenizer_corpus(20)
    cache: dict[str, object] = {}

    def get(arch: str):
        if arch not in cache:
            cache[arch] = make_tiny_model(root / arch, arch=arch, corpus=corpus, seed=0)
        return cache[arch]

    return get


@pytest.fixture(scope="module")
def task_data(tmp_path_factory):
    from mmrft.data.synthetic import write_dataset

    root = tmp_path_factory.mktemp("family-data")
    cache: dict[str, object] = {}

    def get(modality: str):
        if modality not in cache:
            cache[modality] = write_dataset(TASKS[modality], 8, root / modality, seed=1)
        return cache[modality]

    return get


def _grpo_step(tmp_path, model_dir, data, *overrides):
    cfg = load_config(None, [
        f"model.path={model_dir}", f"data.train={data}", f"trainer.output_dir={tmp_path / 'run'}",
        "trainer.steps=1", "trainer.progress=false", "rollout.group_size=2", "rollout.prompts_per_step=2",
        "rollout.max_new_tokens=4", "trainer.lr=1e-2", USER_REWARD, *overrides,
    ])
    res = train_rl(cfg)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    return res, [r for r in rows if r["phase"] == "train"]


def _changed(a_dir, b_dir) -> list[str]:
    a, b = load_file(a_dir / "model.safetensors"), load_file(b_dir / "model.safetensors")
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_every_family_is_registered():
    assert len(ARCHS) >= 6
    for arch in ARCHS:
        assert get_family(arch).model_type == arch


@pytest.mark.parametrize("arch", ARCHS)
def test_processor_round_trips_a_chat_with_media(arch, family_models, task_data):
    model, processor = load_policy(ModelConfig(path=str(family_models(arch))))
    assert family_of(model).model_type == arch
    samples = load_samples(task_data(FAMILY_MODALITY[arch]))[:2]
    batch = encode_prompts(processor, samples, layout=family_of(model).layout or None)
    ids = batch.inputs["input_ids"]
    assert ids.shape[0] == 2
    # the question survives the chat template + processor
    text = processor.tokenizer.decode(ids[0], skip_special_tokens=True)
    assert samples[0].prompt.split("?")[0] in text
    # the media placeholders expand to exactly as many tokens as the model's media features
    with torch.no_grad():
        out = model(**batch.inputs)
    assert out.logits.shape[:2] == ids.shape and torch.isfinite(out.logits).all()
    # the batch splits per prompt and repeats per completion with its media rows
    two = batch.select([1, 0], repeat=2)
    with torch.no_grad():
        again = model(**two.inputs)
    torch.testing.assert_close(again.logits[0], out.logits[1], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(again.logits[3], out.logits[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("arch", ARCHS)
def test_one_grpo_step_changes_the_weights(tmp_path, arch, lora, family_models, task_data):
    model_dir = family_models(arch)
    extra = ["model.lora.enabled=true", "model.lora.r=4"] if lora else []
    _, rows = _grpo_step(tmp_path, model_dir, task_data(FAMILY_MODALITY[arch]), *extra)
    assert len(rows) == 1 and rows[0]["advantage/std"] > 0
    changed = _changed(tmp_path / "run" / "final", model_dir)
    assert changed
    if lora:  # the adapter sits on the language model only: the media tower is untouched
        towers = get_family(arch).tower_keys
        assert not [k for k in changed if any(t in k for t in towers)]


@pytest.mark.parametrize("arch,modality", MEDIA_RUNS)
def test_grpo_step_on_each_media_kind(tmp_path, arch, modality, family_models, task_data):
    _, rows = _grpo_step(tmp_path, family_models(arch), task_data(modality))
    assert rows[0]["advantage/std"] > 0
    assert _changed(tmp_path / "run" / "final", family_models(arch))


@pytest.mark.parametrize("arch", ARCHS)
def test_training_forward_is_exact_for_every_family(arch, family_models, task_data):
    """Both training-forward paths (prompt once + repeated KV cache, and the expanded full sequences) give the
    log-probs `generate` sampled from, for every family's attention and position scheme."""
    from mmrft.rollout.engine import SamplingParams
    from mmrft.rollout.hf import HFRolloutEngine
    from mmrft.train.forward import build_sequences, completion_logprobs

    model, processor = load_policy(ModelConfig(path=str(family_models(arch))))
    model.eval()
    samples = load_samples(task_data(FAMILY_MODALITY[arch]))[:2]
    prompts = encode_prompts(processor, samples, layout=family_of(model).layout or None)
    engine = HFRolloutEngine(model, processor)
    torch.manual_seed(0)
    params = SamplingParams(n=2, max_new_tokens=6, temperature=1.0)
    rollout = engine.generate(prompts, params)
    torch.manual_seed(0)  # the same draw again, keeping generate's per-step distributions
    expanded_inputs = prompts.select([0, 1], repeat=2).inputs
    out = model.generate(**expanded_inputs, max_new_tokens=6, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                         suppress_tokens=engine.suppress, eos_token_id=engine.eos_ids, pad_token_id=engine.pad_id,
                         output_scores=True, return_dict_in_generate=True)
    t = len(out.scores)
    ref = torch.stack(out.scores, 1).log_softmax(-1)
    ref = ref.gather(-1, out.sequences[:, prompts.prompt_len:, None]).squeeze(-1)
    seqs = build_sequences(prompts, rollout.completion_ids, rollout.completion_mask, n=2, suppressed_ids=engine.suppress)
    with torch.no_grad():
        expanded, _ = completion_logprobs(model, seqs, shared_prompt=False)
        shared, _ = completion_logprobs(model, seqs, shared_prompt=True)
    mask = rollout.completion_mask.bool()
    torch.testing.assert_close(shared[mask], expanded[mask], atol=1e-4, rtol=0)
    m = mask[:, :t]
    assert torch.equal(out.sequences[:, prompts.prompt_len:][m], rollout.completion_ids[:, :t][m])
    torch.testing.assert_close(expanded[:, :t][m], ref[m], atol=1e-4, rtol=0)

"""`mmrft plan`: each term against hand-computed cases, the phases and the verdict, parameter counting, the CLI."""

import json
import os
import subprocess
import sys

import pytest

from mmrft import plan as P


def test_parse_bytes_units():
    assert P.parse_bytes("80GB") == 80 * 10**9
    assert P.parse_bytes("80GiB") == P.parse_bytes("80G") == 80 * 2**30
    assert P.parse_bytes("512 MiB") == 512 * 2**20
    assert P.parse_bytes("1.5GB") == 1_500_000_000
    assert P.parse_bytes(1234) == 1234
    with pytest.raises(ValueError, match="80XB"):
        P.parse_bytes("80XB")


def test_weight_gradient_and_optimizer_terms():
    assert P.weights_bytes(1000, 2) == 2000
    assert P.weights_bytes(1000, 2, shards=3) == 667  # ceil(2000 / 3)
    assert P.gradient_bytes(10, 4, shards=2) == 20
    assert P.adamw_bytes(10, 4) == 80  # two fp32 moments
    assert P.adamw_bytes(10, 4, shards=2) == 40


def test_kv_cache_qwen2_5_vl_3b():
    # 36 layers, 2 KV heads of 128 dims, 1000 tokens, 16 sequences, bf16: 2*36*2*128*1000*16*2
    assert P.kv_cache_bytes(36, 2, 128, 1000, 16, 2) == 589_824_000


def test_activation_terms():
    # Qwen2.5-VL-3B's decoder layer in bf16: 2*(4+2)*2048 + 2*(6*2048 + 4*256) + 4*2*11008
    a = P.layer_activation_bytes_per_token(2048, 256, 11008, 2)
    assert a == 24576 + 26624 + 88064 == 139264
    # fp32: 2*8*h + 4*(6h + 4kv) + 16*I
    assert P.layer_activation_bytes_per_token(10, 2, 30, 4) == 160 + 4 * (60 + 8) + 480
    full = P.activation_bytes(36, 100, 2048, 256, 11008, 2, checkpointing=False)
    assert full == 36 * 139264 * 100
    ckpt = P.activation_bytes(36, 100, 2048, 256, 11008, 2, checkpointing=True)
    assert ckpt == 36 * 2048 * 2 * 100 + 139264 * 100
    assert ckpt < full / 10


def test_logits_term():
    assert P.logits_bytes(16, 1024, 151936, 2) == 16 * 1024 * 151936 * 16  # 2 + 4 + 4 + 4 + 2 bytes
    assert P.logits_bytes(2, 3, 5, 4) == 2 * 3 * 5 * 12


def test_micro_batches_and_tokens():
    assert P.micro_batch_sequences(64, 8, groups=8) == 64
    assert P.micro_batch_sequences(64, 8, groups=2) == 16  # the rank holds only two groups
    assert P.micro_batch_sequences(4, 8, groups=8) == 8  # at least one whole group
    assert P.training_tokens(16, 8, 100, 10, shared_prompt=False) == 16 * 110
    assert P.training_tokens(16, 8, 100, 10, shared_prompt=True) == 2 * 100 + 16 * 10


SHAPE = P.ModelShape(model_type="qwen2_5_vl", params=1_000_000, tower_params=200_000, lora_params=5_000, layers=4,
                     hidden=64, intermediate=128, heads=4, kv_heads=2, head_dim=16, vocab=1000, vision_layers=2,
                     vision_hidden=32, vision_intermediate=64)
BASE = dict(prompts_per_step=8, group_size=4, max_new_tokens=10, prompt_tokens=20, micro_batch_size=8)


def _terms(plan):
    return {t.name: t.bytes for t in plan.terms}


def test_full_finetune_fp32_with_reference():
    plan = P.plan_memory(SHAPE, dtype="float32", lora=False, freeze_vision=True, gradient_checkpointing=False,
                         kl_coef=0.1, **BASE)
    t = _terms(plan)
    trainable = 800_000  # the tower is frozen
    assert t["weights"] == 4_000_000 and t["reference model"] == 4_000_000
    assert t["optimizer (AdamW)"] == 2 * trainable * 4 and t["gradients"] == trainable * 4
    assert t["KV cache (rollout)"] == 2 * 4 * 2 * 16 * 30 * 32 * 4
    m = 8  # two groups of 4 per micro-batch; the prompt shared: 2*20 + 8*10 tokens
    assert t["activations"] == (4 * P.layer_activation_bytes_per_token(64, 32, 128, 4) * 120
                                + P.kv_cache_bytes(4, 2, 16, 20, m, 4))
    assert t["logits"] == m * 10 * 1000 * 12
    assert t["final norm (fp32)"] == 4 * 64 * 120
    assert "tower activations" not in t and "final save (merged copy)" not in t
    assert "media inputs" not in t and "tower inputs (frozen, checkpointed)" not in t  # no image tokens given
    persistent = t["weights"] + t["reference model"] + t["optimizer (AdamW)"]
    training = t["gradients"] + t["activations"] + t["logits"] + t["final norm (fp32)"]
    assert plan.peak_phase == "training" and plan.peak_bytes == persistent + training
    assert plan.biggest == max(("weights", "reference model", "optimizer (AdamW)", "gradients", "activations",
                                "logits", "final norm (fp32)"), key=t.get)
    assert plan.fits is None


def test_lora_bf16_checkpointing_fsdp():
    plan = P.plan_memory(SHAPE, dtype="bfloat16", lora=True, freeze_vision=True, gradient_checkpointing=True,
                         ranks=2, fsdp=True, kl_coef=0.1, gpu_memory=10**9, overhead=1000, **BASE)
    t = _terms(plan)
    assert "reference model" not in t  # the reference is the base model with the adapter off
    assert t["weights"] == 1_000_000  # P * 2 B / 2 shards
    assert t["optimizer (AdamW)"] == 2 * 5_000 * 4 // 2  # fp32 adapter (peft), sharded
    assert t["gradients"] == 5_000 * 4 // 2
    assert t["gathered weights (sampling)"] == 2_000_000 - 1_000_000
    assert t["KV cache (rollout)"] == 2 * 4 * 2 * 16 * 30 * 16 * 2  # 4 prompts per rank x 4
    # checkpointing scores the expanded sequences: 8 x (20 + 10) tokens
    assert t["activations"] == P.activation_bytes(4, 240, 64, 32, 128, 2, checkpointing=True)
    assert plan.settings["shared_prompt_forward"] is False
    assert t["runtime overhead"] == 1000
    assert plan.fits is True
    assert plan.step_peak_bytes <= plan.peak_bytes


def test_lora_final_save_copy_and_verdict():
    import dataclasses

    shape = dataclasses.replace(SHAPE, params=10_000_000)
    plan = P.plan_memory(shape, dtype="bfloat16", lora=True, freeze_vision=True, gradient_checkpointing=True,
                         gpu_memory=30_000_000, **BASE)
    t = _terms(plan)
    assert t["final save (merged copy)"] == 20_000_000
    assert t["gradients"] + t["activations"] + t["logits"] < 20_000_000
    assert plan.peak_phase == "save"
    assert plan.peak_bytes == t["weights"] + t["optimizer (AdamW)"] + 20_000_000
    assert plan.step_peak_bytes == (t["weights"] + t["optimizer (AdamW)"] + t["gradients"] + t["activations"]
                                    + t["logits"] + t["final norm (fp32)"])
    assert plan.fits is False  # 40.04 MB > 30 MB
    text = P.format_plan(plan)
    assert "does NOT fit" in text and f"biggest term: {plan.biggest}" in text


def test_vllm_share_and_trainable_tower():
    plan = P.plan_memory(SHAPE, dtype="bfloat16", lora=False, freeze_vision=False, gradient_checkpointing=False,
                         engine="vllm", vllm_gpu_memory_utilization=0.5, vllm_sleep_level=0, gpu_memory=10**8,
                         image_tokens=5, **BASE)
    t = _terms(plan)
    assert t["vLLM share"] == 5 * 10**7 and "KV cache (rollout)" not in t
    assert [x.phase for x in plan.terms if x.name == "vLLM share"] == ["persistent"]  # never sleeps
    assert t["optimizer (AdamW)"] == 2 * 1_000_000 * 2
    # a trainable tower: its layers over the micro-batch's prompts' patches (2 prompts x 5 tokens x 4 patches)
    assert t["tower activations"] == P.activation_bytes(2, 40, 32, 32, 64, 2, checkpointing=False)
    assert plan.biggest == "vLLM share"


def test_media_and_frozen_tower_terms_small_lora():
    """The small-lora case of benchmarks/plan_check.py by hand (bf16, LoRA, checkpointing, frozen tower): 8 prompts
    x 8 completions of 32 tokens after a 146-token prompt holding one 64-token image (256 patches of 3*2*14*14 =
    1176 values); the tower 8 blocks of width 256. Measured there (saved-tensor hooks, glibc mmap threshold pinned):
    the repeated fp32 pixel values (16384, 1176) + their bf16 copy, 9 saved (16384, 256) bf16 tower tensors, and one
    (64, 178, 512) fp32 final-norm copy."""
    import dataclasses

    shape = dataclasses.replace(SHAPE, hidden=512, vision_layers=8, vision_hidden=256, vision_patch_dim=1176)
    plan = P.plan_memory(shape, dtype="bfloat16", lora=True, freeze_vision=True, gradient_checkpointing=True,
                         prompts_per_step=8, group_size=8, max_new_tokens=32, prompt_tokens=146,
                         micro_batch_size=64, image_tokens=64)
    t = _terms(plan)
    # checkpointing: the expanded sequences, 64 copies of the image
    assert t["media inputs"] == 64 * 256 * 1176 * (4 + 2) == 115_605_504
    assert "tower inputs (frozen, checkpointed)" not in t  # mmrft.models.load.drop_tower_input_grads
    assert t["final norm (fp32)"] == 4 * 512 * 64 * 178 == 23_330_816
    assert "tower activations" not in t
    # fp32, prompt shared, trainable tower: one image per group, no dtype copy, the tower's activations instead
    plan = P.plan_memory(shape, dtype="float32", lora=False, freeze_vision=False, gradient_checkpointing=False,
                         prompts_per_step=8, group_size=8, max_new_tokens=32, prompt_tokens=146,
                         micro_batch_size=64, image_tokens=64)
    t = _terms(plan)
    assert t["media inputs"] == 8 * 256 * 1176 * 4
    assert "tower inputs (frozen, checkpointed)" not in t and "tower activations" in t


def test_bad_dtype_names_the_field():
    with pytest.raises(Exception, match="model.dtype"):
        P.plan_memory(SHAPE, dtype="int8", lora=False, freeze_vision=False, gradient_checkpointing=False, **BASE)


def _qwen2_5_vl_3b_tower() -> int:
    """Qwen2.5-VL's vision tower (out width 2048) by hand: patch embedding, 32 blocks, the 2x2 patch merger."""
    vh, vi, h = 1280, 3420, 2048
    block = (vh * 3 * vh + 3 * vh) + (vh * vh + vh) + 2 * (vh * vi + vi) + (vi * vh + vh) + 2 * vh
    merger = vh + (4 * vh * 4 * vh + 4 * vh) + (4 * vh * h + h)
    return 3 * 2 * 14 * 14 * vh + 32 * block + merger


def _qwen2_5_vl_3b_hand_count(vocab: int) -> int:
    """Qwen2.5-VL-3B's parameters from its published shapes, by hand."""
    h, inter, layers, kv = 2048, 11008, 36, 256
    attn = (h * h + h) + 2 * (h * kv + kv) + h * h  # q, k, v with biases; o without
    decoder = layers * (attn + 3 * h * inter + 2 * h) + h + vocab * h  # + final norm + (tied) embedding
    return decoder + _qwen2_5_vl_3b_tower()


class _Vocab:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def test_model_shape_counts_the_published_3b_exactly(tmp_path):
    from mmrft.models.sizes import build_real_config

    ids = {t: i for i, t in enumerate(["<|endoftext|>", "<|im_end|>", "<|image_pad|>", "<|video_pad|>",
                                       "<|vision_start|>", "<|vision_end|>"])}
    build_real_config("qwen2.5-vl-3b", _Vocab(151936), ids).save_pretrained(tmp_path)
    shape = P.model_shape(tmp_path, ["q_proj", "k_proj", "v_proj", "o_proj"], lora_r=8)
    assert shape.params == _qwen2_5_vl_3b_hand_count(151936)
    assert 3.7e9 < shape.params < 3.8e9  # the model card's 3.75 B
    assert shape.tower_params == _qwen2_5_vl_3b_tower()
    # LoRA r=8 on the decoder's q, k, v, o only (language_only): 8 * (in + out) per module
    assert shape.lora_params == 36 * 8 * ((2048 + 2048) + 2 * (2048 + 256) + (2048 + 2048))
    assert (shape.layers, shape.kv_heads, shape.head_dim, shape.vocab) == (36, 2, 128, 151936)
    assert (shape.vision_layers, shape.vision_hidden, shape.vision_intermediate) == (32, 1280, 3420)
    assert shape.vision_patch_dim == 3 * 2 * 14 * 14


def test_model_shape_matches_a_built_model(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir))
    shape = P.model_shape(tiny_model_dir)
    assert shape.params == sum(p.numel() for p in model.parameters())
    assert shape.tower_params == sum(p.numel() for n, p in model.named_parameters() if "visual" in n)
    assert shape.lora_params == 0
    proj = model.model.visual.patch_embed.proj  # the tower's width and its values per pixel patch, from the modules
    assert shape.vision_hidden == proj.out_channels
    assert shape.vision_patch_dim == proj.weight[0].numel()


def _cli(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "mmrft.cli", "plan", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_table_json_and_verdict(tmp_path, tiny_model_dir):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model:\n  path: {tiny_model_dir}\nalgorithm:\n  kl_coef: 0.0\n")
    r = _cli(str(cfg), "--gpu-memory", "80GB")
    assert r.returncode == 0, r.stderr
    assert "| weights | persistent |" in r.stdout and "fits in 74.51 GiB" in r.stdout and "biggest term:" in r.stdout
    r = _cli(str(cfg), "rollout.group_size=4", "--gpu-memory", "1MB", "--json")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["fits"] is False and out["settings"]["group_size"] == 4
    assert out["biggest"] in {t["name"] for t in out["terms"]}
    r = _cli(str(cfg), "--gpu-memory", "80XB")
    assert r.returncode == 2 and "80XB" in r.stderr

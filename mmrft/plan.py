"""The memory an RL run needs per rank, before launching it: `mmrft plan CONFIG [--gpus N --gpu-memory 80GB]`.

Pure arithmetic over the model's shapes and the config. The shapes come from `model.path`'s `config.json`: the
model is instantiated on the `meta` device (no weights loaded, no memory) and its parameters are counted exactly,
the vision/audio tower's separately (the family's tower keys) and the LoRA adapter's from the modules its targets
match. Every term is bytes on one rank; `b` is the bytes of `model.dtype` (4 fp32, 2 bf16/fp16).

Persistent (held for the whole run):
    weights          P * b / S                  P all parameters; S = ranks when trainer.fsdp, else 1
    reference        P * b / S                  a frozen copy, only when algorithm.kl_coef > 0 without LoRA
                                                (with LoRA the reference is the base model with the adapter off)
    optimizer        2 * T * bt / S             AdamW's two moments, kept in the trainable parameters' dtype: mmrft
                                                trains in model.dtype without fp32 master weights; T trainable
                                                parameters (LoRA adapter, or all but a frozen tower), bt their bytes
                                                (peft makes LoRA adapters fp32 under a bf16 model: bt = 4)
    vllm (sleep 0)   u * M                      rollout.engine=vllm never sleeping keeps its share u of the GPU, M
Rollout phase (sampling):
    kv cache         2 * L * kv * d * (p + t) * n * G * b      L layers, kv key/value heads of d dims, p prompt and
                                                t = max_new_tokens tokens, n prompts per rank, G group size
                                                (hf engine; vLLM's cache lives inside its share)
    gathered weights P * b * (1 - 1/S)          FSDP samples with the full weights gathered
    vllm (sleep>=1)  u * M                      vLLM's share, freed again while the policy trains
Training phase (one micro-batch of m sequences forward and backward):
    gradients        T * bt / S
    activations      per decoder layer and token, counting the tensors the Hugging Face Qwen2-style layer saves
                     for backward (two RMSNorms with their fp32 upcast, q/k/v before and after RoPE, the fused SDPA
                     inputs and output, the SwiGLU MLP's four intermediate tensors):
                         a(h, kv, I) = 2*(4 + b)*h + b*(6*h + 4*kv) + 4*b*I   bytes  (h hidden, kv = kv heads * d,
                                                                                      I intermediate size)
                     without checkpointing: L * a * N_tok; with it: L * h * b * N_tok (each layer's input) plus one
                     layer's a * N_tok recomputed during backward. N_tok = m * (p + t) (the expanded sequences;
                     always with checkpointing), or m/G * p + m * t when the prompt is computed once per group
                     (rollout.share_prompt_forward), plus the prompt's KV cache repeated G times. A fused attention
                     kernel is assumed: the eager one adds heads * s^2 * b per sequence and layer (Korthikanti et
                     al. 2022, "Reducing Activation Recomputation in Large Transformer Models", whose per-layer
                     34*s*B*h + 5*a*s^2*B this generalises to SwiGLU and grouped KV heads). A trainable tower adds
                     the same per-layer formula over its patches.
    final norm       4 * h * N_tok                the final RMSNorm's fp32 copy of the last hidden states, kept for
                                                backward (it runs over every token; only the logits are cut to t)
    logits           m * t * V * (b + 4 + 4 + 4 + b) for b < 4, m * t * V * 12 for fp32: the model's output, its
                     fp32 copy, the log-softmax kept for backward, and its gradient in fp32 and in the model dtype
    media inputs     i * x * D * (4 + b')           the images' pixel patches the forward takes: i images (m
                                                sequences' when the prompt is not shared - the processor's tensor
                                                repeated per sequence - else m/G), x = 4 * image tokens patches each
                                                (2x2 merge), D = channels * temporal patch * patch^2 (1176 for
                                                Qwen-VL) values in fp32, plus the tower's copy in the model dtype
                                                (b' = b, or 0 for fp32, where the cast copies nothing)
End of run (LoRA, unsharded):
    final save       P * b                      the adapter is merged into a deep copy of the model for `final/`
Peak = persistent + max(rollout, training, save phase) + overhead (the runtime: CUDA context and allocator slack on
a GPU, the Python/torch process on a CPU: `--overhead`).

The terms are live tensors. On a CPU, glibc's malloc keeps much of what torch frees in its heap (its mmap threshold
rises to the size of the last freed block, up to 32 MiB, so later tensors below that size come from the heap, whose
holes are not returned), so a process's peak RSS can sit well above the live peak: +1.3 GiB (2,538 against 1,229
MiB) on the bf16 checkpointed LoRA run of benchmarks/plan_check.py, which MALLOC_MMAP_THRESHOLD_=131072 removes.
That slack depends on the order of allocations, not on the shapes; it is not planned (docs/scaling.md, "Validation").
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

from mmrft.errors import ConfigError
from mmrft.models.shapes import ModelShape, estimated_image_tokens, model_shape

TEXT_TOKENS = 64  # the default prompt's text (chat scaffold and question) besides one image
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(text: str | int | float) -> int:
    """'80GB' -> 80e9 (decimal), '80GiB' or '80G' -> 80 * 2**30; a bare number is bytes."""
    if isinstance(text, (int, float)):
        return int(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).upper() not in _UNITS:
        raise ValueError(f"memory size {text!r}: expected a number with an optional unit (e.g. 80GB, 80GiB, 512MiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


# ------------------------------------------------------------------------------------------- the terms (pure)


def weights_bytes(params: int, dtype_bytes: int, shards: int = 1) -> int:
    """P * b / S: parameters held by one rank (S FSDP shards, 1 when replicated)."""
    return math.ceil(params * dtype_bytes / shards)


def gradient_bytes(trainable: int, dtype_bytes: int, shards: int = 1) -> int:
    """T * bt / S: one gradient per trainable parameter."""
    return math.ceil(trainable * dtype_bytes / shards)


def adamw_bytes(trainable: int, dtype_bytes: int, shards: int = 1) -> int:
    """2 * T * bt / S: AdamW's first and second moments, in the parameters' dtype (torch's AdamW)."""
    return math.ceil(2 * trainable * dtype_bytes / shards)


def kv_cache_bytes(layers: int, kv_heads: int, head_dim: int, tokens: int, sequences: int, dtype_bytes: int) -> int:
    """2 * L * kv * d * tokens * sequences * b: keys and values of every layer for every sequence's tokens."""
    return 2 * layers * kv_heads * head_dim * tokens * sequences * dtype_bytes


def layer_activation_bytes_per_token(hidden: int, kv_dim: int, intermediate: int, dtype_bytes: int) -> int:
    """a = 2*(4 + b)*h + b*(6*h + 4*kv) + 4*b*I: what one decoder layer saves for backward per token."""
    b = dtype_bytes
    return 2 * (4 + b) * hidden + b * (6 * hidden + 4 * kv_dim) + 4 * b * intermediate


def activation_bytes(layers: int, tokens: int, hidden: int, kv_dim: int, intermediate: int, dtype_bytes: int,
                     checkpointing: bool) -> int:
    """Without checkpointing L * a * N; with it L * h * b * N (layer inputs) + a * N (one layer recomputed)."""
    a = layer_activation_bytes_per_token(hidden, kv_dim, intermediate, dtype_bytes)
    if checkpointing:
        return layers * hidden * dtype_bytes * tokens + a * tokens
    return layers * a * tokens


def logits_bytes(sequences: int, completion_tokens: int, vocab: int, dtype_bytes: int) -> int:
    """m * t * V * (b + 4 + 4 + 4 + b) (b < 4) or m * t * V * 12 (fp32): output, fp32 copy, log-softmax, grads."""
    per = 12 if dtype_bytes >= 4 else dtype_bytes + 4 + 4 + 4 + dtype_bytes
    return sequences * completion_tokens * vocab * per


def final_norm_bytes(tokens: int, hidden: int) -> int:
    """4 * h * N: the final RMSNorm's fp32 copy of the last hidden states (every token, before the logits are cut)."""
    return 4 * hidden * tokens


def media_input_bytes(images: int, patches: int, patch_dim: int, dtype_bytes: int) -> int:
    """i * x * D * (4 + b'): the fp32 pixel patches of `images` images and the tower's copy in the model dtype (b' = b
    below fp32, 0 in fp32: no copy)."""
    return images * patches * patch_dim * (4 + (dtype_bytes if dtype_bytes < 4 else 0))


def micro_batch_sequences(micro_batch_size: int, group_size: int, groups: int) -> int:
    """Sequences in the largest micro-batch: whole groups, max(1, micro // G) of them, at most the rank's groups."""
    return min(max(1, micro_batch_size // group_size), max(groups, 1)) * group_size


def training_tokens(micro: int, group_size: int, prompt_tokens: int, new_tokens: int, shared_prompt: bool) -> int:
    """Tokens a training forward runs with gradients: m * (p + t) expanded, m/G * p + m * t sharing the prompt."""
    if shared_prompt:
        return (micro // group_size) * prompt_tokens + micro * new_tokens
    return micro * (prompt_tokens + new_tokens)


# ------------------------------------------------------------------------------------------- the plan


@dataclass
class Term:
    name: str
    phase: str  # persistent | rollout | training | save | overhead
    bytes: int
    formula: str


@dataclass
class Plan:
    terms: list[Term]
    peak_bytes: int
    peak_phase: str
    biggest: str
    gpu_memory: int | None
    fits: bool | None
    settings: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    step_peak_bytes: int = 0  # persistent + max(rollout, training) + overhead: the steps, without the final save

    def to_dict(self) -> dict:
        return asdict(self)


def plan_memory(shape: ModelShape, *, dtype: str, lora: bool, freeze_vision: bool, gradient_checkpointing: bool,
                ranks: int = 1, fsdp: bool = False, prompts_per_step: int, group_size: int, max_new_tokens: int,
                prompt_tokens: int, micro_batch_size: int, kl_coef: float = 0.0, share_prompt_forward: bool = True,
                engine: str = "hf", vllm_gpu_memory_utilization: float = 0.0, vllm_sleep_level: int = 1,
                gpu_memory: int | None = None, overhead: int = 0, image_tokens: int = 0) -> Plan:
    """Every term on one rank, the peak and whether it fits `gpu_memory` (None: not judged)."""
    if dtype not in DTYPE_BYTES:
        raise ConfigError(f"model.dtype: {dtype!r} is not one of {', '.join(DTYPE_BYTES)}")
    if ranks < 1:
        raise ValueError(f"--gpus: expected at least 1, got {ranks}")
    b = DTYPE_BYTES[dtype]
    s = ranks if fsdp and ranks > 1 else 1
    prompts = math.ceil(prompts_per_step / ranks)
    if lora:
        trainable, bt, what = shape.lora_params, 4 if b < 4 else b, "LoRA adapter (fp32)"
    else:
        trainable = shape.params - (shape.tower_params if freeze_vision else 0)
        bt, what = b, "all weights" + (" but the tower" if freeze_vision else "")
    shared = share_prompt_forward and not gradient_checkpointing and group_size > 1
    m = micro_batch_sequences(micro_batch_size, group_size, prompts)
    tokens = training_tokens(m, group_size, prompt_tokens, max_new_tokens, shared)
    kv_dim = shape.kv_heads * shape.head_dim
    t: list[Term] = [
        Term("weights", "persistent", weights_bytes(shape.params, b, s), f"P={shape.params:,} x {b} B / {s}"),
    ]
    if kl_coef > 0 and not lora:
        t.append(Term("reference model", "persistent", weights_bytes(shape.params, b, s), "P x b / S (kl_coef > 0)"))
    t.append(Term("optimizer (AdamW)", "persistent", adamw_bytes(trainable, bt, s),
                  f"2 x T={trainable:,} ({what}) x {bt} B / {s}"))
    vllm_share = int(vllm_gpu_memory_utilization * gpu_memory) if engine == "vllm" and gpu_memory else 0
    warnings = []
    if engine == "vllm":
        if not gpu_memory:
            warnings.append("rollout.engine=vllm: pass --gpu-memory to count vLLM's share")
        t.append(Term("vLLM share", "persistent" if vllm_sleep_level == 0 else "rollout", vllm_share,
                      f"rollout.vllm_gpu_memory_utilization={vllm_gpu_memory_utilization} x GPU memory"))
        kv_need = kv_cache_bytes(shape.layers, shape.kv_heads, shape.head_dim, prompt_tokens + max_new_tokens,
                                 prompts * group_size, b)
        room = vllm_share - weights_bytes(shape.params, b)
        if gpu_memory and room < kv_need:
            warnings.append(f"vLLM's share leaves {room / 2**30:.2f} GiB for its KV cache after its weights; a step's "
                            f"{prompts * group_size} sequences need {kv_need / 2**30:.2f} GiB (vLLM will queue them)")
    else:
        t.append(Term("KV cache (rollout)", "rollout",
                      kv_cache_bytes(shape.layers, shape.kv_heads, shape.head_dim, prompt_tokens + max_new_tokens,
                                     prompts * group_size, b),
                      f"2 x L={shape.layers} x kv={shape.kv_heads} x d={shape.head_dim} x "
                      f"({prompt_tokens}+{max_new_tokens}) x {prompts}x{group_size} seqs x {b} B"))
    if s > 1:
        t.append(Term("gathered weights (sampling)", "rollout", shape.params * b - weights_bytes(shape.params, b, s),
                      "P x b x (1 - 1/S)"))
    t.append(Term("gradients", "training", gradient_bytes(trainable, bt, s), f"T x {bt} B / {s}"))
    act = activation_bytes(shape.layers, tokens, shape.hidden, kv_dim, shape.intermediate, b, gradient_checkpointing)
    if shared:
        act += kv_cache_bytes(shape.layers, shape.kv_heads, shape.head_dim, prompt_tokens, m, b)
    t.append(Term("activations", "training", act,
                  f"{'checkpointed ' if gradient_checkpointing else ''}L={shape.layers} x {tokens} tokens "
                  f"(micro-batch {m} seqs{', prompt shared' if shared else ''})"))
    t.append(Term("final norm (fp32)", "training", final_norm_bytes(tokens, shape.hidden),
                  f"4 B x h={shape.hidden} x {tokens} tokens"))
    images = m // group_size if shared else m  # the expanded sequences carry one copy of the image each
    per_image = image_tokens * 4  # 2x2 patches per merged token
    if shape.vision_layers and image_tokens and shape.vision_patch_dim:
        t.append(Term("media inputs", "training", media_input_bytes(images, per_image, shape.vision_patch_dim, b),
                      f"{images} images x {per_image} patches x {shape.vision_patch_dim} x "
                      f"({4} + {b if b < 4 else 0}) B{'' if shared else ' (repeated per sequence)'}"))
    tower_frozen = freeze_vision or lora
    if not tower_frozen and shape.vision_layers:
        patches = images * per_image
        t.append(Term("tower activations", "training",
                      activation_bytes(shape.vision_layers, patches, shape.vision_hidden, shape.vision_hidden,
                                       shape.vision_intermediate, b, gradient_checkpointing),
                      f"{shape.vision_layers} tower layers x {patches} patches (trainable tower)"))
    t.append(Term("logits", "training", logits_bytes(m, max_new_tokens, shape.vocab, b),
                  f"{m} seqs x {max_new_tokens} x V={shape.vocab:,} x {12 if b >= 4 else 2 * b + 12} B"))
    if lora and s == 1:
        t.append(Term("final save (merged copy)", "save", weights_bytes(shape.params, b),
                      "P x b: the end-of-run save merges the adapter into a copy of the model"))
    if overhead:
        t.append(Term("runtime overhead", "overhead", overhead, "--overhead"))
    phase = {k: sum(x.bytes for x in t if x.phase == k)
             for k in ("persistent", "rollout", "training", "save", "overhead")}
    peak_phase = max(("rollout", "training", "save"), key=lambda k: phase[k])
    peak = phase["persistent"] + phase[peak_phase] + phase["overhead"]
    step_peak = phase["persistent"] + max(phase["rollout"], phase["training"]) + phase["overhead"]
    counted = [x for x in t if x.phase in ("persistent", peak_phase)]
    biggest = max(counted, key=lambda x: x.bytes).name
    settings = dict(dtype=dtype, lora=lora, freeze_vision=freeze_vision, gradient_checkpointing=gradient_checkpointing,
                    ranks=ranks, fsdp_shards=s, prompts_per_rank=prompts, group_size=group_size,
                    max_new_tokens=max_new_tokens, prompt_tokens=prompt_tokens, micro_batch_sequences=m,
                    training_tokens=tokens, shared_prompt_forward=shared, engine=engine, trainable_params=trainable,
                    shape=asdict(shape), phase_bytes=phase)
    fits = None if not gpu_memory else peak <= gpu_memory
    return Plan(t, peak, peak_phase, biggest, gpu_memory, fits, settings, warnings, step_peak)


def plan_from_config(cfg, *, gpus: int = 1, gpu_memory: int | None = None, overhead: int = 0,
                     prompt_tokens: int | None = None) -> Plan:
    """`plan_memory` for a loaded `mmrft.config.Config` (its model, rollout, algorithm and trainer sections)."""
    m, ro, algo = cfg.model, cfg.rollout, cfg.algorithm
    shape = model_shape(m.path, m.lora.target_modules if m.lora.enabled else None, m.lora.r if m.lora.enabled else 0,
                        m.lora.language_only)
    image = estimated_image_tokens(m.path, cfg.data.max_pixels)
    p = prompt_tokens if prompt_tokens is not None else TEXT_TOKENS + image
    return plan_memory(
        shape, dtype=m.dtype, lora=m.lora.enabled, freeze_vision=m.freeze_vision,
        gradient_checkpointing=m.gradient_checkpointing, ranks=gpus, fsdp=cfg.trainer.fsdp,
        prompts_per_step=ro.prompts_per_step, group_size=ro.group_size, max_new_tokens=ro.max_new_tokens,
        prompt_tokens=p, micro_batch_size=algo.micro_batch_size, kl_coef=algo.kl_coef,
        share_prompt_forward=ro.share_prompt_forward, engine=ro.engine,
        vllm_gpu_memory_utilization=ro.vllm_gpu_memory_utilization, vllm_sleep_level=ro.vllm_sleep_level,
        gpu_memory=gpu_memory, overhead=overhead, image_tokens=image)


def _gib(n: int) -> str:
    return f"{n / 2**30:,.2f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def format_plan(plan: Plan) -> str:
    """The plan as a Markdown table, the peak, and the verdict naming the biggest term."""
    rows = ["| term | phase | per rank | share of peak | formula |", "|---|---|---:|---:|---|"]
    for x in plan.terms:
        in_peak = x.phase in ("persistent", "overhead", plan.peak_phase)
        share = f"{100 * x.bytes / plan.peak_bytes:.1f}%" if in_peak and plan.peak_bytes else "(other phase)"
        rows.append(f"| {x.name} | {x.phase} | {_gib(x.bytes)} | {share} | {x.formula} |")
    s = plan.settings
    lines = rows + ["", f"peak per rank: {_gib(plan.peak_bytes)} (during the {plan.peak_phase} phase; {s['ranks']} "
                    f"rank(s), FSDP shards {s['fsdp_shards']}, prompt {s['prompt_tokens']} tokens)",
                    f"biggest term: {plan.biggest}"]
    if plan.fits is not None:
        verdict = "fits" if plan.fits else "does NOT fit"
        lines.append(f"{verdict} in {_gib(plan.gpu_memory)} per GPU "
                     f"({100 * plan.peak_bytes / plan.gpu_memory:.0f}% used)")
    lines += [f"warning: {w}" for w in plan.warnings]
    return "\n".join(lines)

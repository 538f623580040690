"""Child process of `rl_step.py`: the physical floor of one GRPO step, with the bare model and nothing else.

    python benchmarks/rl_step_floor.py SPEC.json RESULT.json

What any framework must do for the step `rl_step.py` times, written with plain `transformers` / `torch` calls on the
same model, processor, prompts and settings, and nothing more (no reward, no advantage estimator, no logging,
metrics, checkpoints, reward worker or config machinery):

1. encode: load the step's P images from disk, the same chat messages (`mmrft.data.prompts.build_messages`, format
   r1) through the processor's chat template, one processor call for the P prompts (left padded);
2. generate: one `model.generate` call for all P x G completions (mmrft also samples a step's P x G rows in one
   call): sampling, temperature 1, top_p 1, top_k 0, at most T new tokens, the media placeholder ids suppressed,
   stopping at the model's end tokens (no `min_new_tokens`: lengths are the model's own, as in mmrft);
3. update: one forward over the same prompt + completion tokens with gradients, the completion tokens' log-probs,
   the loss -(logp * adv * mask).sum() / (P*G*T) (a fixed zero-mean advantage per group: the loss has Dr. GRPO's
   shape, the rewards are not computed), backward, gradient clipping at 1.0 and one `torch.optim.AdamW` step.

Two variants (`spec["floor_mode"]`):

- `shared` (contender `floor`): the prompts' work done once per group, which is the least work the step needs and
  the same computation mmrft does by default: each prompt (and its image) is prefilled once and its KV cache
  repeated G times before `generate` continues (`rollout.share_prefill`); in the update the P prompts go through the
  model once and the G completions continue from their repeated cache (`rollout.share_prompt_forward`). Positions
  come from the model's own `get_rope_index` (through `mmrft.models.positions`, three short helpers).
- `plain` (contender `floor-plain`): the naive calls, `generate(..., num_return_sequences=G)` and one forward over
  the P*G full sequences (the prompt and its image computed G times), what mmrft does with both switches off.

Per step: seconds (encode + generate + update), the split (rollout = encode + generate, prepare = masks and
advantages, update), generated tokens, the longest completion (the number of decode steps), the rows drawn.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

T_START = time.perf_counter()

from rl_step import rusage_mb, write_json  # noqa: E402  (benchmarks/ is this script's directory)

MODES = ("shared", "plain")


def _end_mask(ids, eos_ids: list[int]):
    """1 on every completion token through the first end token, and whether each row ran out of tokens."""
    import torch

    is_end = torch.zeros_like(ids, dtype=torch.bool)
    for e in eos_ids:
        is_end |= ids == e
    ended = is_end.any(dim=1)
    first = torch.where(ended, is_end.int().argmax(dim=1), torch.full_like(ended, ids.shape[1], dtype=torch.long))
    mask = (torch.arange(ids.shape[1]).unsqueeze(0) <= first.unsqueeze(1)).float()
    return mask, ~ended


def _expand_inputs(inputs: dict, g: int) -> dict:
    """The P prompts' processor outputs repeated G times each, prompt-major (row i belongs to prompt i // G):
    per-token tensors row by row, each image's patches (`pixel_values`, one chunk of grid t*h*w rows per image,
    one image per prompt here) and its grid."""
    import torch

    out = {k: v.repeat_interleave(g, dim=0) for k, v in inputs.items() if k not in ("pixel_values", "image_grid_thw")}
    if "pixel_values" in inputs:
        sizes = inputs["image_grid_thw"].prod(dim=-1).tolist()
        chunks = torch.split(inputs["pixel_values"], sizes)
        out["pixel_values"] = torch.cat([c for c in chunks for _ in range(g)])
        out["image_grid_thw"] = inputs["image_grid_thw"].repeat_interleave(g, dim=0)
    return out


def main(spec_path: str, result_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    mode = spec.get("floor_mode", "shared")
    if mode not in MODES:
        raise SystemExit(f"floor_mode {mode!r} is not one of {MODES}")
    import torch

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    from PIL import Image
    from transformers import AutoModelForMultimodalLM

    from mmrft.data.prompts import build_messages
    from mmrft.data.sources import load_samples
    from mmrft.models.load import load_processor, media_token_ids
    from mmrft.models.positions import continue_positions, prompt_positions, reusing_cache

    p, g, t_max = spec["prompts"], spec["group"], spec["max_new_tokens"]
    total = spec["warmup"] + spec["steps"]
    samples = load_samples(spec["data"], check_images=False)
    # AutoProcessor, left padding (mmrft's loader only adds the image-only processor fallback for no torchvision)
    processor = load_processor(spec["model"])
    model = AutoModelForMultimodalLM.from_pretrained(spec["model"], dtype=torch.float32)
    tok = processor.tokenizer
    gen_eos = model.generation_config.eos_token_id
    eos_ids = [int(e) for e in (gen_eos if isinstance(gen_eos, list) else [gen_eos or tok.eos_token_id])]
    gen_kwargs = dict(do_sample=True, temperature=spec["temperature"], top_p=1.0, top_k=0, max_new_tokens=t_max,
                      suppress_tokens=media_token_ids(processor, model), eos_token_id=eos_ids,
                      pad_token_id=tok.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    adv_gen = torch.Generator().manual_seed(spec["seed"])

    def encode(rows: list[int]) -> dict:
        images = [Image.open(samples[i].images[0]).convert("RGB") for i in rows]
        texts = [processor.apply_chat_template(build_messages(samples[i].prompt, 1, fmt="r1"),
                                               add_generation_prompt=True, tokenize=False) for i in rows]
        inputs = processor(text=texts, images=images, padding=True, return_tensors="pt")
        return {k: v for k, v in dict(inputs).items() if isinstance(v, torch.Tensor)}

    @torch.no_grad()
    def generate(inputs: dict) -> torch.Tensor:
        model.eval()
        try:
            if mode == "plain":
                return model.generate(**inputs, num_return_sequences=g, **gen_kwargs)
            # prefill each prompt once (all but its last token, which `generate` starts from), repeat the cache
            head = {k: inputs[k][:, :-1] for k in ("input_ids", "attention_mask", "mm_token_type_ids") if k in inputs}
            media = {k: v for k, v in inputs.items() if k not in head}
            pos, deltas = prompt_positions(model, inputs)
            with reusing_cache():
                out = model(**head, **media, position_ids=pos[..., :-1], use_cache=True, logits_to_keep=1)
                cache = out.past_key_values
                cache.batch_repeat_interleave(g)
                if deltas is not None:  # Qwen-VL's generate continues M-RoPE positions from the stored deltas
                    model.model.rope_deltas = deltas.repeat_interleave(g, dim=0)
                expanded = {k: inputs[k].repeat_interleave(g, dim=0) for k in head}
                return model.generate(**expanded, past_key_values=cache, **gen_kwargs)
        finally:
            model.train()

    def completion_logits(inputs: dict, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[P*G, T, V] outputs predicting each completion token, with gradients."""
        t = ids.shape[1]
        if mode == "plain":
            full = _expand_inputs(inputs, g)
            full["input_ids"] = torch.cat([full["input_ids"], ids], dim=1)
            full["attention_mask"] = torch.cat([full["attention_mask"], mask.long()], dim=1)
            if "mm_token_type_ids" in full:
                full["mm_token_type_ids"] = torch.cat([full["mm_token_type_ids"], torch.zeros_like(ids)], dim=1)
            return model(**full, use_cache=False, logits_to_keep=t + 1).logits[:, -(t + 1):-1]
        pos, _ = prompt_positions(model, inputs)
        with reusing_cache():
            out = model(**inputs, position_ids=pos, use_cache=True, logits_to_keep=1)
            cache = out.past_key_values
            cache.batch_repeat_interleave(g)
            first = out.logits[:, -1:].repeat_interleave(g, dim=0)
            if t == 1:
                return first
            att = torch.cat([inputs["attention_mask"].repeat_interleave(g, dim=0), mask[:, :-1].long()], dim=1)
            cont = continue_positions(pos, t - 1).repeat_interleave(g, dim=-2)
            rest = model(input_ids=ids[:, :-1], attention_mask=att, position_ids=cont, past_key_values=cache,
                         use_cache=True)
        return torch.cat([first, rest.logits], dim=1)

    model.train()
    steps = []
    first_ids, first_start = None, None
    for k in range(1, total + 1):
        rows = spec["order"][k - 1]
        t0 = time.perf_counter()
        first_start = first_start or t0
        inputs = encode(rows)
        seqs = generate(inputs)
        t1 = time.perf_counter()
        prompt_len = inputs["input_ids"].shape[1]
        ids = seqs[:, prompt_len:]
        if ids.shape[1] == 0:
            ids = seqs.new_full((seqs.shape[0], 1), tok.pad_token_id)
        mask, truncated = _end_mask(ids, eos_ids)
        ids = torch.where(mask.bool(), ids, torch.full_like(ids, tok.pad_token_id))
        adv = torch.randn(p, g, generator=adv_gen)
        adv = (adv - adv.mean(dim=1, keepdim=True)).reshape(-1, 1)
        t2 = time.perf_counter()
        logits = completion_logits(inputs, ids, mask)
        logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
        loss = -(logp * adv * mask).sum() / (p * g * t_max)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t3, c3 = time.perf_counter(), time.process_time()
        lengths = mask.sum(dim=1)
        if first_ids is None:
            first_ids = inputs["input_ids"][0][inputs["attention_mask"][0].bool()].tolist()
        steps.append({
            "step": k, "warmup": k <= spec["warmup"], "step_s": t3 - t0,
            "interval_s": t3 - steps[-1]["end"] if steps else None, "end": t3,
            "cpu_interval_s": c3 - steps[-1]["cpu_end"] if steps else None, "cpu_end": c3,
            "rollout_s": t1 - t0, "reward_s": 0.0, "prepare_s": t2 - t1, "update_s": t3 - t2,
            "reward_mean": None, "completion_length_mean": float(lengths.mean()),
            "completion_length_max": int(lengths.max()), "truncated": float(truncated.float().mean()),
            "tokens": int(lengths.sum()), "loss": float(loss.detach()),
        })
    for s in steps:
        s.pop("end")
        s.pop("cpu_end")
    write_json(result_path, {
        "framework": "floor" if mode == "shared" else "floor-plain", "floor_mode": mode, "steps": steps,
        "prompt_rows": [spec["order"][k] for k in range(total)], "rusage_mb": rusage_mb(),
        "torch_threads": torch.get_num_threads(), "first_prompt_ids": first_ids,
        "startup_s": first_start - T_START,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

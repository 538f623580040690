"""The turns of a multi-turn conversation after its prompt, as token sequences the model was trained on: a tool
turn (its text and images, through the model's chat template and processor) and a supervised trajectory (assistant
turns to learn, tool turns to read), for the multi-turn rollout loop (`mmrft.rollout.multiturn`) and SFT alike."""

from __future__ import annotations

import re

import torch

from mmrft.data.collate import PER_TOKEN_KEYS
from mmrft.data.media import load_image
from mmrft.data.schema import Sample

TOKEN_KEYS = ("input_ids", "attention_mask", *PER_TOKEN_KEYS)
_SENTINEL = "\u0000MMRFT-TURN\u0000"


def tool_turn_text(processor, text: str, n_images: int) -> str:
    """What follows an assistant turn's end-of-turn token when a tool answers with `text` and `n_images` images,
    up to the next assistant turn's header, as the model's chat template writes it (the `tool` role; a template
    that refuses that role gets the answer as a `user` turn, the documented fallback).

    Found by rendering a short conversation with and without the tool turn: the template decides every separator,
    so the token sequence is the one the model would see in a conversation it was trained on."""
    tok = processor.tokenizer
    eos = tok.decode([tok.eos_token_id]) if tok.eos_token_id is not None else ""
    head = [{"role": "user", "content": [{"type": "text", "text": "?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": _SENTINEL}]}]
    before = processor.apply_chat_template(head, tokenize=False)
    for role in ("tool", "user"):
        try:
            after = processor.apply_chat_template(head + _tool_messages(processor, role, text, n_images),
                                                  tokenize=False, add_generation_prompt=True)
            break
        except Exception:  # noqa: BLE001 - a template that raises on the role: try the fallback
            if role == "user":
                raise
    tail = before[before.index(_SENTINEL) + len(_SENTINEL):]  # the assistant turn's end, e.g. "<|im_end|>\n"
    if eos and tail.startswith(eos):  # the generated turn ends with the end-of-turn token already
        tail = tail[len(eos):]
    return tail + after[len(before):]


_RESPONSE = re.compile(r"<tool_response>\n(.*?)\n</tool_response>", re.DOTALL)


def _tool_messages(processor, role: str, text: str, n_images: int) -> list[dict]:
    """The tool answer as messages. Text made of `<tool_response>` blocks (`ToolEnvironment`'s, one per call) goes to
    a template that wraps tool messages in those tags itself (Qwen2.5, Qwen3, Qwen3-VL) as one unwrapped `tool`
    message per call, so it is not wrapped twice; the images go with the last. Otherwise one message as written."""
    blocks = _RESPONSE.findall(text)
    whole = "\n".join(f"<tool_response>\n{b}\n</tool_response>" for b in blocks) == text  # nothing else in it
    if role == "tool" and blocks and whole and template_wraps_tool_responses(processor):
        messages = [{"role": "tool", "content": [{"type": "text", "text": b}]} for b in blocks]
        messages[-1]["content"] = [{"type": "image"} for _ in range(n_images)] + messages[-1]["content"]
        return messages
    return [{"role": role, "content": [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}]}]


def template_wraps_tool_responses(processor) -> bool:
    """Whether the chat template writes a `tool` message inside `<tool_response>` tags itself."""
    probe = [{"role": "user", "content": [{"type": "text", "text": "?"}]},
             {"role": "assistant", "content": [{"type": "text", "text": "!"}]},
             {"role": "tool", "content": [{"type": "text", "text": _SENTINEL}]}]
    try:
        text = processor.apply_chat_template(probe, tokenize=False)
    except Exception:  # noqa: BLE001 - a template without the tool role
        return False
    return f"<tool_response>\n{_SENTINEL}" in text or f"<tool_response>{_SENTINEL}" in text


def encode_tool_turn(processor, text: str, images: list) -> tuple[list[int], dict[str, list[int]], dict]:
    """(token ids, per-token keys, media tensors) of a tool turn through the processor, so its image placeholders
    expand to the features of `images`."""
    turn = tool_turn_text(processor, text, len(images))
    kwargs = {"images": [list(images)]} if images else {}
    out = processor(text=[turn], return_tensors="pt", add_special_tokens=False, **kwargs)
    out = {k: v for k, v in dict(out).items() if isinstance(v, torch.Tensor)}
    ids = out["input_ids"][0].tolist()
    keys = {k: out[k][0].tolist() for k in PER_TOKEN_KEYS if k in out}
    media = {k: v for k, v in out.items() if k not in TOKEN_KEYS}
    return ids, keys, media


def encode_trajectory(processor, sample: Sample) -> tuple[list[int], list[float], dict[str, list[int]], dict]:
    """A supervised trajectory's turns after the prompt (`Sample.trajectory`) as (token ids, loss mask, per-token
    keys, media tensors): each assistant turn's text and its end-of-turn token with loss 1, each tool turn through
    `encode_tool_turn` (its images loaded) with loss 0."""
    tok = processor.tokenizer
    ids: list[int] = []
    loss: list[float] = []
    keys: dict[str, list[int]] = {}
    media: dict[str, torch.Tensor] = {}
    for turn in sample.trajectory:
        if turn["role"] == "assistant":
            part = tok(turn["content"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            part_keys: dict[str, list[int]] = {}
            weight = 1.0
        else:
            part, part_keys, part_media = encode_tool_turn(processor, turn["content"],
                                                           [load_image(ref) for ref in turn.get("images", [])])
            for k, v in part_media.items():
                media[k] = torch.cat([media[k], v]) if k in media else v
            weight = 0.0
        for k in set(keys) | set(part_keys):
            keys.setdefault(k, [0] * len(ids))
            keys[k] += part_keys.get(k, [0] * len(part))
        ids += part
        loss += [weight] * len(part)
    return ids, loss, keys, media

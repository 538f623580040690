"""`LocalJudge` (kind `local`): a generative judge run in process from a local checkpoint directory.

Any image-text-to-text family mmrft loads (`mmrft.models.load.load_policy`: the same processor, the same Auto
class, no remote code, local files only) answers the judge prompt (`mmrft.judges.prompts`, images included through
the processor's chat template), greedily, in batches; the verdict parser (`mmrft.judges.verdicts`) turns each reply
into a score in [0, 1].

Configuration (`rewards.judges.<name>`, kind `local`):

    path: /models/Qwen2.5-VL-7B-Instruct   # a local checkpoint directory
    device: cpu                  # or cuda, cuda:1, auto (cuda when available)
    dtype: float32               # float32 | bfloat16 | float16
    batch_size: 8                # prompts per `generate` call (left padded)
    max_new_tokens: 64
    template: correctness        # a built-in template name or a template string (see prompts.py)
    verdict: yes_no              # default: the template's own parser (yes_no for custom templates)
    verdict_options: {}
    system: null                 # an optional system message (None: the chat template's default)
    generation_kwargs: {}        # more `generate` keywords, e.g. {suppress_tokens: [...]}; they override the
                                 # judge's own (greedy, media placeholder tokens suppressed, end/pad tokens)

The model is in eval mode, without gradients, and generates greedily (`do_sample=False`) with the media placeholder
tokens suppressed, as mmrft's rollouts do, stopping at the checkpoint's end-of-turn token. The reply is the text
before the first end token, special tokens dropped. A request whose prompt cannot be built (a missing gold/rubric,
an unreadable image) or whose reply the parser cannot read gets `JudgeResult(score=None, error=...)`; when a whole
batch fails (e.g. out of memory) each of its items gets the error, logged with its traceback. `latency_s` is the
time of the item's batch. Calls are serialised by a lock (one model, one `generate` at a time); `close()` frees the
model. A checkpoint that cannot be loaded raises `JudgeUnavailable` when the judge is built.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch

from mmrft.config import ModelConfig
from mmrft.data.collate import processor_media_kwargs
from mmrft.judges.base import JUDGE_KINDS, JudgeRequest, JudgeResult, JudgeUnavailable, score_in_batches
from mmrft.judges.prompts import TEMPLATE_VERDICTS, build_messages, reject_unknown_options, resolve_template
from mmrft.judges.verdicts import VerdictError, make_verdict, quote
from mmrft.models.load import DTYPES, load_policy, media_token_ids, resolve_device

__all__ = ["LocalJudge", "load_judge_model"]

log = logging.getLogger("mmrft.judges")

_OPTIONS = ("path", "device", "dtype", "batch_size", "max_new_tokens", "template", "verdict", "verdict_options",
            "system", "generation_kwargs")


def load_judge_model(kind: str, name: str, path: Optional[str], device: str, dtype: str):
    """(model, processor, device) loaded as `load_policy` loads a policy, in eval mode without gradients;
    `JudgeUnavailable` naming the judge and the path when it cannot be loaded. Shared with the reward models."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"judge {name!r} (kind {kind}): option path is required (a local checkpoint directory)")
    if dtype not in DTYPES:
        raise ValueError(f"judge {name!r} (kind {kind}): option dtype must be one of {', '.join(DTYPES)}, "
                         f"got {dtype!r}")
    try:
        dev = resolve_device(str(device))
    except RuntimeError as e:
        raise ValueError(f"judge {name!r} (kind {kind}): option device {device!r} is not a torch device: {e}") from None
    try:
        model, processor = load_policy(ModelConfig(path=path, dtype=dtype), dev)
    except Exception as e:  # a missing directory (ConfigError), bad files, an unusable device, ...
        raise JudgeUnavailable(f"judge {name!r} (kind {kind}): cannot load the model at {path}: {e}") from e
    model.eval()
    model.requires_grad_(False)
    return model, processor, dev


def _check_int(kind: str, name: str, option: str, value: Any, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"judge {name!r} (kind {kind}): option {option} must be an integer >= {low}, got {value!r}")
    return value


@JUDGE_KINDS.register("local")
class LocalJudge:
    """A generative judge in process (see the module docstring for the options and behaviour)."""

    kind = "local"

    def __init__(
        self,
        name: str,
        *,
        path: Optional[str] = None,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 8,
        max_new_tokens: int = 64,
        template: str = "correctness",
        verdict: Optional[str] = None,
        verdict_options: Optional[Mapping[str, Any]] = None,
        system: Optional[str] = None,
        generation_kwargs: Optional[Mapping[str, Any]] = None,
        **unknown: Any,
    ) -> None:
        self.name = name
        reject_unknown_options(self.kind, name, unknown, _OPTIONS)
        self.batch_size = _check_int(self.kind, name, "batch_size", batch_size)
        self.max_new_tokens = _check_int(self.kind, name, "max_new_tokens", max_new_tokens)
        if generation_kwargs is not None and not isinstance(generation_kwargs, Mapping):
            raise ValueError(f"judge {name!r} (kind local): option generation_kwargs must be a mapping, "
                             f"got {generation_kwargs!r}")
        self.template = resolve_template(template)
        self.verdict_name = verdict if verdict is not None else TEMPLATE_VERDICTS.get(template, "yes_no")
        self._verdict = make_verdict(self.verdict_name, verdict_options, judge=name)
        self.system = system
        self.model, self.processor, self.device = load_judge_model(self.kind, name, path, device, dtype)
        self.path = path
        tok = self.processor.tokenizer
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        eos = gen_eos if isinstance(gen_eos, list) else [gen_eos if gen_eos is not None else tok.eos_token_id]
        self.eos_ids = [int(e) for e in eos if e is not None]
        self.pad_id = tok.pad_token_id
        suppress = media_token_ids(self.processor, self.model)  # a sampled placeholder breaks the next forward
        self.generation_kwargs: dict[str, Any] = dict(max_new_tokens=self.max_new_tokens, do_sample=False,
                                                      suppress_tokens=suppress or None, eos_token_id=self.eos_ids,
                                                      pad_token_id=self.pad_id)
        self.generation_kwargs.update({str(k): _plain(v) for k, v in (generation_kwargs or {}).items()})
        self._lock = threading.Lock()

    # -- scoring --------------------------------------------------------------------------------------------------

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        """One result per request, in order; never raises for an item."""
        if self.model is None:
            raise RuntimeError(f"judge {self.name!r} is closed")
        return score_in_batches(
            self.name, requests, self.batch_size,
            lambda request, cache: build_messages(request, self.template, self.system, image_cache=cache),
            self.generate, self._verdict_result, "prompt: cannot build the judge prompt", "generation")

    def _verdict_result(self, reply: str, latency: float) -> JudgeResult:
        try:
            return JudgeResult(score=float(self._verdict(reply)), raw=reply, latency_s=latency)
        except VerdictError as e:
            error = f"verdict: parser {self.verdict_name!r} could not read the reply: {e}"
        except Exception as e:  # a user parser's bug must not take the batch down
            error = f"verdict: parser {self.verdict_name!r} failed: {type(e).__name__}: {e} (reply {quote(reply)})"
        return JudgeResult(score=None, raw=reply, error=error, latency_s=latency)

    def prompt_inputs(self, messages_batch: list[list[dict]]) -> dict[str, torch.Tensor]:
        """The processor's inputs (left padded, on the judge's device) for a batch of `build_messages` outputs: each
        conversation through the chat template, ready for the assistant's turn, with its images."""
        texts = [self.processor.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
                 for m in messages_batch]
        images = [[part["image"] for message in m if isinstance(message["content"], list)
                   for part in message["content"] if part.get("type") == "image"] for m in messages_batch]
        inputs = self.processor(text=texts, padding=True, return_tensors="pt",
                                **processor_media_kwargs(images, [], []))
        return {k: v.to(self.device) for k, v in dict(inputs).items() if isinstance(v, torch.Tensor)}

    def generate(self, messages_batch: list[list[dict]]) -> list[str]:
        """The judge model's greedy reply to each conversation (text before the first end token)."""
        inputs = self.prompt_inputs(messages_batch)
        with self._lock, torch.no_grad():
            out = self.model.generate(**inputs, **self.generation_kwargs)
        new = out[:, inputs["input_ids"].shape[1]:].tolist()
        replies = []
        for ids in new:
            end = next((k for k, t in enumerate(ids) if t in self.eos_ids), len(ids))
            replies.append(self.processor.tokenizer.decode(ids[:end], skip_special_tokens=True))
        return replies

    def close(self) -> None:
        """Free the model (and the GPU memory it held)."""
        if self.model is None:
            return
        self.model = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def __enter__(self) -> "LocalJudge":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalJudge(name={self.name!r}, path={self.path!r}, verdict={self.verdict_name!r})"


def _plain(value: Any) -> Any:
    """Config containers (OmegaConf's) -> plain Python values for `generate`."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value

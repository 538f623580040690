"""Reward models: networks that return a scalar per completion. Two judge kinds.

`reward_model` (text): a local `AutoModelForSequenceClassification` checkpoint with one label (a Bradley-Terry
reward model such as Skywork-Reward or an ArmoRM-style head exported to one score) and its tokenizer. The input is
the tokenizer's chat template over `[user: question, assistant: completion]` when it has one, else
`"question\\n\\ncompletion"`; images are not seen. The score is the model's logit for the sequence (transformers
pools the last non-padding token); padding is on the right, so a batched score equals the unbatched one.

`vl_reward_model`: a vision-language reward model, an image-text-to-text backbone plus a scalar head reading the
last token of (images + question + completion): `mmrft.models.value.ValueModel`, loaded by
`mmrft.models.value.load_critic`. A directory `ValueModel.save` wrote, a PPO critic checkpoint of mmrft included, is
a valid VL reward model: backbone and processor by `from_pretrained`, the head from `value_head.safetensors` (which
must be there: a fresh head would score noise). The prompt is the policy's own chat template over the user turn
(images, then the question; `prompt_format: r1` adds mmrft's reasoning-format instruction as the policy saw it, for a
critic trained on such prompts), ready for the assistant turn, followed by the completion text (without an
end-of-turn token). The score is the head's value at the completion's last token: for a PPO critic, the value of the
state that predicts the end of the answer, the last one its value loss trains.

Options (both kinds): `path` (required), `device` (cpu | cuda | auto | ...), `dtype` (float32 | bfloat16 |
float16), `batch_size` (default 8), `normalize` (none | running), `eps` (1e-6). `reward_model` also takes
`max_length` (truncate inputs to this many tokens, from the left so the completion's end is kept; default: no
truncation); `vl_reward_model` also takes `system` (a system message) and `prompt_format` (plain | r1).

`normalize: running` standardises every score by the running mean and standard deviation of all scores the judge
has seen so far (Welford's algorithm, population standard deviation): for each item in request order, the raw score
x first updates the statistics, then the returned score is (x - mean) / (std + eps). The first item therefore scores
0. Items are taken one by one even inside a batch, so batching does not change the scores. A raw score that is not
finite is an error and does not enter the statistics. `running_stats()` returns the count, mean and std.

Items whose input cannot be built (an unreadable image) get `JudgeResult(score=None, error=...)`; a batch that fails
as a whole gives each of its items the error (logged with the traceback). Weights are read with `from_pretrained`
(the directory must hold `*.safetensors` weights: a checkpoint with pickled `.bin` weights only is refused) and the
head with safetensors. A model that cannot be loaded raises `JudgeUnavailable` when the judge is built.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import torch

from mmrft.judges.base import JUDGE_KINDS, JudgeRequest, JudgeResult, JudgeUnavailable, score_in_batches
from mmrft.judges.prompts import load_images, reject_unknown_options
from mmrft.models.load import DTYPES, resolve_device

__all__ = ["RewardModelJudge", "VLRewardModelJudge", "RunningNorm", "NORMALIZE"]

log = logging.getLogger("mmrft.judges")

NORMALIZE = ("none", "running")
PROMPT_FORMATS = ("plain", "r1")


def _require_safetensors(path: str) -> None:
    if not any(Path(path).glob("*.safetensors")):
        raise OSError("no *.safetensors weights in the directory (pickled .bin weights are not loaded)")


class RunningNorm:
    """Welford's running mean and population variance; `__call__(x)` adds x, then returns (x - mean) / (std + eps)."""

    def __init__(self, eps: float = 1e-6) -> None:
        self.eps = eps
        self.count = 0
        self.mean = 0.0
        self._m2 = 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self._m2 / self.count) if self.count else 0.0

    def __call__(self, x: float) -> float:
        self.count += 1
        delta = x - self.mean
        self.mean += delta / self.count
        self._m2 += delta * (x - self.mean)
        return (x - self.mean) / (self.std + self.eps)


class _ScalarJudge:
    """What both reward-model kinds share: options, batching, per-item errors, normalisation, closing."""

    kind = "?"
    options: tuple[str, ...] = ("path", "device", "dtype", "batch_size", "normalize", "eps")

    def _setup(self, name: str, path: Optional[str], device: str, dtype: str, batch_size: int, normalize: str,
               eps: float, unknown: dict) -> None:
        self.name = name
        reject_unknown_options(self.kind, name, unknown, self.options)
        where = f"judge {name!r} (kind {self.kind})"
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise ValueError(f"{where}: option path is required (a local checkpoint directory)")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"{where}: option batch_size must be an integer >= 1, got {batch_size!r}")
        if normalize not in NORMALIZE:
            raise ValueError(f"{where}: option normalize must be one of {', '.join(NORMALIZE)}, got {normalize!r}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"{where}: option eps must be a number > 0, got {eps!r}")
        if dtype not in DTYPES:
            raise ValueError(f"{where}: option dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        try:
            self.device = resolve_device(str(device))
        except RuntimeError as e:
            raise ValueError(f"{where}: option device {device!r} is not a torch device: {e}") from None
        self.path, self.dtype, self.batch_size, self.normalize = str(path), dtype, batch_size, normalize
        self.norm = RunningNorm(float(eps)) if normalize == "running" else None
        self._lock = threading.Lock()
        self.model: Any = None

    def _unavailable(self, error: Exception) -> JudgeUnavailable:
        return JudgeUnavailable(f"judge {self.name!r} (kind {self.kind}): cannot load the model at {self.path}: "
                                f"{error}")

    # subclasses: prepare one request (may raise for that item) and score a batch of prepared items
    def _prepare(self, request: JudgeRequest, cache: dict) -> Any:
        raise NotImplementedError

    def _forward(self, items: list[Any]) -> list[float]:
        raise NotImplementedError

    def raw_scores(self, requests: Sequence[JudgeRequest]) -> list[float]:
        """The model's scores before normalisation, for calibration; raises where an item cannot be prepared and
        does not touch the running statistics."""
        cache: dict = {}
        items = [self._prepare(r, cache) for r in requests]
        out: list[float] = []
        for start in range(0, len(items), self.batch_size):
            out += self._forward_locked(items[start: start + self.batch_size])
        return out

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        """One result per request, in order; never raises for an item."""
        if self.model is None:
            raise RuntimeError(f"judge {self.name!r} is closed")
        return score_in_batches(self.name, requests, self.batch_size, self._prepare, self._forward_locked,
                                self._result, "input: cannot build the reward model's input", "forward")

    def _forward_locked(self, items: list[Any]) -> list[float]:
        with self._lock, torch.no_grad():
            return self._forward(items)

    def _result(self, value: float, latency: float) -> JudgeResult:
        if not math.isfinite(value):
            return JudgeResult(score=None, raw=repr(value), error=f"forward: the reward model scored {value!r}",
                               latency_s=latency)
        score = value
        if self.norm is not None:
            with self._lock:
                score = self.norm(value)
        return JudgeResult(score=score, raw=repr(value), latency_s=latency)

    def running_stats(self) -> dict[str, float]:
        """{"count", "mean", "std"} of the scores seen (zeros without `normalize: running`)."""
        if self.norm is None:
            return {"count": 0, "mean": 0.0, "std": 0.0}
        return {"count": self.norm.count, "mean": self.norm.mean, "std": self.norm.std}

    def close(self) -> None:
        """Free the model (and the GPU memory it held)."""
        if self.model is None:
            return
        self.model = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, path={self.path!r}, normalize={self.normalize!r})"


@JUDGE_KINDS.register("reward_model")
class RewardModelJudge(_ScalarJudge):
    """A text reward model: `AutoModelForSequenceClassification` with one label (see the module docstring)."""

    kind = "reward_model"
    options = _ScalarJudge.options + ("max_length",)

    def __init__(self, name: str, *, path: Optional[str] = None, device: str = "cpu", dtype: str = "float32",
                 batch_size: int = 8, normalize: str = "none", eps: float = 1e-6, max_length: Optional[int] = None,
                 **unknown: Any) -> None:
        self._setup(name, path, device, dtype, batch_size, normalize, eps, unknown)
        if max_length is not None and (not isinstance(max_length, int) or isinstance(max_length, bool)
                                       or max_length < 2):
            raise ValueError(f"judge {name!r} (kind {self.kind}): option max_length must be an integer >= 2 or "
                             f"null, got {max_length!r}")
        self.max_length = max_length
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from mmrft.models.load import check_model_dir

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            check_model_dir(self.path)
            _require_safetensors(self.path)
            tokenizer = AutoTokenizer.from_pretrained(self.path)
            model = AutoModelForSequenceClassification.from_pretrained(self.path, dtype=DTYPES[dtype],
                                                                       use_safetensors=True)
        except Exception as e:
            raise self._unavailable(e) from e
        if model.config.num_labels != 1:
            raise JudgeUnavailable(f"judge {name!r} (kind {self.kind}): {self.path} has {model.config.num_labels} "
                                   "labels; a reward model has one (num_labels: 1)")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if tokenizer.pad_token is None:
            raise JudgeUnavailable(f"judge {name!r} (kind {self.kind}): the tokenizer at {self.path} has neither a "
                                   "pad nor an end token to pad batches with")
        tokenizer.padding_side = "right"
        tokenizer.truncation_side = "left"
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        self.tokenizer = tokenizer
        self.model = model.to(self.device).eval().requires_grad_(False)

    def text(self, request: JudgeRequest) -> str:
        """The reward model's input text for `request` (see the module docstring)."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": request.question}, {"role": "assistant", "content": request.completion}],
                tokenize=False)
        return f"{request.question}\n\n{request.completion}"

    def _prepare(self, request: JudgeRequest, cache: dict) -> str:
        return self.text(request)

    def _forward(self, texts: list[str]) -> list[float]:
        templated = bool(getattr(self.tokenizer, "chat_template", None))
        enc = self.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=not templated,
                             truncation=self.max_length is not None, max_length=self.max_length)
        enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        logits = self.model(**enc).logits
        return [float(v) for v in logits[:, 0].float().cpu()]


@JUDGE_KINDS.register("vl_reward_model")
class VLRewardModelJudge(_ScalarJudge):
    """A vision-language reward model: `ValueModel` (backbone + `value_head`), e.g. a PPO critic saved by mmrft (see
    the module docstring)."""

    kind = "vl_reward_model"
    options = _ScalarJudge.options + ("system", "prompt_format")

    def __init__(self, name: str, *, path: Optional[str] = None, device: str = "cpu", dtype: str = "float32",
                 batch_size: int = 8, normalize: str = "none", eps: float = 1e-6, system: Optional[str] = None,
                 prompt_format: str = "plain", **unknown: Any) -> None:
        self._setup(name, path, device, dtype, batch_size, normalize, eps, unknown)
        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"judge {name!r} (kind {self.kind}): option prompt_format must be one of "
                             f"{', '.join(PROMPT_FORMATS)}, got {prompt_format!r}")
        self.system, self.prompt_format = system, prompt_format
        from mmrft.config import Config, ModelConfig
        from mmrft.models.load import load_processor
        from mmrft.models.value import VALUE_HEAD_FILE, load_critic

        head = Path(self.path) / VALUE_HEAD_FILE
        if not head.is_file():
            raise JudgeUnavailable(f"judge {name!r} (kind {self.kind}): {self.path} has no {VALUE_HEAD_FILE}; a VL "
                                   "reward model is a directory written by mmrft.models.value.ValueModel.save (a PPO "
                                   "critic checkpoint of mmrft is one)")
        try:
            _require_safetensors(self.path)
            self.processor = load_processor(self.path)
            model = load_critic(Config(model=ModelConfig(path=self.path, dtype=dtype)), self.device)
        except Exception as e:
            raise self._unavailable(e) from e
        self.model = model.eval().requires_grad_(False)

    def text(self, request: JudgeRequest) -> str:
        """The chat-templated prompt (image placeholders included) followed by the completion."""
        from mmrft.data.prompts import build_messages

        messages = build_messages(request.question, len(request.images), fmt=self.prompt_format, system=self.system)
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return prompt + request.completion

    def _prepare(self, request: JudgeRequest, cache: dict) -> tuple[str, list]:
        return self.text(request), load_images(request, cache)

    def _forward(self, items: list[tuple[str, list]]) -> list[float]:
        from mmrft.data.collate import processor_media_kwargs

        texts = [text for text, _ in items]
        images = [imgs for _, imgs in items]
        inputs = self.processor(text=texts, padding=True, return_tensors="pt", **processor_media_kwargs(images, [], []))
        inputs = {k: v.to(self.device) for k, v in dict(inputs).items() if isinstance(v, torch.Tensor)}
        values = self.model(**inputs).logits[..., 0]  # [B, L]
        mask = inputs["attention_mask"]
        positions = torch.arange(mask.shape[1], device=mask.device)
        last = (positions * mask).argmax(-1)  # the last real token, whichever side the padding is on
        return [float(v) for v in values[torch.arange(values.shape[0], device=values.device), last].float().cpu()]

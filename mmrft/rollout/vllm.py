"""Rollouts with vLLM (CUDA, optional extra `mmrft[vllm]`), colocated: an engine inside each training process.

Same contract as `mmrft.rollout.hf.HFRolloutEngine`, but vLLM holds its own copy of the weights: the trainer calls
`sync_weights(model)` after every update, and between phases the engine sleeps (frees its GPU memory). The pure
parts (requests from samples, outputs to a `Rollout`; the policy's weights under the names vLLM loads, in
`mmrft.rollout.vllm_weights`) are module functions, tested on CPU; only `VLLMRolloutEngine` needs vLLM, imported
when one is built.

What this relies on (vLLM >= 0.19.1, the first release that installs beside transformers 5; V1 engine):
- `LLM(distributed_executor_backend="external_launcher")` runs the engine in this process (it sets
  VLLM_ENABLE_V1_MULTIPROCESSING=0, vllm/config/parallel.py) on the torch.distributed world torchrun describes
  (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT); ranks beyond tensor x pipeline parallelism are independent
  replicas, each generating its own prompts. TRL's GRPOTrainer colocates vLLM this way
  (trl/generation/vllm_generation.py, vllm_mode="colocate").
- Requests `{"prompt": text, "multi_modal_data": {"image": PIL | [PIL], "video": array[T,H,W,3] | [...],
  "audio": (array, rate) | [...]}}` (vLLM docs/features/multimodal_inputs.md); `LLM.generate` answers in request
  order; `RequestOutput.prompt_token_ids`, `.outputs[j].token_ids` (the stop token included), `.finish_reason`
  ("stop" | "length"), `.stop_reason` (the stop token id when one of `stop_token_ids` ended it).
- `SamplingParams`: temperature 0 is greedy; top_k -1 disables top-k in every version (newer ones also take 0:
  "quietly accept -1 as disabled, but prefer 0"); V1 takes no per-request logits processors but does take
  `logit_bias` (vllm#13058), added to the logits before sampling, greedy included
  (`LogitBiasLogitsProcessor.is_argmax_invariant()` is False).
- `enable_sleep_mode=True`, `LLM.sleep(level)`, `LLM.wake_up(tags=["weights"] | ["kv_cache"])` (docs/features/
  sleep_mode.md): level 1 offloads the weights to CPU and drops the KV cache; level 2 drops both, so the weights
  must be loaded again after waking (vllm#29341), here from the policy.
- `LLM.apply_model(fn)` runs fn(model) in the worker (in this process here). The model's `load_weights([(name,
  tensor)])` takes Hugging Face checkpoint names and maps them itself (Qwen2-VL's `hf_to_vllm_mapper`:
  `model.language_model.` -> `language_model.model.`, `model.visual.` -> `visual.`, `lm_head.` ->
  `language_model.lm_head.`, and the pre-4.52 `model.` names), so the policy's own parameter names are what it
  needs, with peft's wrappers taken off (as TRL does: strip `base_model.model.` and `.base_layer`, drop `lora_*`).
- Multi-turn rollouts (`mmrft.rollout.multiturn`) continue each trajectory with a request of token ids
  (`{"prompt_token_ids": ids, "multi_modal_data": {"image": [...]}}`) whose image placeholders the processor already
  expanded: vLLM's multimodal processor finds them in place and does not expand them again (TRL sends its tool turns
  with images the same way, trl/generation/vllm_generation.py).
- After loading: `reset_prefix_cache()` (cached KV of old weights), and `reset_encoder_cache()` where the version
  has it (vllm#33452): otherwise vision embeddings of images seen before the update are reused (TRL#7198).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from types import SimpleNamespace

import numpy as np
import torch

from mmrft.data.collate import MediaOptions, PromptBatch, chat_texts, load_media, media_options
from mmrft.errors import ConfigError, MmrftError
from mmrft.models.load import media_token_ids
from mmrft.rollout.engine import ROLLOUT_ENGINES, Rollout, SamplingParams
from mmrft.rollout.vllm_weights import vllm_weights

log = logging.getLogger("mmrft")
# Added to the logits of media placeholder tokens: exp(-1e9) is 0 in float32, without inf arithmetic.
SUPPRESS_BIAS = -1e9


def import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise MmrftError("rollout.engine=vllm needs the vllm package: pip install 'mmrft[vllm]' on a CUDA machine "
                         f"(vllm brings its own CUDA build of torch) [{e}]") from None
    return vllm


# ------------------------------------------------------------------------------------- requests (pure)


def build_requests(samples, texts: list[str] | list[list[int]], images: list[list], videos: list,
                   audios: list) -> list[dict]:
    """One vLLM request per sample: its prompt, as text or as token ids (placeholders already expanded, as the
    processor writes them: vLLM finds them and does not expand them again), and its decoded media (`load_media`'s
    output: images per sample, video and audio clips of all samples in order). One item of a kind is passed alone,
    several as a list."""
    out, v, a = [], 0, 0
    for s, text, imgs in zip(samples, texts, images, strict=True):
        clips, v = videos[v : v + len(s.videos)], v + len(s.videos)
        sounds, a = audios[a : a + len(s.audios)], a + len(s.audios)
        items = {
            "image": list(imgs),
            "video": [np.stack([np.asarray(f.convert("RGB")) for f in c.frames]) for c in clips],
            "audio": [(c.samples, c.rate) for c in sounds],
        }
        mm = {kind: x[0] if len(x) == 1 else x for kind, x in items.items() if x}
        request = {"prompt": text} if isinstance(text, str) else {"prompt_token_ids": [int(t) for t in text]}
        out.append({**request, "multi_modal_data": mm} if mm else request)
    return out


def vllm_requests(processor, samples, fmt: str = "r1", system: str | None = None,
                  media: MediaOptions | None = None, tools: list[dict] | None = None) -> list[dict]:
    """The requests of a batch of samples, with the prompt text `encode_prompts` gives the processor (`tools`: the
    function-calling schemas a multi-turn run's prompts offer)."""
    options = media or MediaOptions()
    images, videos, audios = load_media(processor, samples, options)
    return build_requests(samples, chat_texts(processor, samples, videos, fmt, system, options, tools), images,
                          videos, audios)


def continuation_requests(processor, prompts: PromptBatch, media: MediaOptions | None = None) -> list[dict]:
    """The requests that continue multi-turn trajectories (`PromptBatch.returned_images` set): each row's tokens as
    the batch holds them (prompt and turns so far, left padding taken off) and its images, the sample's own then
    those its tool turns returned, in the order their placeholders appear."""
    if prompts.returned_images is None:
        raise ValueError("continuation_requests: the batch is not a multi-turn continuation (no returned_images)")
    images, videos, audios = load_media(processor, prompts.samples, media or MediaOptions())
    ids, att = prompts.inputs["input_ids"], prompts.inputs["attention_mask"].bool()
    tokens = [ids[i][att[i]].tolist() for i in range(len(prompts.samples))]
    images = [list(own) + list(returned) for own, returned in zip(images, prompts.returned_images, strict=True)]
    return build_requests(prompts.samples, tokens, images, videos, audios)


def sampling_kwargs(params: SamplingParams, eos_ids: list[int], suppress: list[int],
                    logprobs: bool = False) -> dict:
    """`vllm.SamplingParams` keywords for mmrft's sampling settings. Greedy asks for one completion (the caller
    repeats it n times); media placeholder ids get SUPPRESS_BIAS, so they are never sampled. `logprobs`: return
    each sampled token's log-prob (`logprobs=0`: the sampled token's only)."""
    greedy = params.greedy
    extra = {"logprobs": 0} if logprobs else {}
    return dict(**extra,
        n=1 if greedy else params.n, max_tokens=params.max_new_tokens,
        temperature=0.0 if greedy else params.temperature, top_p=1.0 if greedy else params.top_p,
        top_k=params.top_k if params.top_k > 0 and not greedy else -1,
        stop_token_ids=list(eos_ids), logit_bias={int(t): SUPPRESS_BIAS for t in suppress} or None,
        detokenize=False,  # texts are decoded by the tokenizer, as the HF engine does
    )


# ------------------------------------------------------------------------------------- outputs (pure)


def completion_tokens(completion, eos_ids: list[int]) -> tuple[list[int], bool]:
    """A completion's tokens through its first end token, and whether it ended (False: it hit the length limit).
    A "stop" whose end token is not among the ids gets it appended, so the mask covers it as in the HF engine."""
    toks = [int(t) for t in completion.token_ids]
    for k, t in enumerate(toks):
        if t in eos_ids:
            return toks[: k + 1], True
    if completion.finish_reason == "stop":
        stop = completion.stop_reason if getattr(completion, "stop_reason", None) in eos_ids else eos_ids[0]
        return toks + [int(stop)], True
    return toks, False


def completion_logprobs(completion, tokens: list[int]) -> list[float]:
    """The log-prob vLLM gave each of `tokens` (`completion.logprobs[k]` maps token id -> `Logprob`); NaN where it
    gave none (a stop token appended by `completion_tokens`), which the rollout correction treats as no mismatch."""
    steps = getattr(completion, "logprobs", None) or []
    out = []
    for k, t in enumerate(tokens):
        entry = steps[k].get(t) if k < len(steps) and steps[k] is not None else None
        out.append(float(getattr(entry, "logprob", entry)) if entry is not None else float("nan"))
    return out


def rollout_from_outputs(prompts: PromptBatch, outputs, n: int, eos_ids: list[int], pad_id: int,
                         tokenizer, logprobs: bool = False) -> Rollout:
    """vLLM's request outputs (one per prompt, in order; n completions each, or 1 to be repeated n times) as a
    `Rollout`: ids right-padded with `pad_id`, mask through the first end token, prompt-major rows; with `logprobs`
    the sampled tokens' log-probs too (`Rollout.logprobs`, 0 past the end)."""
    rows: list[list[int]] = []
    ended: list[bool] = []
    row_logprobs: list[list[float]] = []
    for i, req in enumerate(outputs):
        comps = sorted(req.outputs, key=lambda c: getattr(c, "index", 0))
        if len(comps) not in (1, n):
            raise ValueError(f"request {i}: {len(comps)} completions, expected {n}")
        for c in comps * (n // len(comps)):
            toks, end = completion_tokens(c, eos_ids)
            rows.append(toks)
            ended.append(end)
            if logprobs:
                row_logprobs.append(completion_logprobs(c, toks))
    width = max([len(r) for r in rows] + [1])
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width))
    lp = torch.zeros((len(rows), width)) if logprobs else None
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1.0
        if lp is not None:
            lp[i, : len(r)] = torch.tensor(row_logprobs[i])
    texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
    return Rollout(prompts, n, ids, mask, torch.tensor([not e for e in ended], dtype=torch.bool), texts,
                   logprobs=lp)


def prompt_mismatches(prompts: PromptBatch, outputs) -> list[int]:
    """Prompts whose tokens in vLLM differ from those in the batch (which the training forward scores)."""
    ids, att = prompts.inputs["input_ids"], prompts.inputs["attention_mask"]
    bad = []
    for i, out in enumerate(outputs):
        theirs = getattr(out, "prompt_token_ids", None)
        if theirs is not None and [int(t) for t in theirs] != ids[i][att[i].bool()].tolist():
            bad.append(i)
    return bad


# ------------------------------------------------------------------------------------- the engine


def _eos_ids(model, tokenizer) -> list[int]:
    """End tokens, as the HF engine takes them: the generation config's, else the tokenizer's."""
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos = gen_eos if isinstance(gen_eos, list) else [gen_eos if gen_eos is not None else tokenizer.eos_token_id]
    return [int(e) for e in eos if e is not None]


def _torchrun_env() -> None:
    """external_launcher reads torchrun's variables; a plain single process has none: describe a world of one."""
    if "RANK" in os.environ:
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(port))


class VLLMRolloutEngine:
    """Samples with a vLLM copy of the policy; `sync_weights(model)` after every update keeps it current.

    `model_path` is the checkpoint vLLM builds itself from (the base model for LoRA); the policy's weights replace
    those at construction (a resumed run's differ). `sleep_level` 0 keeps the memory, 1/2 free it after every
    `generate` (see the module docstring). `llm` (with `vllm_module`) injects a ready engine, e.g. a test double.
    `gather(model)`: a context in which the policy's parameters are whole, for a policy sharded with FSDP2
    (`mmrft.train.fsdp.gathered`, collective: every rank syncs at the same points); none needed otherwise.
    """

    def __init__(self, model, processor, *, model_path: str, prompt_format: str = "r1", system: str | None = None,
                 media: MediaOptions | None = None, dtype: str = "bfloat16", gpu_memory_utilization: float = 0.3,
                 sleep_level: int = 1, max_model_len: int | None = None, seed: int = 0,
                 llm_kwargs: dict | None = None, llm=None, vllm_module=None, gather=None,
                 tools: list[dict] | None = None, keep_logprobs: bool = False):
        if sleep_level not in (0, 1, 2):
            raise ConfigError(f"rollout.vllm_sleep_level: {sleep_level} is not 0, 1 or 2")
        self.model, self.processor = model, processor
        self.fmt, self.system, self.media = prompt_format, system, media or MediaOptions()
        self.tools = tools  # function-calling schemas the prompts offer (multi-turn runs), as in `encode_prompts`
        self.pad_id = processor.tokenizer.pad_token_id
        self.eos_ids = _eos_ids(model, processor.tokenizer)
        self.suppress = media_token_ids(processor, model)
        self.sleep_level = sleep_level
        self.keep_logprobs = keep_logprobs
        if keep_logprobs:  # the log-probs of the distribution sampled from (temperature, top-k/p), not the raw logits'
            llm_kwargs = {"logprobs_mode": "processed_logprobs", **(llm_kwargs or {})}
        self.gather = gather or (lambda model: contextlib.nullcontext())
        self.vllm = vllm_module or import_vllm()
        if llm is None:
            if not torch.cuda.is_available():
                raise ConfigError("rollout.engine=vllm needs a CUDA GPU and none is visible here")
            _torchrun_env()
            llm = self.vllm.LLM(**{
                "model": model_path, "dtype": dtype, "seed": seed, "gpu_memory_utilization": gpu_memory_utilization,
                "max_model_len": max_model_len, "enable_sleep_mode": sleep_level > 0,
                "distributed_executor_backend": "external_launcher", **(llm_kwargs or {})})
        self.llm = llm
        self.asleep: set[str] = set()  # tags of the memory vLLM has released
        self.stale = False  # weights dropped by a level-2 sleep and not loaded since
        self.prompt_mismatches = 0
        self._warned_encoder_cache = False
        self.sync_weights(model)
        self.sleep()

    @classmethod
    def from_config(cls, cfg, model, processor, rank: int = 0, gather=None) -> "VLLMRolloutEngine":
        from mmrft.rollout.multiturn import prompt_tools

        ro = cfg.rollout
        return cls(model, processor, model_path=cfg.model.path, prompt_format=cfg.data.prompt_format,
                   system=cfg.data.system_prompt, media=media_options(cfg.data), dtype=cfg.model.dtype,
                   gpu_memory_utilization=ro.vllm_gpu_memory_utilization, sleep_level=ro.vllm_sleep_level,
                   max_model_len=ro.vllm_max_model_len, seed=cfg.trainer.seed + rank, llm_kwargs=dict(ro.vllm_kwargs),
                   gather=gather, tools=prompt_tools(cfg), keep_logprobs=ro.correction != "none")

    def sleep(self) -> None:
        """Release vLLM's GPU memory until the next `sync_weights` / `generate` (nothing with sleep level 0)."""
        if self.sleep_level and not self.asleep:
            self.llm.sleep(level=self.sleep_level)
            self.asleep = {"weights", "kv_cache"}

    def wake_up(self, tags: tuple[str, ...] = ("weights", "kv_cache")) -> None:
        todo = [t for t in tags if t in self.asleep]
        if not todo:
            return
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the allocator's cached blocks count as used to vLLM
        self.llm.wake_up(tags=todo)
        self.asleep -= set(todo)
        self.stale = self.stale or ("weights" in todo and self.sleep_level == 2)

    @torch.no_grad()
    def sync_weights(self, model=None) -> None:
        """Load the policy's current weights (LoRA merged in) into vLLM; call after every optimizer update."""
        self.model = model if model is not None else self.model
        self.wake_up(("weights",))  # weights first, KV cache at generate: never both copies at once
        with self.gather(self.model):
            weights = vllm_weights(self.model)
            apply_model = getattr(self.llm, "apply_model", None)
            if apply_model is not None:
                apply_model(lambda m: m.load_weights(weights))
            else:  # releases without apply_model: TRL's path to the in-process model
                self.llm.llm_engine.model_executor.driver_worker.worker.model_runner.model.load_weights(weights)
        self.stale = False
        self.llm.reset_prefix_cache()
        reset_encoder = getattr(self.llm, "reset_encoder_cache", None)
        if reset_encoder is not None:
            reset_encoder()
        elif not self._warned_encoder_cache:
            self._warned_encoder_cache = True
            log.warning("this vLLM has no reset_encoder_cache(): an image seen before a weight update may be "
                        "encoded with the old vision weights (harmless when the vision tower is frozen)")

    @torch.no_grad()
    def generate(self, prompts: PromptBatch, params: SamplingParams) -> Rollout:
        if prompts.returned_images is not None:  # a multi-turn continuation: its tokens, every image
            requests = continuation_requests(self.processor, prompts, self.media)
        else:
            requests = vllm_requests(self.processor, prompts.samples, self.fmt, self.system, self.media, self.tools)
        if params.max_new_tokens < 1:  # vLLM needs max_tokens >= 1
            empty = SimpleNamespace(token_ids=[], finish_reason="length", index=0)
            outputs = [SimpleNamespace(outputs=[empty], prompt_token_ids=None) for _ in requests]
        else:
            self.wake_up(("weights",))
            if self.stale:
                self.sync_weights()
            self.wake_up(("kv_cache",))
            sp = self.vllm.SamplingParams(**sampling_kwargs(params, self.eos_ids, self.suppress,
                                                            self.keep_logprobs))
            try:
                outputs = self.llm.generate(requests, sampling_params=sp, use_tqdm=False)
            finally:
                self.sleep()
        bad = prompt_mismatches(prompts, outputs)
        if bad and not self.prompt_mismatches:
            log.warning("vLLM tokenized %d of %d prompts differently from the processor (first: sample %s); the "
                        "training forward scores the processor's tokens", len(bad), len(outputs),
                        prompts.samples[bad[0]].id)
        self.prompt_mismatches += len(bad)
        r = rollout_from_outputs(prompts, outputs, params.n, self.eos_ids, self.pad_id, self.processor.tokenizer,
                                 logprobs=self.keep_logprobs)
        device = prompts.inputs["input_ids"].device
        return Rollout(prompts, r.n, r.completion_ids.to(device), r.completion_mask.to(device),
                       r.truncated.to(device), r.texts,
                       logprobs=None if r.logprobs is None else r.logprobs.to(device))


def check_vllm_config(ro) -> None:
    """`rollout.engine=vllm` can run here: valid settings, a CUDA device, the package installed."""
    import importlib.util

    if ro.vllm_sleep_level not in (0, 1, 2):
        raise ConfigError(f"rollout.vllm_sleep_level: {ro.vllm_sleep_level} is not 0, 1 or 2")
    if not 0 < ro.vllm_gpu_memory_utilization <= 1:
        raise ConfigError(f"rollout.vllm_gpu_memory_utilization: {ro.vllm_gpu_memory_utilization} is not in (0, 1]")
    if not torch.cuda.is_available():
        raise ConfigError("rollout.engine=vllm needs a CUDA GPU and none is visible here; use rollout.engine=hf "
                          "(transformers generate, CPU or GPU)")
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError("rollout.engine=vllm needs the vllm package: pip install 'mmrft[vllm]' on a CUDA machine "
                          "(vllm brings its own CUDA build of torch)")


ROLLOUT_ENGINES.add("vllm", VLLMRolloutEngine.from_config, own_weights=True, check=check_vllm_config)

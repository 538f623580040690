"""Rollouts with the policy itself through `transformers` (CPU or GPU): mmrft's sampling loop or `generate`."""

from __future__ import annotations

import torch

from mmrft.data.collate import PromptBatch
from mmrft.models.load import media_token_ids
from mmrft.models.positions import base_model, prompt_positions, reusing_cache
from mmrft.rollout.decode import DECODERS, Decoded, decode
from mmrft.rollout.engine import ROLLOUT_ENGINES, Rollout, SamplingParams, completion_mask_from_ids


class HFRolloutEngine:
    """Samples with the policy itself, so there are no weights to sync after an update.

    `decoder`: "loop" (mmrft's sampling loop, `mmrft.rollout.decode`: each prompt prefilled once for its n samples,
    rows leave the batch as they end) or "generate" (transformers' `generate`; with `share_prefill=False`,
    `generate(num_return_sequences=n)`, which prefills every copy: the loop always shares the prefill).

    `keep_logprobs`: also return the sampler's log-probs of the sampled tokens (`Rollout.logprobs`), under the
    processed distribution (temperature, top-k/p and suppression applied); with `generate` this holds every step's
    scores ([rows, vocabulary] each) until the end of the call."""

    def __init__(self, model, processor, share_prefill: bool = True, keep_logprobs: bool = False,
                 decoder: str = "loop"):
        if decoder not in DECODERS:
            raise ValueError(f"decoder {decoder!r} is not one of {', '.join(DECODERS)}")
        self.model = model
        self.decoder = decoder
        self.share_prefill = share_prefill
        self.keep_logprobs = keep_logprobs
        self.processor = processor
        tok = processor.tokenizer
        self.pad_id = tok.pad_token_id
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos = gen_eos if isinstance(gen_eos, list) else [gen_eos if gen_eos is not None else tok.eos_token_id]
        self.eos_ids = [int(e) for e in eos if e is not None]
        self.suppress = media_token_ids(processor, model)

    @torch.no_grad()
    def generate(self, prompts: PromptBatch, params: SamplingParams) -> Rollout:
        return self.sample(prompts, params)[0]

    @torch.no_grad()
    def sample(self, prompts: PromptBatch, params: SamplingParams, keep_cache: bool = False):
        """(the rollout, `generate`'s full sequences, its KV cache): the cache only with `keep_cache` (for continuing
        the rows in a next turn, `mmrft.rollout.continuation`), else None."""
        if self.decoder == "loop" and self.share_prefill:
            return self._sample_loop(prompts, params, keep_cache)
        common = self.generation_kwargs(params)
        if self.keep_logprobs or keep_cache:
            common.update(return_dict_in_generate=True)
        was_training = self.model.training
        self.model.eval()
        try:
            if params.n > 1 and self.share_prefill:
                out = self._generate_shared_prefill(prompts, params.n, common)
            else:
                out = self.model.generate(**prompts.inputs, num_return_sequences=params.n, **common)
        finally:
            self.model.train(was_training)
        sequences = out if isinstance(out, torch.Tensor) else out.sequences
        ids, mask, truncated, texts, logprobs = self.read_turn(sequences, prompts.prompt_len,
                                                               getattr(out, "scores", None))
        cache = getattr(out, "past_key_values", None) if keep_cache else None
        return Rollout(prompts, params.n, ids, mask, truncated, texts, logprobs=logprobs), sequences, cache

    def _sample_loop(self, prompts: PromptBatch, params: SamplingParams, keep_cache: bool):
        """`sample` with mmrft's loop: each prompt (and its media) prefilled once, its cache repeated n times."""
        inputs, n = prompts.inputs, params.n
        was_training = self.model.training
        self.model.eval()
        try:
            out, cache, pos, _ = self._prefill(prompts, n, leave_last=False)
            mask = inputs["attention_mask"].repeat_interleave(n, dim=0)
            decoded = self.decode_from(out.logits[:, -1].repeat_interleave(n, dim=0), cache, mask,
                                       pos[..., -1].repeat_interleave(n, dim=-1), params, keep_cache)
        finally:
            self.model.train(was_training)
        sequences = torch.cat([inputs["input_ids"].repeat_interleave(n, dim=0), decoded.tokens], dim=1)
        ids, mask, truncated, texts, logprobs = self.read_turn(sequences, prompts.prompt_len, decoded=decoded)
        return Rollout(prompts, n, ids, mask, truncated, texts, logprobs=logprobs), sequences, decoded.cache

    def _prefill(self, prompts: PromptBatch, n: int, leave_last: bool):
        """Each prompt (and its media) through the model once, its KV cache repeated n times: (output, cache, the
        prompt positions, M-RoPE deltas or None). `leave_last`: the last prompt token is not fed (`generate` feeds
        it)."""
        inputs = prompts.inputs
        pos, deltas = prompt_positions(self.model, inputs)
        feed, fed_pos = inputs, pos
        if leave_last:
            feed = {**inputs, **{k: inputs[k][:, :-1] for k in prompts.token_keys()}}
            fed_pos = pos[..., :-1]
        with reusing_cache():
            out = self.model(**feed, position_ids=fed_pos, use_cache=True, logits_to_keep=1)
            cache = out.past_key_values
        if n > 1:
            cache.batch_repeat_interleave(n)
        return out, cache, pos, deltas

    def decode_from(self, logits: torch.Tensor, cache, mask: torch.Tensor, last_pos: torch.Tensor,
                    params: SamplingParams, keep_cache: bool = False) -> Decoded:
        """Sample from rows whose next-token `logits` and KV `cache` are given (`mmrft.rollout.decode.decode`)."""
        return decode(self.model, logits, cache, mask, last_pos, params, eos_ids=self.eos_ids, pad_id=self.pad_id,
                      suppress=self.suppress, keep_logprobs=self.keep_logprobs, keep_cache=keep_cache)

    def generation_kwargs(self, params: SamplingParams) -> dict:
        """`generate`'s keywords for `params`: sampling, suppressed tokens, end tokens, scores when kept."""
        sampling = dict(do_sample=False)
        if not params.greedy:
            sampling = dict(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        # synced_gpus=False: transformers turns it on for an FSDP-sharded model and then all-reduces at every token,
        # which would tie ranks (and rank 0's evaluation) together; mmrft samples with gathered weights instead
        # (`mmrft.train.fsdp.gathered`), so no rank needs the others while it samples
        common = dict(max_new_tokens=params.max_new_tokens, suppress_tokens=self.suppress or None,
                      eos_token_id=self.eos_ids, pad_token_id=self.pad_id, synced_gpus=False, **sampling)
        if self.keep_logprobs:
            common.update(output_scores=True, return_dict_in_generate=True)
        return common

    def read_turn(self, sequences: torch.Tensor, start: int, scores=None, decoded: Decoded | None = None):
        """What the sampler wrote after column `start` of `sequences`: (ids, mask through the end token, truncated,
        texts, sampler log-probs or None); the log-probs come from `generate`'s `scores` or the loop's `decoded`."""
        ids = sequences[:, start:]
        if ids.shape[1] == 0:  # nothing generated (max_new_tokens=0)
            ids = sequences.new_full((sequences.shape[0], 1), self.pad_id)
        mask, truncated = completion_mask_from_ids(ids, self.eos_ids)
        ids = torch.where(mask.bool(), ids, torch.full_like(ids, self.pad_id))
        texts = self.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
        logprobs = None
        if self.keep_logprobs and scores:  # one step at a time: no [rows, steps, vocabulary] copy
            logprobs = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
            for k, step in enumerate(scores[: ids.shape[1]]):
                logprobs[:, k] = step.float().log_softmax(-1).gather(-1, ids[:, k, None]).squeeze(-1)
            logprobs = logprobs * mask
        elif self.keep_logprobs and decoded is not None and decoded.logprobs is not None:
            logprobs = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
            logprobs[:, : decoded.logprobs.shape[1]] = decoded.logprobs
            logprobs = logprobs * mask
        return ids, mask, truncated, texts, logprobs

    def _generate_shared_prefill(self, prompts: PromptBatch, n: int, common: dict) -> torch.Tensor:
        """Prefill each prompt (and encode its media) once, repeat the KV cache n times, and let `generate`
        continue from it: the same samples as `num_return_sequences=n`, which prefills every copy.

        The last prompt token is left uncached so `generate` has a token to start from; no media go to `generate`
        (they are in the cache). Qwen-VL's `generate` continues M-RoPE positions from the model's stored
        `rope_deltas`, which are set here for the n copies; other families count attended tokens, as `generate`
        does from the attention mask.
        """
        inputs = prompts.inputs
        _, cache, _, deltas = self._prefill(prompts, n, leave_last=True)
        if deltas is not None:
            base_model(self.model).model.rope_deltas = deltas.repeat_interleave(n, dim=0)
        expanded = {k: inputs[k].repeat_interleave(n, dim=0) for k in prompts.token_keys()}
        with reusing_cache():
            return self.model.generate(**expanded, past_key_values=cache, **common)


@ROLLOUT_ENGINES.register("hf", own_weights=False)
def hf_engine(cfg, model, processor, *, rank: int = 0, gather=None) -> HFRolloutEngine:
    """`rollout.engine=hf`: sampling with the policy itself (CPU or GPU), by `rollout.decoder`."""
    return HFRolloutEngine(model, processor, share_prefill=cfg.rollout.share_prefill,
                           keep_logprobs=cfg.rollout.correction != "none", decoder=cfg.rollout.decoder)

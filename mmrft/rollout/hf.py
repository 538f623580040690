"""Rollouts with `transformers` `generate` (CPU or GPU)."""

from __future__ import annotations

import torch

from mmrft.data.collate import PromptBatch
from mmrft.models.load import media_token_ids
from mmrft.rollout.engine import Rollout, SamplingParams, completion_mask_from_ids


class HFRolloutEngine:
    """Samples with the policy itself, so there are no weights to sync after an update."""

    def __init__(self, model, processor):
        self.model = model
        self.processor = processor
        tok = processor.tokenizer
        self.pad_id = tok.pad_token_id
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos = gen_eos if isinstance(gen_eos, list) else [gen_eos if gen_eos is not None else tok.eos_token_id]
        self.eos_ids = [int(e) for e in eos if e is not None]
        self.suppress = media_token_ids(processor)

    @torch.no_grad()
    def generate(self, prompts: PromptBatch, params: SamplingParams) -> Rollout:
        sampling = dict(do_sample=False)
        if not params.greedy:
            sampling = dict(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model.generate(
                **prompts.inputs,
                max_new_tokens=params.max_new_tokens,
                num_return_sequences=params.n,
                suppress_tokens=self.suppress or None,
                eos_token_id=self.eos_ids,
                pad_token_id=self.pad_id,
                **sampling,
            )
        finally:
            self.model.train(was_training)
        ids = out[:, prompts.prompt_len :]
        mask, truncated = completion_mask_from_ids(ids, self.eos_ids)
        ids = torch.where(mask.bool(), ids, torch.full_like(ids, self.pad_id))
        texts = self.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return Rollout(prompts, params.n, ids, mask, truncated, texts)

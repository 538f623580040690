"""Tiny random models of more VLM families, built fully offline (no torchvision, no downloads).

`BUILDERS[model_type](size, corpus, vocab_size) -> (model, processor)` builds one family: a byte-level BPE tokenizer
trained here with the family's special tokens and chat template (`mmrft.models.tiny.train_bpe_tokenizer`), a tiny
config, the model from the Auto classes' `from_config` (`make_tiny_model` then sets its generation config), and the family's processor around the PIL backend of its image
processor (or its audio feature extractor). `mmrft.models.tiny.make_tiny_model(out, arch=model_type)` saves one to a
directory that `AutoModelForMultimodalLM.from_pretrained` / `AutoProcessor.from_pretrained` load once `mmrft` is
imported (which imports this package: it registers the processor classes some families need).

Pass `images` nested per prompt (`images=[[a], [b, c]]` for two prompts): Gemma3's processor requires it and
LLaVA-OneVision's reads the number of images per prompt from it.

`AutoProcessor.from_pretrained` needs this package imported: without the registration it does not fail but
silently returns only the tokenizer for the families whose processor class is defined here (mistral3,
llava_onevision, internvl).

Each family module's docstring lists what code that handles several families needs to know: the module-name
fragments of the vision tower and projector, the media tokens never to sample, the processor's output keys and how
`pixel_values` rows map to images, extra per-token model inputs, and the grounding convention of the real checkpoints.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from mmrft.models.tiny import TinySize
from mmrft.registry import Registry


def set_named_tokens(tokenizer, **named: str) -> None:
    """Give `tokenizer` named special-token attributes (`tokenizer.boi_token`, `tokenizer.boi_token_id`, ...).

    transformers 5 keeps model-specific named tokens beside bos/eos/pad; they are saved as top-level keys of
    `tokenizer_config.json` and read back by `from_pretrained` (any `*_token` key), which is how the real
    checkpoints carry them. Processors of several families read them in `__init__`."""
    for name, token in named.items():
        if tokenizer.convert_tokens_to_ids(token) in (None, tokenizer.unk_token_id):
            raise ValueError(f"{name}={token!r} is not a single token of the tokenizer")
    tokenizer._set_model_specific_special_tokens(special_tokens=dict(named))


def split_at_special(texts: Iterable[str], special_tokens: Iterable[str]) -> list[str]:
    """`texts` cut at every special token, the special tokens dropped: the pieces BPE sees at encode time.

    `tokenizers`' BPE trainer does not cut training text at special tokens, so `"<start_of_turn>user"` would teach it
    the merge `">user"`, which never occurs when encoding (the special token is split out first). Training on the
    pieces makes the template's fixed text (`"user\\n"`, `"model\\n"`) merge into single tokens."""
    pattern = re.compile("|".join(re.escape(t) for t in sorted(special_tokens, key=len, reverse=True)))
    return [piece for text in texts for piece in pattern.split(text) if piece]


def token_ids(tokenizer, tokens: Iterable[str]) -> dict[str, int]:
    return {t: tokenizer.convert_tokens_to_ids(t) for t in tokens}


from mmrft.models.builders import gemma3, idefics3, internvl, llava_onevision, mistral3, qwen2_audio, qwen3_vl  # noqa: E402

_MODULES = {m.MODEL_TYPE: m for m in (qwen3_vl, gemma3, idefics3, mistral3, llava_onevision, internvl, qwen2_audio)}
Builder = Callable[[TinySize, list[str], int], tuple]
# model_type -> build(size, corpus, vocab_size) -> (model, processor)
BUILDERS: Registry[Builder] = Registry("tiny-model builder")
for _name, _module in _MODULES.items():
    BUILDERS.add(_name, _module.build)
# model_type -> media placeholder / delimiter tokens a policy must never sample (suppress them in generate).
MEDIA_TOKENS: dict[str, list[str]] = {name: list(m.MEDIA_TOKENS) for name, m in _MODULES.items()}
# model_type -> module-name fragments of the vision tower, the projector and the language model (for freezing and
# LoRA target selection: `any(f in name for f in fragments)` over `model.named_parameters()`).
MODULE_FRAGMENTS: dict[str, dict[str, tuple[str, ...]]] = {
    name: {"vision_tower": m.VISION_TOWER, "projector": m.PROJECTOR, "language_model": m.LANGUAGE_MODEL}
    for name, m in _MODULES.items()
}

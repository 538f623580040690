"""Tiny Qwen2-Audio (`model_type` qwen2_audio): a Whisper-style audio encoder + projector + Qwen2 decoder.

- Tower / projector module names: `audio_tower`, `multi_modal_projector`.
- Placeholders never to sample: `<|AUDIO|>`, `<|audio_bos|>`, `<|audio_eos|>`.
- Processor: `Qwen2AudioProcessor` = `WhisperFeatureExtractor` (numpy log-mel, no torchaudio) + tokenizer. Outputs
  `input_features` [num_audios, mels, frames] (one row per audio, padded to `chunk_length` seconds) and
  `feature_attention_mask` [num_audios, frames]; the text gets one `<|AUDIO|>` per encoder output frame
  ((frames-1)//2+1 after the stride-2 conv, then //2 by the pooling).
- The real checkpoints pad every clip to 30 s (3000 mel frames, 750 audio positions); the tiny model uses
  `chunk_length` 4 s (400 frames, `max_source_positions` 200), which is the encoder's fixed input length.
- No grounding convention (audio).
"""

from __future__ import annotations

from transformers import AutoModelForMultimodalLM, Qwen2AudioConfig, WhisperFeatureExtractor
from transformers.models.qwen2_audio.processing_qwen2_audio import Qwen2AudioProcessor

from mmrft.models.tiny import TinySize, text_config, train_bpe_tokenizer

MODEL_TYPE = "qwen2_audio"
VISION_TOWER = ("audio_tower",)  # the media encoder (audio here), under the name the other families use
PROJECTOR = ("multi_modal_projector",)
LANGUAGE_MODEL = ("language_model", "lm_head")
MEDIA_TOKENS = ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
AUDIO_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
SAMPLING_RATE = 16000
CHUNK_SECONDS = 4

# The chat template of Qwen2-Audio-7B-Instruct, with `{"type": "audio"}` items also recognised (the shipped one
# tests `'audio' in content`, i.e. an `audio`/`audio_url` key).
QWEN2_AUDIO_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}Audio {{ audio_count.value }}: "
    "<|audio_bos|><|AUDIO|><|audio_eos|>\n{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SCAFFOLD = [
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n",
    "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\n",
    "<|im_end|>\n<|im_start|>assistant\n",
]


def build(size: TinySize, corpus: list[str], vocab_size: int):
    tokenizer = train_bpe_tokenizer(
        corpus, special_tokens=AUDIO_SPECIAL_TOKENS, scaffold=SCAFFOLD, chat_template=QWEN2_AUDIO_CHAT_TEMPLATE,
        eos="<|im_end|>", pad="<|endoftext|>", vocab_size=vocab_size,
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in AUDIO_SPECIAL_TOKENS}
    frames = CHUNK_SECONDS * SAMPLING_RATE // 160
    config = Qwen2AudioConfig(
        audio_config=dict(
            num_mel_bins=128, encoder_layers=size.vision_depth, encoder_attention_heads=size.vision_heads,
            encoder_ffn_dim=size.vision_embed * 2, d_model=size.vision_embed, max_source_positions=frames // 2,
        ),
        text_config=text_config(
            size, len(tokenizer), bos=ids["<|endoftext|>"], eos=ids["<|im_end|>"], pad=ids["<|endoftext|>"],
            model_type="qwen2", tie_word_embeddings=True,
        ),
        audio_token_index=ids["<|AUDIO|>"],
    )
    config.tie_word_embeddings = True
    model = AutoModelForMultimodalLM.from_config(config)
    extractor = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=SAMPLING_RATE, hop_length=160, chunk_length=CHUNK_SECONDS, n_fft=400,
    )
    processor = Qwen2AudioProcessor(feature_extractor=extractor, tokenizer=tokenizer,
                                    chat_template=QWEN2_AUDIO_CHAT_TEMPLATE)
    return model, processor

"""Samples -> processor inputs for a batch of prompts (left padded; images, videos and audio decoded here)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmrft.data.clips import AudioClip, VideoClip
from mmrft.data.media import fit_pixels, load_image
from mmrft.data.prompts import (build_messages, target_text, template_renders_tools, tools_system_text,
                                 with_system_text)
from mmrft.data.schema import Sample
from mmrft.errors import DataError


MEDIA_KINDS = ("image", "video", "audio")
# Keys processors return per token besides input_ids and attention_mask (plain text tokens have 0 there).
PER_TOKEN_KEYS = ("mm_token_type_ids", "token_type_ids")


def infer_layout(inputs: dict[str, torch.Tensor], batch_size: int, counts: dict[str, list[int]]) -> dict[str, str]:
    """How the media tensors of a processor's output map onto prompts, by name and shape, for families that do
    not declare it (see `mmrft.models.families.Family.layout` for the rules)."""
    total = {kind: sum(c) for kind, c in counts.items()}
    layout: dict[str, str] = {}
    for key, t in inputs.items():
        if key in ("input_ids", "attention_mask"):
            continue
        if key.endswith("_grid_thw"):
            layout[key] = "per_video" if "video" in key else "per_image"
        elif key == "pixel_values_videos":
            layout[key] = "patches:video_grid_thw"
        elif key == "pixel_values" and "image_grid_thw" in inputs:
            layout[key] = "patches:image_grid_thw"
        elif key in ("input_features", "feature_attention_mask", "input_features_mask"):
            layout[key] = "per_audio"
        elif key == "second_per_grid_ts":
            layout[key] = "per_video"
        elif key == "image_sizes":
            layout[key] = "per_image"
        elif key in ("pixel_values", "pixel_attention_mask"):
            one_each = all(c == 1 for c in counts["image"])
            layout[key] = "per_image" if t.shape[0] == total["image"] and (one_each or t.shape[0] != batch_size) \
                else "per_prompt"
    return layout


@dataclass
class PromptBatch:
    """B prompts encoded by the processor. `inputs` holds `input_ids`, `attention_mask`, per-token keys the
    processor adds (`mm_token_type_ids`, `token_type_ids`) and media tensors (`pixel_values`, `image_grid_thw`,
    `pixel_values_videos`, `input_features`, ...). `layout` says how each media tensor's rows map onto the media
    items (family-declared, or inferred from names and shapes)."""

    samples: list[Sample]
    inputs: dict[str, torch.Tensor]
    images_per_prompt: list[int]
    videos_per_prompt: list[int] | None = None
    audios_per_prompt: list[int] | None = None
    layout: dict[str, str] | None = None
    # A multi-turn continuation: the tokens run past the samples' prompts (turns so far), and these images, returned
    # by its tool turns, follow each sample's own. Engines that take media as images rather than tensors (vLLM) read
    # them and the tokens as given; None for prompts made from samples alone.
    returned_images: list[list] | None = None

    def __post_init__(self) -> None:
        b = len(self.samples)
        self.videos_per_prompt = self.videos_per_prompt or [0] * b
        self.audios_per_prompt = self.audios_per_prompt or [0] * b
        if self.layout is None:
            self.layout = infer_layout(self.inputs, b, self.counts)
        self.layout = {k: v for k, v in self.layout.items() if k in self.inputs}

    @property
    def counts(self) -> dict[str, list[int]]:
        return {"image": self.images_per_prompt, "video": self.videos_per_prompt, "audio": self.audios_per_prompt}

    @property
    def prompt_len(self) -> int:
        return int(self.inputs["input_ids"].shape[1])

    def token_keys(self) -> list[str]:
        """Keys with one entry per prompt token ([B, P]): input_ids, attention_mask, mm_token_type_ids, ..."""
        return [k for k in self.inputs if k not in self.layout]

    def to(self, device: torch.device | str) -> "PromptBatch":
        self.inputs = {k: v.to(device) for k, v in self.inputs.items()}
        return self

    def media_spans(self) -> dict[str, list[tuple[int, int]]]:
        """Per-prompt (start, end) rows of each media tensor."""
        item_spans: dict[str, list[tuple[int, int]]] = {}
        for kind, counts in self.counts.items():
            spans, start = [], 0
            for c in counts:
                spans.append((start, start + c))
                start += c
            item_spans[kind] = spans
        spans: dict[str, list[tuple[int, int]]] = {}
        for key, rule in self.layout.items():
            if rule == "per_prompt":
                spans[key] = [(i, i + 1) for i in range(len(self.samples))]
            elif rule.startswith("per_"):
                spans[key] = item_spans[rule[len("per_"):]]
            elif rule.startswith("patches:"):
                grid_key = rule.split(":", 1)[1]
                kind = self.layout.get(grid_key, "per_image")[len("per_"):]
                per_item = self.inputs[grid_key].prod(dim=1).tolist()
                out, start = [], 0
                for a, b in item_spans[kind]:
                    n = int(sum(per_item[a:b]))
                    out.append((start, start + n))
                    start += n
                spans[key] = out
            else:
                raise ValueError(f"unknown media layout rule {rule!r} for {key!r}")
        return spans

    def select(self, idx: list[int], repeat: int = 1) -> "PromptBatch":
        """Prompts `idx` (each repeated `repeat` times in a row), with their media rows."""
        rows = [i for i in idx for _ in range(repeat)]
        spans = self.media_spans()
        inputs = {k: v[rows] for k, v in self.inputs.items() if k not in spans}
        for key, per_prompt in spans.items():
            t = self.inputs[key]
            parts = [t[per_prompt[i][0] : per_prompt[i][1]] for i in rows]
            inputs[key] = torch.cat(parts) if parts else t[:0]
        return PromptBatch([self.samples[i] for i in rows], inputs, [self.images_per_prompt[i] for i in rows],
                           [self.videos_per_prompt[i] for i in rows], [self.audios_per_prompt[i] for i in rows],
                           dict(self.layout))


def media_with_responses(batch: PromptBatch, prompt_of_row: list[int],
                         extra: list[dict[str, torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
    """The media tensors of a batch whose row r is prompt `prompt_of_row[r]` of `batch` followed by a response whose
    tool turns brought the media tensors `extra[r]` (processor outputs, in the order the images arrived): per key,
    row by row, the prompt's rows of that tensor, then the response's. The order of the image placeholders in the
    rows' token sequences, which is the order models match features to placeholders in."""
    spans = batch.media_spans()
    keys = list(spans) + [k for m in (extra or []) for k in m if k not in spans]
    out: dict[str, torch.Tensor] = {}
    for key in dict.fromkeys(keys):
        parts = []
        for r, p in enumerate(prompt_of_row):
            if key in spans:
                a, b = spans[key][p]
                parts.append(batch.inputs[key][a:b])
            if extra is not None and key in extra[r]:
                parts.append(extra[r][key].to(batch.inputs[key].device if key in batch.inputs else "cpu"))
        out[key] = torch.cat(parts)
    return out


def concat_prompt_batches(batches: list[PromptBatch], pad_id: int) -> PromptBatch:
    """One batch from several: per-token tensors left-padded to the longest prompt (pad id / 0), media rows
    concatenated in order. Extra left padding changes nothing: positions count attended tokens only."""
    if len(batches) == 1:
        return batches[0]
    length = max(b.prompt_len for b in batches)
    token_keys = set(batches[0].token_keys())
    inputs: dict[str, torch.Tensor] = {}
    for key in batches[0].inputs:
        parts = []
        for b in batches:
            t = b.inputs[key]
            if key in token_keys:
                fill = pad_id if key == "input_ids" else 0
                t = torch.cat([t.new_full((t.shape[0], length - b.prompt_len), fill), t], dim=1)
            parts.append(t)
        inputs[key] = torch.cat(parts)
    return PromptBatch([s for b in batches for s in b.samples], inputs,
                       [c for b in batches for c in b.images_per_prompt],
                       [c for b in batches for c in b.videos_per_prompt],
                       [c for b in batches for c in b.audios_per_prompt], dict(batches[0].layout))


@dataclass
class MediaOptions:
    """How images, videos and audio are read for the model (from `DataConfig`)."""

    max_pixels: int | None = None  # prompt images downsized to at most this many pixels (the model's first view)
    video_fps: float = 2.0
    video_max_frames: int = 16
    video_min_frames: int = 2
    video_max_pixels: int | None = None
    max_video_seconds: float | None = None
    max_audio_seconds: float | None = None
    video_time_hint: bool = True


def media_options(data) -> MediaOptions:
    """MediaOptions from a `DataConfig` (the fields of the same names)."""
    return MediaOptions(**{f: getattr(data, f) for f in MediaOptions.__dataclass_fields__})


def _processor_video_multiple(processor) -> int:
    """Frames per temporal patch of the family's video input (Qwen-VL: 2), so sampled counts divide evenly."""
    return int(getattr(getattr(processor, "video_processor", None), "temporal_patch_size", 1) or 1)


def _audio_extractor(processor):
    extractor = getattr(processor, "feature_extractor", None) or getattr(processor, "audio_processor", None)
    if not getattr(extractor, "sampling_rate", None):
        raise DataError(f"the model's processor ({type(processor).__name__}) has no audio feature extractor: this "
                        f"model does not take audio")
    return extractor


def _max_audio_seconds(processor, options: MediaOptions) -> float | None:
    """The limit on audio length: the option, else the feature extractor's window (Whisper-style extractors cut
    longer audio silently, which would grade the model on sound it never heard)."""
    if options.max_audio_seconds is not None:
        return options.max_audio_seconds
    window = getattr(_audio_extractor(processor), "chunk_length", None)
    return float(window) if window else None


def load_media(processor, samples: list[Sample], options: MediaOptions) -> tuple[list, list[VideoClip], list[AudioClip]]:
    """Decode every sample's images (a list per sample), videos (frames sampled per `options`) and audio
    (resampled to the processor's rate). Errors name the sample's file:line and the field."""
    images: list[list] = []
    videos: list[VideoClip] = []
    audios: list[AudioClip] = []
    for s in samples:
        images.append([fit_pixels(load_image(ref), options.max_pixels) for ref in s.images])
        for i, ref in enumerate(s.videos):
            from mmrft.data.video import load_video

            try:
                videos.append(load_video(ref, fps=options.video_fps, max_frames=options.video_max_frames,
                                         min_frames=options.video_min_frames,
                                         frame_multiple=_processor_video_multiple(processor),
                                         max_pixels=options.video_max_pixels, max_seconds=options.max_video_seconds))
            except DataError as e:
                raise DataError(f"{s.source or s.id}: field 'videos': item {i}: {e}") from None
        for i, ref in enumerate(s.audios):
            from mmrft.data.audio import load_audio

            try:
                audios.append(load_audio(ref, rate=int(_audio_extractor(processor).sampling_rate),
                                         max_seconds=_max_audio_seconds(processor, options)))
            except DataError as e:
                raise DataError(f"{s.source or s.id}: field 'audios': item {i}: {e}") from None
    return images, videos, audios


def processor_media_kwargs(images: list[list], videos: list[VideoClip], audios: list[AudioClip]) -> dict:
    """The processor keywords for decoded media, in the form the stock processors take: images nested per prompt
    (Gemma3 and LLaVA-OneVision count them per prompt; Qwen flattens them), videos as sampled frames with their
    rate in `video_metadata`, audio as arrays with their rate."""
    kwargs: dict = {}
    if any(images):
        kwargs["images"] = images
    if videos:
        kwargs["videos"] = [list(v.frames) for v in videos]
        kwargs["video_metadata"] = [
            {"total_num_frames": len(v.frames), "fps": v.fps, "duration": v.duration,
             "frames_indices": list(range(len(v.frames))), "width": v.size[0], "height": v.size[1]}
            for v in videos
        ]
        kwargs["do_sample_frames"] = False
    if audios:
        kwargs["audio"] = [a.samples for a in audios]
        kwargs["sampling_rate"] = audios[0].rate
    return kwargs


def video_time_text(clip: VideoClip) -> str:
    """What the prompt says about a video's timing, so answers in seconds are well defined."""
    return (f"(The video lasts {clip.duration:g} seconds; the {len(clip.frames)} frames shown are at "
            f"{clip.fps:g} frames per second, starting at {clip.timestamps[0]:g} s.)")


def render_prompt(processor, messages: list[dict], tools: list[dict] | None = None) -> str:
    """`messages` through the chat template, ready for the generation turn; with `tools` (function-calling schemas)
    the template renders them where it can (`template_renders_tools`), else they are described in the system
    message (`tools_system_text`, the documented fallback)."""
    if tools and template_renders_tools(processor):
        return processor.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False)
    if tools:
        messages = with_system_text(messages, tools_system_text(tools))
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def chat_texts(processor, samples: list[Sample], videos: list[VideoClip], fmt: str = "r1", system: str | None = None,
               options: MediaOptions | None = None, tools: list[dict] | None = None) -> list[str]:
    """Each sample's prompt as the processor's chat template writes it (media as the template's placeholders, ready
    for the generation turn). `videos`: the samples' decoded clips in order (`load_media`), for the timing hints.
    `tools`: the function-calling schemas of a multi-turn run's tools. What `encode_prompts` gives the processor,
    and what the vLLM engine sends."""
    options = options or MediaOptions()
    texts = []
    v = 0
    for s in samples:
        hints = []
        if options.video_time_hint:
            hints = [video_time_text(clip) for clip in videos[v : v + len(s.videos)]]
        v += len(s.videos)
        msgs = build_messages(s.prompt, len(s.images), fmt=fmt, system=system, num_videos=len(s.videos),
                              num_audios=len(s.audios), hints=hints)
        texts.append(render_prompt(processor, msgs, tools))
    return texts


def encode_prompts(processor, samples: list[Sample], fmt: str = "r1", system: str | None = None,
                   media: MediaOptions | None = None, layout: dict[str, str] | None = None,
                   tools: list[dict] | None = None) -> PromptBatch:
    """Chat-template, decode media and run the processor on a batch of samples (left padded); `tools`: the
    function-calling schemas the prompt offers (multi-turn runs)."""
    options = media or MediaOptions()
    images, videos, audios = load_media(processor, samples, options)
    texts = chat_texts(processor, samples, videos, fmt, system, options, tools)
    inputs = processor(text=texts, padding=True, return_tensors="pt", **processor_media_kwargs(images, videos, audios))
    inputs = {k: val for k, val in dict(inputs).items() if isinstance(val, torch.Tensor)}
    return PromptBatch(samples=samples, inputs=inputs, images_per_prompt=[len(s.images) for s in samples],
                       videos_per_prompt=[len(s.videos) for s in samples],
                       audios_per_prompt=[len(s.audios) for s in samples], layout=layout)


def encode_targets(processor, samples: list[Sample], fmt: str = "r1") -> list[list[int]]:
    """Token ids of each sample's supervised target, ending with the tokenizer's end-of-turn token."""
    tok = processor.tokenizer
    out = []
    for s in samples:
        text = target_text(s.answer, fmt=fmt, rationale=str(s.metadata.get("rationale", "")))
        out.append(tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
    return out

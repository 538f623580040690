"""The training data of a run: samples loaded and checked against the model, and the order prompts are drawn in."""

from __future__ import annotations

from mmrft.config import Config, eval_splits
from mmrft.data.schema import Sample
from mmrft.data.sources import load_samples
from mmrft.errors import ConfigError
from mmrft.models.families import family_of
from mmrft.models.grounding import adapt_boxes

BOX_CONVENTIONS = ("family", "data")


def load_data(cfg: Config) -> tuple[list[Sample], dict[str, list[Sample]]]:
    """(training samples, held-out samples by split name) of `cfg.data`, validated (media readable, not
    over-long); the splits are those of `mmrft.config.eval_splits` ({} without `data.eval`), each cut to
    `data.eval_limit`."""
    d = cfg.data
    if d.box_convention not in BOX_CONVENTIONS:
        raise ConfigError(f"data.box_convention: {d.box_convention!r} is not one of {', '.join(BOX_CONVENTIONS)}")
    limits = dict(max_video_seconds=d.max_video_seconds, max_audio_seconds=d.max_audio_seconds)
    train = load_samples(d.train, skip_bad_rows=d.skip_bad_rows, limit=d.train_limit, **limits)
    held_out = {name: load_samples(path, skip_bad_rows=d.skip_bad_rows, limit=d.eval_limit, **limits)
                for name, path in eval_splits(cfg).items()}
    return train, held_out


def fit_to_model(samples: list[Sample], cfg: Config, model, processor, what: str = "data.train") -> list[Sample]:
    """Check the model's family takes every modality the samples carry (a clear error instead of a processor
    traceback), and write grounding boxes in the family's convention when `data.box_convention` is "family"."""
    family = family_of(model)
    wanted = sorted({m for s in samples for m in s.modalities})
    if family.model_type != "generic":
        missing = [m for m in wanted if not family.supports(m)]
        if missing:
            raise ConfigError(f"{what}: the samples carry {', '.join(missing)} but model.path is a "
                              f"{family.model_type} model, which takes {', '.join(family.modalities)}")
    if cfg.data.box_convention == "family":
        samples = adapt_boxes(samples, family, processor)
    return samples

"""The training data of a run: samples loaded and checked against the model, and the order prompts are drawn in.

A dataset is loaded eagerly (a ``list[Sample]``, `mmrft.data.sources.load_samples`) or lazily (a `SampleTable` over
memory-mapped Arrow, `mmrft.data.sources.open_samples`: host memory independent of the row count): `data.lazy`
chooses, by default lazily when a dataset's files total more than `LAZY_AUTO_BYTES`. Both go through the same row
checks with the same messages; `data.validate_media` (by default on when eager, off when lazy) opens every media file
during the load. Everything here treats the two alike, and nothing per sample is computed up front for a lazy table:
the modalities come from its load-time check and the box rewrite runs as each sample is read.
"""

from __future__ import annotations

from typing import Sequence

from mmrft.config import Config, DataConfig, eval_splits
from mmrft.data.rows import dataset_bytes
from mmrft.data.schema import Sample
from mmrft.data.sources import load_samples, open_samples
from mmrft.data.table import SampleTable
from mmrft.errors import ConfigError
from mmrft.models.families import family_of
from mmrft.models.grounding import adapt_boxes

BOX_CONVENTIONS = ("family", "data")
LAZY_AUTO_BYTES = 64 * 2**20  # data.lazy=None: datasets whose files total more than this are read lazily


def load_split(path: str, d: DataConfig, limit: int | None) -> Sequence[Sample]:
    """One dataset of `data` (the training set or a held-out split), eagerly or lazily as `data.lazy` says."""
    lazy = d.lazy if d.lazy is not None else dataset_bytes(path) > LAZY_AUTO_BYTES
    validate = d.validate_media if d.validate_media is not None else not lazy
    options = dict(skip_bad_rows=d.skip_bad_rows, check_images=validate, limit=limit,
                   max_video_seconds=d.max_video_seconds, max_audio_seconds=d.max_audio_seconds)
    if lazy:
        return open_samples(path, cache_dir=d.cache_dir, **options)
    return load_samples(path, **options)


def load_data(cfg: Config) -> tuple[Sequence[Sample], dict[str, Sequence[Sample]]]:
    """(training samples, held-out samples by split name) of `cfg.data`, validated (media readable, not
    over-long, when `data.validate_media`); the splits are those of `mmrft.config.eval_splits` ({} without
    `data.eval`), each cut to `data.eval_limit`."""
    d = cfg.data
    if d.box_convention not in BOX_CONVENTIONS:
        raise ConfigError(f"data.box_convention: {d.box_convention!r} is not one of {', '.join(BOX_CONVENTIONS)}")
    train = load_split(d.train, d, d.train_limit)
    held_out = {name: load_split(path, d, d.eval_limit) for name, path in eval_splits(cfg).items()}
    return train, held_out


def fit_to_model(samples: Sequence[Sample], cfg: Config, model, processor,
                 what: str = "data.train") -> Sequence[Sample]:
    """Check the model's family takes every modality the samples carry (a clear error instead of a processor
    traceback), and write grounding boxes in the family's convention when `data.box_convention` is "family" (for a
    lazy `SampleTable`: as each sample is read)."""
    family = family_of(model)
    lazy = isinstance(samples, SampleTable)
    wanted = sorted(samples.modalities if lazy else {m for s in samples for m in s.modalities})
    if family.model_type != "generic":
        missing = [m for m in wanted if not family.supports(m)]
        if missing:
            raise ConfigError(f"{what}: the samples carry {', '.join(missing)} but model.path is a "
                              f"{family.model_type} model, which takes {', '.join(family.modalities)}")
    if cfg.data.box_convention == "family":
        if lazy:
            return samples.map(_BoxRewrite(family, processor))
        samples = adapt_boxes(samples, family, processor)
    return samples


class _BoxRewrite:
    """`adapt_boxes` for one sample, applied by a lazy table as each sample is read."""

    def __init__(self, family, processor) -> None:
        self.family, self.processor = family, processor

    def __call__(self, sample: Sample) -> Sample:
        return adapt_boxes([sample], self.family, self.processor)[0]

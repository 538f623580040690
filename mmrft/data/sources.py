"""Loading datasets from disk into :class:`~mmrft.data.schema.Sample` lists.

Accepted `path`s:

* a ``.jsonl`` file (one row per line; blank lines ignored), or a ``.json`` file holding a list of rows;
* a ``.parquet`` file;
* a directory containing ``data.jsonl``;
* a directory of parquet files (``*.parquet``, else ``data/*.parquet``; read in sorted order);
* a directory written by ``datasets.Dataset.save_to_disk``.

Rows are located in messages as ``file:line`` (jsonl, 1-based line numbers) or ``file:row N``
(json, parquet, datasets; N is the 0-based row index, as in ``ds[N]``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterator

from mmrft.data.media import check_image
from mmrft.data.schema import Sample
from mmrft.errors import DataError

log = logging.getLogger("mmrft.data")

_BATCH = 512
# (where, base_dir, row); `row` is a DataError for a row that could not even be parsed
_Row = tuple[str, Path, Any]


def load_samples(path: str | Path, *, skip_bad_rows: bool = False, check_images: bool = True,
                 limit: int | None = None, max_video_seconds: float | None = None,
                 max_audio_seconds: float | None = None) -> list[Sample]:
    """Load and validate a dataset. See :func:`load_samples_report`."""
    return load_samples_report(path, skip_bad_rows=skip_bad_rows, check_images=check_images, limit=limit,
                               max_video_seconds=max_video_seconds, max_audio_seconds=max_audio_seconds)[0]


def load_samples_report(path: str | Path, *, skip_bad_rows: bool = False, check_images: bool = True,
                        limit: int | None = None, max_video_seconds: float | None = None,
                        max_audio_seconds: float | None = None) -> tuple[list[Sample], list[str]]:
    """Load and validate a dataset; return ``(samples, skipped)``.

    A bad row (malformed JSON, missing field, wrong type, duplicate id, missing or unreadable image, video or
    audio file, or one longer than `max_video_seconds` / `max_audio_seconds`, when `check_images`) raises
    DataError naming the file, line/row and field, unless
    `skip_bad_rows`: then it is left out, logged on the ``mmrft.data`` logger, and its message is
    appended to `skipped`. `limit` stops after that many good samples. A dataset with no good
    sample is an error.
    """
    if limit is not None and limit < 1:
        raise DataError(f"limit must be a positive number of samples, got {limit}")
    samples: list[Sample] = []
    skipped: list[str] = []
    first_seen: dict[str, str] = {}
    image_errors: dict[str, DataError | None] = {}  # path -> result, for images shared by rows
    n_rows = 0
    for where, base_dir, row in _iter_rows(Path(path)):
        if limit is not None and len(samples) >= limit:
            break
        n_rows += 1
        try:
            if isinstance(row, DataError):
                raise row
            sample = Sample.from_row(row, base_dir=base_dir, where=where)
            if sample.id in first_seen:
                raise DataError(f"{where}: field 'id': duplicate id {sample.id!r} "
                                f"(first used at {first_seen[sample.id]})")
            if check_images:
                _check_images(sample, image_errors)
                _check_time_media(sample, max_video_seconds, max_audio_seconds)
        except DataError as e:
            if not skip_bad_rows:
                raise
            log.warning("skipping bad row: %s", e)
            skipped.append(str(e))
            continue
        first_seen[sample.id] = where
        samples.append(sample)
    if skipped:
        log.warning("skipped %d of %d rows in %s", len(skipped), n_rows, path)
    if not samples:
        detail = f"all {n_rows} rows were bad and skipped" if skipped else "it contains no rows"
        raise DataError(f"dataset {path} is empty: {detail}")
    return samples, skipped


def _check_time_media(sample: Sample, max_video_seconds: float | None, max_audio_seconds: float | None) -> None:
    """Videos and audio exist, are readable and not over-long (headers, and a video's first frame)."""
    if not (sample.videos or sample.audios):  # image-only data never imports PyAV / soundfile
        return
    from mmrft.data.audio import check_audio
    from mmrft.data.video import check_video

    for field, refs, check, limit in (("videos", sample.videos, check_video, max_video_seconds),
                                      ("audios", sample.audios, check_audio, max_audio_seconds)):
        for i, ref in enumerate(refs):
            try:
                check(ref, max_seconds=limit)
            except DataError as e:
                raise DataError(f"{sample.source}: field '{field}': item {i}: {e}") from None


def _check_images(sample: Sample, cache: dict[str, DataError | None]) -> None:
    """Every image of the sample opens: its `images`, and those of its supervised trajectory's tool turns."""
    refs = [("field 'images': item", i, ref) for i, ref in enumerate(sample.images)]
    refs += [(f"field 'trajectory': turn {t} images: item", i, ref) for t, turn in enumerate(sample.trajectory)
             for i, ref in enumerate(turn.get("images", []))]
    for where, i, ref in refs:
        key = ref if isinstance(ref, str) else None
        if key is not None and key in cache:
            error = cache[key]
        else:
            try:
                check_image(ref)
                error = None
            except DataError as e:
                error = e
            if key is not None:
                cache[key] = error
        if error is not None:
            raise DataError(f"{sample.source}: {where} {i}: {error}")


def _iter_rows(path: Path) -> Iterator[_Row]:
    if not path.exists():
        raise DataError(f"dataset path not found: {path}")
    if path.is_file():
        return _iter_file(path)
    if (path / "dataset_dict.json").is_file():
        raise DataError(_dataset_dict_message(path))
    if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
        return _iter_hf_dataset(path)
    if (path / "data.jsonl").is_file():
        return _iter_jsonl(path / "data.jsonl")
    parquets = sorted(path.glob("*.parquet")) or sorted(path.glob("data/*.parquet"))
    if parquets:
        return (row for f in parquets for row in _iter_parquet(f))
    raise DataError(f"no dataset found in directory {path}: expected data.jsonl, *.parquet, "
                    "data/*.parquet, or a directory written by datasets' save_to_disk")


def _iter_file(path: Path) -> Iterator[_Row]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _iter_jsonl(path)
    if suffix == ".json":
        return _iter_json(path)
    if suffix == ".parquet":
        return _iter_parquet(path)
    raise DataError(f"unsupported dataset file type '{suffix or path.name}': {path} "
                    "(expected .jsonl, .json, .parquet, or a directory)")


def _iter_jsonl(path: Path) -> Iterator[_Row]:
    base = path.parent
    try:
        with open(path, encoding="utf-8-sig") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    yield where, base, json.loads(line)
                except json.JSONDecodeError as e:
                    yield where, base, DataError(f"{where}: malformed JSON: {e}")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text: {e}") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from None


def _iter_json(path: Path) -> Iterator[_Row]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON list of rows, got {type(rows).__name__} "
                        "(use .jsonl for one row per line)")
    for i, row in enumerate(rows):
        yield f"{path}:row {i}", path.parent, row


def _iter_parquet(path: Path) -> Iterator[_Row]:
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=_BATCH)
        i = 0
        for batch in batches:
            for row in batch.to_pylist():
                yield f"{path}:row {i}", path.parent, row
                i += 1
    except (OSError, ValueError) as e:  # pyarrow.ArrowException subclasses these
        raise DataError(f"cannot read parquet file {path}: {e}") from None


def _iter_hf_dataset(path: Path) -> Iterator[_Row]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise DataError(f"cannot load datasets directory {path}: {e}") from None
    if isinstance(ds, datasets.DatasetDict):
        raise DataError(_dataset_dict_message(path, list(ds)))
    # the arrow format yields the raw storage: Image features stay {"bytes", "path"} dicts, undecoded
    i = 0
    for table in ds.with_format("arrow").iter(batch_size=_BATCH):
        for row in table.to_pylist():
            yield f"{path}:row {i}", path, row
            i += 1


def _dataset_dict_message(path: Path, splits: list[str] | None = None) -> str:
    if splits is None:
        try:
            splits = json.loads((path / "dataset_dict.json").read_text()).get("splits") or []
        except (OSError, ValueError, AttributeError):
            splits = []
    names = ", ".join(splits) or "none found"
    example = f" (e.g. {path / splits[0]})" if splits else ""
    return (f"{path} holds a datasets DatasetDict with splits [{names}]; "
            f"pass the directory of one split instead{example}")

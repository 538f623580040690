"""Loading datasets from disk as :class:`~mmrft.data.schema.Sample` lists, or lazily as a :class:`SampleTable`.

Accepted `path`s:

* a ``.jsonl`` file (one row per line; blank lines ignored), or a ``.json`` file holding a list of rows;
* a ``.parquet`` file;
* a directory containing ``data.jsonl``;
* a directory of parquet files (``*.parquet``, else ``data/*.parquet``; read in sorted order);
* a directory written by ``datasets.Dataset.save_to_disk``.

Rows are located in messages as ``file:line`` (jsonl, 1-based line numbers) or ``file:row N``
(json, parquet, datasets; N is the 0-based row index, as in ``ds[N]``).

Two ways in, with the same checks and messages (:class:`_RowChecker`, in file order: the row parses into a Sample,
its id is new among the rows kept so far, and with `check_images` its media open):

* :func:`load_samples` reads every row into a ``list[Sample]``: memory grows with the row count.
* :func:`open_samples` checks every row in one streamed pass and returns a :class:`~mmrft.data.table.SampleTable`
  over memory-mapped Arrow (:mod:`mmrft.data.rows`): a row becomes a Sample only when it is read, images are decoded
  only when a batch is built, and duplicate ids are tracked as hashes in arrays, so host memory stays bounded (about
  16 bytes a row during the check, 8 a row afterwards when rows were skipped, nothing per row otherwise). The
  check's outcome (kept rows, skipped rows' messages) is cached beside the converted data when media are not
  opened, so opening the same unchanged file again does not re-parse it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from mmrft import atomic
from mmrft.data.media import check_image
from mmrft.data.rows import RowSource, load_datasets_dir, resolve_files
from mmrft.data.schema import Sample
from mmrft.data.table import HashedIds, SampleTable
from mmrft.errors import DataError

log = logging.getLogger("mmrft.data")

_BATCH = 512
_IMAGE_CACHE = 4096  # image check results remembered (rows often share images); bounded for big datasets
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
    _check_limit(limit)
    check = _RowChecker(_DictIds(), skip_bad_rows=skip_bad_rows, check_images=check_images,
                        max_video_seconds=max_video_seconds, max_audio_seconds=max_audio_seconds)
    samples: list[Sample] = []
    for pos, (where, base_dir, row) in enumerate(_iter_rows(Path(path))):
        if limit is not None and len(samples) >= limit:
            break
        sample = check(pos, where, base_dir, row)
        if sample is not None:
            samples.append(sample)
    check.finish(path)
    return samples, check.skipped


def open_samples(path: str | Path, *, skip_bad_rows: bool = False, check_images: bool = False,
                 limit: int | None = None, max_video_seconds: float | None = None,
                 max_audio_seconds: float | None = None, cache_dir: str | Path | None = None) -> SampleTable:
    """The dataset at `path` as a lazily read :class:`SampleTable`, checked like :func:`load_samples_report` in one
    streamed pass (its `skipped` attribute holds the skipped rows' messages).

    jsonl, json and parquet files are converted once into Arrow files under the data cache (`cache_dir`, else
    ``$MMRFT_DATA_CACHE``, else ``~/.cache/mmrft/data``; see :mod:`mmrft.data.rows`); a `datasets` directory is
    memory-mapped where it is. `check_images` (off by default here) opens every image, video and audio file during
    the pass; without it an unreadable file is reported when a batch that holds it is built."""
    _check_limit(limit)
    source = RowSource(path, cache_dir=cache_dir)
    key = None if check_images else _scan_key(skip_bad_rows, limit)
    cached = _read_scan(source.entry, key) if key else None
    if cached is not None:
        table = SampleTable(source, **cached)
        for message in table.skipped:
            log.warning("skipping bad row: %s", message)
        if table.skipped:
            log.warning("skipped %d rows in %s (checked before, cached in %s)", len(table.skipped), path,
                        source.entry)
        return table

    def id_of(pos: int) -> str:
        return Sample.from_row(source.row(pos), base_dir=source.base(pos), where=source.where(pos)).id

    check = _RowChecker(HashedIds(id_of, source.where), skip_bad_rows=skip_bad_rows, check_images=check_images,
                        max_video_seconds=max_video_seconds, max_audio_seconds=max_audio_seconds)
    kept: list[np.ndarray] = []  # positions of kept rows, a batch at a time
    batch: list[int] = []
    modalities: set[str] = set()
    for pos, where, base_dir, row in source.iter_rows():
        if limit is not None and check.n_kept >= limit:
            break
        sample = check(pos, where, base_dir, row)
        if sample is not None:
            modalities.update(sample.modalities)
            batch.append(pos)
            if len(batch) >= 65536:
                kept.append(np.array(batch, dtype=np.int64))
                batch = []
    kept.append(np.array(batch, dtype=np.int64))
    check.finish(path)
    positions: Optional[np.ndarray] = np.concatenate(kept)
    if positions[-1] == len(positions) - 1:  # increasing, so the first rows, all kept: no index needed
        positions = None
    table = SampleTable(source, check.n_kept, positions, check.skipped, frozenset(modalities))
    if key:
        _write_scan(source.entry, key, table)
    return table


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise DataError(f"limit must be a positive number of samples, got {limit}")


class _DictIds:
    """The ids of the rows kept so far, in a dict (for :func:`load_samples`, which holds every sample anyway)."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def first(self, sid: str) -> Optional[str]:
        return self.seen.get(sid)

    def add(self, sid: str, pos: int, where: str) -> None:
        self.seen[sid] = where


class _RowChecker:
    """The checks every row goes through, in file order; `__call__` returns the row's Sample, or None when the row
    is bad and `skip_bad_rows` (logged, its message appended to `skipped`); a bad row raises DataError otherwise."""

    def __init__(self, ids, *, skip_bad_rows: bool, check_images: bool, max_video_seconds: float | None,
                 max_audio_seconds: float | None) -> None:
        self.ids, self.skip_bad_rows, self.check_images = ids, skip_bad_rows, check_images
        self.max_video_seconds, self.max_audio_seconds = max_video_seconds, max_audio_seconds
        self.skipped: list[str] = []
        self.image_errors: dict[str, DataError | None] = {}  # path -> result, for images shared by rows
        self.n_rows = self.n_kept = 0

    def __call__(self, pos: int, where: str, base_dir: Path, row: Any) -> Optional[Sample]:
        self.n_rows += 1
        try:
            if isinstance(row, DataError):
                raise row
            sample = Sample.from_row(row, base_dir=base_dir, where=where)
            first = self.ids.first(sample.id)
            if first is not None:
                raise DataError(f"{where}: field 'id': duplicate id {sample.id!r} (first used at {first})")
            if self.check_images:
                if len(self.image_errors) >= _IMAGE_CACHE:
                    self.image_errors.clear()
                _check_images(sample, self.image_errors)
                _check_time_media(sample, self.max_video_seconds, self.max_audio_seconds)
        except DataError as e:
            if not self.skip_bad_rows:
                raise
            log.warning("skipping bad row: %s", e)
            self.skipped.append(str(e))
            return None
        self.ids.add(sample.id, pos, where)
        self.n_kept += 1
        return sample

    def finish(self, path: str | Path) -> None:
        """Report the skipped rows; a dataset with no good row is an error."""
        if self.skipped:
            log.warning("skipped %d of %d rows in %s", len(self.skipped), self.n_rows, path)
        if not self.n_kept:
            detail = f"all {self.n_rows} rows were bad and skipped" if self.skipped else "it contains no rows"
            raise DataError(f"dataset {path} is empty: {detail}")


# -- the check's outcome, cached beside the converted data ------------------------------------------------------------

def _scan_key(skip_bad_rows: bool, limit: int | None) -> str:
    """What the check's outcome depends on besides the data (whose fingerprint names the cache entry): the options,
    and the code that parses rows (a changed schema invalidates every cached outcome)."""
    h = hashlib.sha256(f"skip={skip_bad_rows} limit={limit}\n".encode())
    for module in ("schema.py", "sources.py", "rows.py", "table.py"):
        h.update((Path(__file__).parent / module).read_bytes())
    return h.hexdigest()[:16]


def _read_scan(entry: Path, key: str) -> Optional[dict]:
    meta = entry / f"scan-{key}.json"
    try:
        info = json.loads(meta.read_text())
        positions = np.load(entry / f"scan-{key}.npy", allow_pickle=False) if info["indexed"] else None
    except (OSError, ValueError, KeyError):
        return None
    return {"n": info["n"], "positions": positions, "skipped": info["skipped"],
            "modalities": frozenset(info["modalities"])}


def _write_scan(entry: Path, key: str, table: SampleTable) -> None:
    try:
        entry.mkdir(parents=True, exist_ok=True)
        if table.positions is not None:
            with atomic.file(entry / f"scan-{key}.npy") as tmp:
                np.save(tmp, table.positions, allow_pickle=False)
        info = {"n": table.n, "indexed": table.positions is not None, "skipped": table.skipped,
                "modalities": sorted(table.modalities)}
        atomic.write_text(entry / f"scan-{key}.json", json.dumps(info))
    except OSError as e:  # the data itself loaded; only the next open will check it again
        log.info("could not cache the check of %s in %s: %s", table.path, entry, e)


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
    kind, files = resolve_files(path)
    if kind == "jsonl":
        return _iter_jsonl(files[0])
    if kind == "json":
        return _iter_json(files[0])
    if kind == "datasets":
        return _iter_hf_dataset(files[0])
    return (row for f in files for row in _iter_parquet(f))


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
    ds = load_datasets_dir(path)
    # the arrow format yields the raw storage: Image features stay {"bytes", "path"} dicts, undecoded
    i = 0
    for table in ds.with_format("arrow").iter(batch_size=_BATCH):
        for row in table.to_pylist():
            yield f"{path}:row {i}", path, row
            i += 1

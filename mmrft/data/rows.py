"""Raw dataset rows on disk, readable by position without holding the dataset in memory.

A :class:`RowSource` is a dataset (`.jsonl`, `.json`, parquet file(s), or a `datasets` `save_to_disk` directory) as
memory-mapped Arrow tables: `row(pos)` reads one row, `iter_rows()` streams them all in order (read batch by batch
into ordinary memory that is freed again, so a full pass does not leave the dataset's pages mapped in), `where(pos)`
names a row as the messages do (``file:line`` for jsonl, ``file:row N`` otherwise).

* A `datasets` directory is already Arrow: its files (as `datasets.load_from_disk` lists them) are memory-mapped
  where they are, nothing is written.
* A jsonl / json / parquet file is converted once into an Arrow IPC file in the *data cache* and memory-mapped from
  there. jsonl and json rows are kept as their raw JSON text (one string column, plus the 1-based line number), so
  rows of any shape load (Arrow's JSON reader would infer one type per column and refuse an `answer` that is a
  string in one row and a box in the next) and a malformed line is reported by its line, when the row is read.
  Parquet keeps its own columns; embedded image bytes are copied into the cache file (an image is decoded only when
  a batch needs it).

The data cache is `data.cache_dir`, else ``$MMRFT_DATA_CACHE``, else ``$XDG_CACHE_HOME/mmrft/data`` (by default
``~/.cache/mmrft/data``); never the data's own directory, which may be read-only. An entry is named after the data
file and a fingerprint of its path, size and modification time: a changed file is converted again and the entry of
its previous version removed. Entries are written to a temporary name and renamed into place, so processes that
convert the same file at once (the ranks of a torchrun job) each see a whole file.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from mmrft.errors import DataError

CACHE_FORMAT = 1  # bump when the layout of a cache entry changes
_BATCH = 4096  # rows per Arrow record batch written, and per batch read by iter_rows
_RELEASE_EVERY = 16  # rows read by position between releases of the mapped pages read (a read can map ~1 MB)


def resolve_files(path: Path) -> tuple[str, list[Path]]:
    """(kind, files) of the dataset at `path`: kind is jsonl, json, parquet or datasets (files: the directory)."""
    if not path.exists():
        raise DataError(f"dataset path not found: {path}")
    if path.is_file():
        suffix = path.suffix.lower()
        kinds = {".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}
        if suffix not in kinds:
            raise DataError(f"unsupported dataset file type '{suffix or path.name}': {path} "
                            "(expected .jsonl, .json, .parquet, or a directory)")
        return kinds[suffix], [path]
    if (path / "dataset_dict.json").is_file():
        raise DataError(dataset_dict_message(path))
    if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
        return "datasets", [path]
    if (path / "data.jsonl").is_file():
        return "jsonl", [path / "data.jsonl"]
    parquets = sorted(path.glob("*.parquet")) or sorted(path.glob("data/*.parquet"))
    if parquets:
        return "parquet", parquets
    raise DataError(f"no dataset found in directory {path}: expected data.jsonl, *.parquet, "
                    "data/*.parquet, or a directory written by datasets' save_to_disk")


def dataset_dict_message(path: Path, splits: list[str] | None = None) -> str:
    if splits is None:
        try:
            splits = json.loads((path / "dataset_dict.json").read_text()).get("splits") or []
        except (OSError, ValueError, AttributeError):
            splits = []
    names = ", ".join(splits) or "none found"
    example = f" (e.g. {path / splits[0]})" if splits else ""
    return (f"{path} holds a datasets DatasetDict with splits [{names}]; "
            f"pass the directory of one split instead{example}")


def dataset_bytes(path: str | Path) -> int:
    """Total size in bytes of the files of the dataset at `path` (for the automatic choice of lazy loading)."""
    kind, files = resolve_files(Path(path))
    if kind == "datasets":
        files = [f for f in files[0].rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files)


def fingerprint(path: Path) -> str:
    """A hash of the dataset's files: resolved paths, sizes and modification times."""
    kind, files = resolve_files(path)
    if kind == "datasets":
        files = sorted(f for f in files[0].rglob("*") if f.is_file())
    h = hashlib.sha256(f"{CACHE_FORMAT}\n{kind}\n".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where converted datasets live: `cache_dir`, else $MMRFT_DATA_CACHE, else $XDG_CACHE_HOME/mmrft/data."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("MMRFT_DATA_CACHE"):
        return Path(os.environ["MMRFT_DATA_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "mmrft" / "data"


def cache_entry(path: Path, cache_dir: str | Path | None) -> Path:
    """The cache directory of this version of the dataset at `path` (not created here)."""
    resolved = path.resolve()
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in resolved.name)[:40] or "data"
    key = hashlib.sha256(str(resolved).encode()).hexdigest()[:10]
    return cache_root(cache_dir) / f"{stem}-{key}-{fingerprint(path)}"


@dataclass
class _Part:
    """One data file as an Arrow table; rows [offset, offset + n) of the source."""

    file: Path  # named in messages
    base: Path  # media paths are relative to it
    kind: str  # jsonl, json, parquet, datasets
    table: Any  # pyarrow.Table (memory-mapped), or a datasets.Dataset in arrow format
    stream: Any  # a callable yielding pyarrow RecordBatches / Tables of the rows, in order, not memory-mapped
    offset: int
    n: int
    mapping: Optional["_Mapping"] = None


class RowSource:
    """A dataset's raw rows by position (see the module docstring). `row(pos)` is a dict, or a DataError for a row
    that cannot be parsed (malformed JSON), to be raised by the caller as it would raise any bad row."""

    def __init__(self, path: str | Path, *, cache_dir: str | Path | None = None) -> None:
        self.path = Path(path)
        kind, files = resolve_files(self.path)
        self.entry = cache_entry(self.path, cache_dir)
        if kind == "datasets":
            self.parts = _open_datasets_dir(files[0])
        else:
            _convert(kind, files, self.entry)
            self.parts, offset = [], 0
            for i, f in enumerate(files):
                part = _open_ipc(self.entry / f"part-{i:05d}.arrow", f, kind, offset)
                self.parts.append(part)
                offset += part.n
        self.n = sum(p.n for p in self.parts)
        self._starts = np.array([p.offset for p in self.parts], dtype=np.int64)
        self._reads = 0
        self.release()  # the pages opening touched (batch headers)

    def release(self) -> None:
        """Drop the mapped pages read so far from the resident set (see `_Mapping`)."""
        for part in self.parts:
            if part.mapping is not None:
                part.mapping.release()

    def __len__(self) -> int:
        return self.n

    def _locate(self, pos: int) -> tuple[_Part, int]:
        if not 0 <= pos < self.n:
            raise IndexError(f"row {pos} out of range for {self.n} rows of {self.path}")
        part = self.parts[int(np.searchsorted(self._starts, pos, side="right")) - 1]
        return part, pos - part.offset

    def where(self, pos: int) -> str:
        part, local = self._locate(pos)
        if part.kind == "jsonl":
            return f"{part.file}:{part.table.column('line')[local].as_py()}"
        return f"{part.file}:row {part.offset + local if part.kind == 'datasets' else local}"

    def base(self, pos: int) -> Path:
        return self._locate(pos)[0].base

    def row(self, pos: int) -> Any:
        part, local = self._locate(pos)
        self._reads += 1
        if self._reads % _RELEASE_EVERY == 0:
            self.release()
        if part.kind in ("jsonl", "json"):
            return _parse(part.table.column("text")[local].as_py(), self.where(pos))
        if part.mapping is None:  # a datasets.Dataset
            return part.table[local].to_pylist()[0]
        return part.table.slice(local, 1).to_pylist()[0]

    def iter_rows(self) -> Iterator[tuple[int, str, Path, Any]]:
        """(pos, where, base_dir, row) of every row in order, read batch by batch (not through the memory map)."""
        for part in self.parts:
            local = 0
            for batch in part.stream():
                if part.kind in ("jsonl", "json"):
                    texts = batch.column("text").to_pylist()
                    lines = batch.column("line").to_pylist()
                    for text, line in zip(texts, lines):
                        where = f"{part.file}:{line}" if part.kind == "jsonl" else f"{part.file}:row {local}"
                        yield part.offset + local, where, part.base, _parse(text, where)
                        local += 1
                else:
                    first = part.offset if part.kind == "datasets" else 0  # a datasets dir numbers rows across files
                    for row in batch.to_pylist():
                        yield part.offset + local, f"{part.file}:row {first + local}", part.base, row
                        local += 1


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        return DataError(f"{where}: malformed JSON: {e}")


def _unwritable(entry: Path, e: OSError) -> str:
    return (f"cannot write the data cache {entry.parent} (set data.cache_dir or MMRFT_DATA_CACHE to a writable "
            f"directory): {e}")


# -- conversion into the cache ---------------------------------------------------------------------------------------

def _convert(kind: str, files: list[Path], entry: Path) -> None:
    """Write `entry/part-NNNNN.arrow` for each file unless the entry exists; prune older versions of the dataset."""
    if (entry / "done").is_file():
        return
    import pyarrow as pa

    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    except OSError as e:
        raise DataError(_unwritable(entry, e)) from None
    try:
        for i, f in enumerate(files):
            batches = {"jsonl": _jsonl_batches, "json": _json_batches, "parquet": _parquet_batches}[kind](f)
            first = next(batches, None)
            schema = first.schema if first is not None else _text_schema()
            with pa.OSFile(str(tmp / f"part-{i:05d}.arrow"), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
                if first is not None:
                    writer.write_batch(first)
                for batch in batches:
                    writer.write_batch(batch)
        (tmp / "done").write_text(json.dumps({"files": [str(f) for f in files], "kind": kind}))
        try:
            os.rename(tmp, entry)
        except OSError:  # another process finished first: use its entry
            if not (entry / "done").is_file():
                raise
    except OSError as e:
        raise DataError(_unwritable(entry, e)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prefix = entry.name.rsplit("-", 1)[0] + "-"  # the same file's entries for earlier versions of it
    for old in entry.parent.glob(prefix + "*"):
        if old != entry and not old.name.startswith(".") and len(old.name) == len(entry.name):
            shutil.rmtree(old, ignore_errors=True)


def _text_schema():
    import pyarrow as pa

    return pa.schema([("line", pa.int64()), ("text", pa.string())])


def _text_batch(lines: list[int], texts: list[str]):
    import pyarrow as pa

    return pa.record_batch([pa.array(lines, pa.int64()), pa.array(texts, pa.string())], schema=_text_schema())


def _jsonl_batches(path: Path):
    lines: list[int] = []
    texts: list[str] = []
    try:
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                if not text.strip():
                    continue
                lines.append(lineno)
                texts.append(text)
                if len(texts) >= _BATCH:
                    yield _text_batch(lines, texts)
                    lines, texts = [], []
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text: {e}") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if texts:
        yield _text_batch(lines, texts)


def _json_batches(path: Path):
    """A .json list is read whole (once, at conversion): write big datasets as .jsonl."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON list of rows, got {type(rows).__name__} "
                        "(use .jsonl for one row per line)")
    for start in range(0, len(rows), _BATCH):
        chunk = rows[start:start + _BATCH]
        yield _text_batch(list(range(start, start + len(chunk))), [json.dumps(r) for r in chunk])


def _parquet_batches(path: Path):
    import pyarrow.parquet as pq

    try:
        yield from pq.ParquetFile(path).iter_batches(batch_size=_BATCH)
    except (OSError, ValueError) as e:  # pyarrow.ArrowException subclasses these
        raise DataError(f"cannot read parquet file {path}: {e}") from None


class _Mapping:
    """A read-only memory map of an Arrow file, advised for random access (no read-ahead). `release()` drops the
    pages read so far from this process's resident set; they stay in the page cache and are mapped in again on the
    next read, so the resident set stays bounded however many rows a long run reads. (Without it, every row read
    leaves its pages mapped: the kernel maps a whole page-cache folio on a fault, measured ~1 MB a random read, and a
    long run's resident set would grow towards the file's size; reclaimable page cache, but counted as RSS.)"""

    def __init__(self, path: Path) -> None:
        import pyarrow as pa

        with open(path, "rb") as f:
            self.map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._advise("MADV_RANDOM")
        self.buffer = pa.py_buffer(self.map)  # zero-copy: Arrow reads the mapped pages themselves

    def _advise(self, name: str) -> None:
        flag = getattr(mmap, name, None)
        if flag is not None and hasattr(self.map, "madvise"):
            self.map.madvise(flag)

    def release(self) -> None:
        self._advise("MADV_DONTNEED")


def _open_ipc(arrow: Path, file: Path, kind: str, offset: int) -> _Part:
    import pyarrow as pa

    mapping = _Mapping(arrow)
    table = pa.ipc.open_file(pa.BufferReader(mapping.buffer)).read_all()

    def stream():
        with pa.OSFile(str(arrow), "rb") as f:
            reader = pa.ipc.open_file(f)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)

    return _Part(file, file.parent, kind, table, stream, offset, table.num_rows, mapping)


def load_datasets_dir(path: Path):
    """The `datasets.Dataset` that `save_to_disk` wrote at `path`; a DataError for one that does not load or for a
    DatasetDict (naming its splits)."""
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise DataError(f"cannot load datasets directory {path}: {e}") from None
    if isinstance(ds, datasets.DatasetDict):
        raise DataError(dataset_dict_message(path, list(ds)))
    return ds


def _open_datasets_dir(path: Path) -> list[_Part]:
    """A `save_to_disk` directory: its Arrow stream files mapped as they are (nothing written), one part each."""
    import pyarrow as pa

    ds = load_datasets_dir(path)
    files = [Path(c["filename"]) for c in ds.cache_files]
    if ds._indices is not None or not files:  # a selection over its files: read through datasets, in arrow format
        # (the arrow format yields the raw storage: Image features stay {"bytes", "path"} dicts, undecoded)
        arrow = ds.with_format("arrow")
        return [_Part(path, path, "datasets", arrow, lambda: arrow.iter(batch_size=_BATCH), 0, len(ds))]
    parts, offset = [], 0
    for name in files:
        mapping = _Mapping(name)
        table = pa.ipc.open_stream(pa.BufferReader(mapping.buffer)).read_all()

        def stream(name=name):
            with pa.OSFile(str(name), "rb") as f:
                yield from pa.ipc.open_stream(f)

        parts.append(_Part(path, path, "datasets", table, stream, offset, table.num_rows, mapping))
        offset += table.num_rows
    return parts

"""A dataset as a read-only sequence of samples over memory-mapped Arrow rows, for datasets too big for a list.

:class:`SampleTable` is a ``Sequence[Sample]``: ``len``, indexing (a row becomes a :class:`Sample` only when it is
read, ``table[i]``), slicing (a list), iteration (batch by batch). It holds the dataset's :class:`RowSource`, the
positions of the rows kept after checking (``None`` when every row was kept: nothing per row is stored) and what the
check learnt (`skipped` rows' messages, the `modalities` the samples carry). `map(fn)` gives a view whose samples
pass through `fn` when read (e.g. a per-sample rewrite for the model), so nothing is rewritten up front.

:class:`HashedIds` is the duplicate-id check for such datasets: a sorted array of 64-bit hashes of the ids seen and
the positions of their rows (16 bytes a row, no Python object per row); a hash found again is confirmed by reading
the earlier row's id, so a hash collision is never reported as a duplicate.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, overload

import numpy as np

from mmrft.data.rows import RowSource
from mmrft.data.schema import Sample
from mmrft.errors import DataError


def id_hash(sid: str) -> int:
    """A 64-bit hash of a sample id, the same in every process (Python's `hash` of a str is salted per process)."""
    return int.from_bytes(hashlib.blake2b(sid.encode("utf-8"), digest_size=8).digest(), "little")


class HashedIds:
    """Ids of the rows kept so far: `first(id)` is the `where` of the kept row with that id, else None.

    Recent ids wait in a small dict (at most `flush_every`) and are then merged into the sorted arrays, so memory is
    16 bytes a row plus a bounded dict. `id_of(pos)` / `where_of(pos)` read a kept row back (hash hits only)."""

    def __init__(self, id_of: Callable[[int], str], where_of: Callable[[int], str], flush_every: int = 8192) -> None:
        self.id_of, self.where_of, self.flush_every = id_of, where_of, flush_every
        self.hashes = np.empty(0, dtype=np.uint64)
        self.positions = np.empty(0, dtype=np.int64)
        self.pending: dict[int, tuple[str, int, str]] = {}  # hash -> (id, pos, where), not yet merged
        self._last: tuple[Optional[str], int] = (None, 0)

    def first(self, sid: str) -> Optional[str]:
        h = self._hash(sid)
        hit = self.pending.get(h)
        if hit is not None:
            return hit[2] if hit[0] == sid else None
        i = int(np.searchsorted(self.hashes, np.uint64(h)))
        if i < len(self.hashes) and int(self.hashes[i]) == h:
            pos = int(self.positions[i])
            if self.id_of(pos) == sid:  # else a hash collision: a different id
                return self.where_of(pos)
        return None

    def _hash(self, sid: str) -> int:
        if self._last[0] != sid:  # `add` follows `first` for the same id: hash it once
            self._last = (sid, id_hash(sid))
        return self._last[1]

    def add(self, sid: str, pos: int, where: str) -> None:
        h = self._hash(sid)
        if h not in self.pending:
            self.pending[h] = (sid, pos, where)
        if len(self.pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        hashes = np.fromiter(self.pending, dtype=np.uint64, count=len(self.pending))
        positions = np.fromiter((v[1] for v in self.pending.values()), dtype=np.int64, count=len(self.pending))
        order = np.argsort(hashes, kind="stable")
        hashes, positions = hashes[order], positions[order]
        at = np.searchsorted(self.hashes, hashes)
        self.hashes = np.insert(self.hashes, at, hashes)
        self.positions = np.insert(self.positions, at, positions)
        self.pending.clear()


class SampleTable(Sequence[Sample]):
    """Samples read from `source` on demand: sample i is the row at `positions[i]` (row i when `positions` is None),
    turned into a Sample (and passed through the view's functions) each time it is read."""

    def __init__(self, source: RowSource, n: int, positions: Optional[np.ndarray] = None,
                 skipped: Sequence[str] = (), modalities: frozenset[str] = frozenset(),
                 transforms: tuple[Callable[[Sample], Sample], ...] = ()) -> None:
        if positions is not None and len(positions) != n:
            raise ValueError(f"{len(positions)} positions for {n} samples")
        self.source, self.n, self.positions = source, n, positions
        self.skipped, self.modalities, self.transforms = list(skipped), frozenset(modalities), transforms

    @property
    def path(self) -> Path:
        return self.source.path

    def __len__(self) -> int:
        return self.n

    def _position(self, i: int) -> int:
        return i if self.positions is None else int(self.positions[i])

    def _sample(self, pos: int, where: str, base: Path, row: Any) -> Sample:
        if isinstance(row, DataError):
            raise row
        sample = Sample.from_row(row, base_dir=base, where=where)
        for fn in self.transforms:
            sample = fn(sample)
        return sample

    @overload
    def __getitem__(self, i: int) -> Sample: ...

    @overload
    def __getitem__(self, i: slice) -> list[Sample]: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        i = int(i)  # numpy and torch integers too
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(f"sample {i} out of range: {self.path} has {self.n} samples")
        pos = self._position(i)
        return self._sample(pos, self.source.where(pos), self.source.base(pos), self.source.row(pos))

    def __iter__(self) -> Iterator[Sample]:
        """Every sample in order, streamed batch by batch."""
        want = 0  # index of the next sample to yield
        for pos, where, base, row in self.source.iter_rows():
            if want >= self.n:
                return
            if pos == self._position(want):
                yield self._sample(pos, where, base, row)
                want += 1

    def map(self, fn: Callable[[Sample], Sample]) -> "SampleTable":
        """A view whose samples are `fn(sample)`, computed when read."""
        return SampleTable(self.source, self.n, self.positions, self.skipped, self.modalities,
                           self.transforms + (fn,))

    def __repr__(self) -> str:
        return f"SampleTable({str(self.path)!r}, {self.n} samples)"

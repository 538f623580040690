"""`open_samples`: the same samples and the same bad-row messages as `load_samples`, read lazily from Arrow."""

import json
import logging
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmrft.data import rows as rows_module
from mmrft.data.schema import Sample
from mmrft.data.sources import load_samples, load_samples_report, open_samples
from mmrft.data.table import HashedIds, SampleTable
from mmrft.errors import DataError
from tests.data.conftest import write_jsonl


def _rows(img_prefix):
    return [
        {"id": "a", "prompt": "What color?", "images": [f"{img_prefix}red.png"], "answer": "red", "task": "color",
         "metadata": {"options": "red,blue"}},
        {"id": "b", "prompt": "Count them.", "images": [f"{img_prefix}red.png", f"{img_prefix}blue.png"],
         "answer": [1, 2, 3, 4], "reward": {"iou": 1.0}, "extra": 7},
        {"id": 3, "prompt": "No image here.", "answer": 2.5, "reward": "numeric"},
    ]


@pytest.fixture
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _error(path, cache, **kw):
    with pytest.raises(DataError) as info:
        open_samples(path, cache_dir=cache, **kw)
    return str(info.value)


def test_every_format_opens_to_the_eager_samples(root, cache):
    import datasets

    jsonl = write_jsonl(root / "data.jsonl", _rows("img/"))
    (root / "data.json").write_text(json.dumps(_rows("img/")))
    # mixed column types (answer: str / list / float) are fine in jsonl and json, as in load_samples
    parquet_rows = [dict(r, answer=str(r["answer"]), id=str(r["id"]), extra=None) for r in _rows("img/")]
    for r in parquet_rows:
        r["reward"] = None
    pq.write_table(pa.Table.from_pylist(parquet_rows), root / "data.parquet")
    (root / "parts").mkdir()
    pq.write_table(pa.Table.from_pylist([dict(r, images=[f"../{p}" for p in r.get("images", [])])
                                         for r in parquet_rows[2:]]), root / "parts" / "part-1.parquet")
    pq.write_table(pa.Table.from_pylist([dict(r, images=[f"../{p}" for p in r["images"]])
                                         for r in parquet_rows[:2]]), root / "parts" / "part-0.parquet")
    datasets.Dataset.from_list([dict(r, images=[f"../{p}" for p in r.get("images", [])])
                                for r in parquet_rows]).save_to_disk(str(root / "saved"))
    datasets.Dataset.from_list([dict(r, images=[]) for r in parquet_rows]).save_to_disk(str(root / "shards"),
                                                                                       num_shards=2)
    before = _files(root)
    for path in ["data.jsonl", root, "data.json", "data.parquet", "parts", "saved"]:
        path = root / path
        eager = load_samples(path)
        table = open_samples(path, cache_dir=cache)
        assert isinstance(table, SampleTable) and len(table) == 3, path
        assert [table[i] for i in range(3)] == eager == list(table) == table[:], path
        assert [s.source for s in table] == [s.source for s in eager], path
        assert table[-1] == eager[-1] and table.positions is None and table.skipped == []
        assert table.modalities == {"image"}
    assert open_samples(root / "parts", cache_dir=cache)[2].source == f"{root / 'parts' / 'part-1.parquet'}:row 0"
    sharded = open_samples(root / "shards", cache_dir=cache)  # rows numbered across the files, as ds[N]
    assert [s.source for s in sharded] == [f"{root / 'shards'}:row {i}" for i in range(3)]
    assert [sharded[i].source for i in range(3)] == [s.source for s in load_samples(root / "shards")]
    assert len(sharded.source.parts) == 2
    assert open_samples(jsonl, cache_dir=cache, limit=2)[:] == load_samples(jsonl)[:2]
    assert _files(root) == before  # nothing written beside the data: only into the cache
    with pytest.raises(IndexError):
        open_samples(jsonl, cache_dir=cache)[3]


def test_rows_become_samples_only_when_read(root, cache, monkeypatch):
    jsonl = write_jsonl(root / "data.jsonl", [{"id": f"r{i}", "prompt": "p", "answer": str(i),
                                                 "images": ["img/red.png"]} for i in range(50)])
    open_samples(jsonl, cache_dir=cache)  # converts the file and caches the row check's outcome
    built = []
    real = Sample.from_row.__func__

    def counting(cls, row, **kw):
        built.append(row["id"])
        return real(cls, row, **kw)

    monkeypatch.setattr(Sample, "from_row", classmethod(counting))
    opened = []
    monkeypatch.setattr("mmrft.data.media.Image.open", lambda *a, **k: opened.append(a) or 1 / 0)
    again = open_samples(jsonl, cache_dir=cache)  # the check's outcome is cached: nothing parsed
    assert len(again) == 50 and built == []
    sample = again[17]
    assert (sample.id, sample.answer, sample.images) == ("r17", "17", [str(root / "img" / "red.png")])
    assert built == ["r17"]
    assert opened == []  # no image opened by loading or reading a sample: only when a batch is built


def test_bad_rows_are_named_and_skipped_as_today(root, cache, caplog):
    rows = _rows("img/")
    rows[1]["images"] = ["img/nope.png"]
    rows.append({"id": "d", "prompt": "p"})  # no answer
    rows.append({"id": "a", "prompt": "p", "answer": "1"})  # duplicate
    path = write_jsonl(root / "data.jsonl", rows)
    with path.open("a") as f:
        f.write("\n{broken\n")
    eager, eager_skipped = load_samples_report(path, skip_bad_rows=True)
    with caplog.at_level(logging.WARNING, logger="mmrft.data"):
        table = open_samples(path, skip_bad_rows=True, check_images=True, cache_dir=cache)
    assert list(table) == eager and table.skipped == eager_skipped and len(table.skipped) == 4
    assert table.positions is not None and table.positions.tolist() == [0, 2]
    assert "skipped 4 of 6 rows" in caplog.text and "data.jsonl:7" in table.skipped[-1]  # the blank line counts
    # streamed validation is optional: without it the missing image is found when its batch is built
    lazy = open_samples(path, skip_bad_rows=True, cache_dir=cache)
    assert [s.id for s in lazy] == ["a", "b", "3"] and len(lazy.skipped) == 3
    for check_images, line, word in [(True, 2, "nope.png"), (False, 4, "missing required field 'answer'")]:
        msg = _error(path, cache, check_images=check_images)
        assert msg.startswith(f"{path}:{line}: ") and word in msg
    rows.pop(1)
    rows.pop(2)
    msg = _error(write_jsonl(root / "dup.jsonl", rows), cache)
    assert msg == f"{root / 'dup.jsonl'}:3: field 'id': duplicate id 'a' (first used at {root / 'dup.jsonl'}:1)"
    (root / "bad.jsonl").write_text('{"id": 1}\n')
    assert "all 1 rows were bad" in _error(root / "bad.jsonl", cache, skip_bad_rows=True)
    (root / "blank.jsonl").write_text("\n")
    assert "contains no rows" in _error(root / "blank.jsonl", cache)
    assert "limit must be" in _error(path, cache, limit=0)


def test_cached_check_replays_the_skipped_rows(root, cache, caplog):
    path = write_jsonl(root / "data.jsonl", [{"id": "a", "prompt": "p", "answer": "1"}, {"id": "a"},
                                              {"id": "b", "prompt": "p", "answer": "2"}])
    first = open_samples(path, skip_bad_rows=True, cache_dir=cache)
    with caplog.at_level(logging.WARNING, logger="mmrft.data"):
        second = open_samples(path, skip_bad_rows=True, cache_dir=cache)
    assert second.skipped == first.skipped and "data.jsonl:2" in caplog.text
    assert list(second) == list(first) and [s.id for s in second] == ["a", "b"]
    assert "missing required field" in _error(path, cache)  # other options: checked again, not taken from the cache


def test_changed_file_is_converted_again_and_the_old_entry_removed(root, cache):
    path = write_jsonl(root / "data.jsonl", [{"id": "a", "prompt": "p", "answer": "1"}])
    assert open_samples(path, cache_dir=cache)[0].answer == "1"
    (entry,) = [p for p in cache.iterdir()]
    assert sorted(p.name for p in entry.iterdir())[0] == "done"
    write_jsonl(path, [{"id": "a", "prompt": "p", "answer": "22"}, {"id": "b", "prompt": "p", "answer": "3"}])
    os.utime(path, ns=(1, 10**18))  # a new modification time, whatever the file system's resolution
    table = open_samples(path, cache_dir=cache)
    assert [s.answer for s in table] == ["22", "3"]
    assert [p.name for p in cache.iterdir()] == [table.source.entry.name] != [entry.name]


def test_cache_location(root, tmp_path, monkeypatch):
    path = write_jsonl(root / "data.jsonl", [{"id": "a", "prompt": "p", "answer": "1"}])
    monkeypatch.setenv("MMRFT_DATA_CACHE", str(tmp_path / "env-cache"))
    assert open_samples(path).source.entry.parent == tmp_path / "env-cache"
    monkeypatch.delenv("MMRFT_DATA_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert rows_module.cache_root() == tmp_path / "xdg" / "mmrft" / "data"


def test_an_unwritable_cache_is_an_error_naming_the_field(root, tmp_path):
    path = write_jsonl(root / "data.jsonl", [{"id": "a", "prompt": "p", "answer": "1"}])
    (tmp_path / "a-file").write_text("")  # a cache under a file cannot be made, whoever runs the test (root too)
    msg = _error(path, tmp_path / "a-file" / "cache")
    assert "cannot write the data cache" in msg and "data.cache_dir" in msg


def test_map_rewrites_samples_when_read(root, cache):
    path = write_jsonl(root / "data.jsonl", [{"id": "a", "prompt": "p", "answer": "1"}])
    table = open_samples(path, cache_dir=cache).map(lambda s: Sample(**{**s.__dict__, "answer": s.answer + "!"}))
    assert table[0].answer == "1!" and next(iter(table)).answer == "1!"


def test_hashed_ids_confirm_hits_and_survive_collisions(monkeypatch):
    ids = {0: "x", 1: "y"}
    seen = HashedIds(ids.__getitem__, lambda pos: f"f:{pos + 1}", flush_every=1)
    seen.add("x", 0, "f:1")
    assert seen.first("x") == "f:1" and seen.first("y") is None and len(seen.hashes) == 1
    monkeypatch.setattr("mmrft.data.table.id_hash", lambda sid: 42)  # every id collides
    seen = HashedIds(ids.__getitem__, lambda pos: f"f:{pos + 1}", flush_every=1)
    seen.add("x", 0, "f:1")
    assert seen.first("y") is None and seen.first("x") == "f:1"
    assert seen.hashes.dtype == np.uint64 and seen.positions.tolist() == [0]

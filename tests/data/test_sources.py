import io
import json
import logging
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mmrft.data.media import load_image
from mmrft.data.schema import Sample
from mmrft.data.sources import load_samples, load_samples_report
from mmrft.errors import DataError
from tests.data.conftest import write_jsonl


def _rows(img_prefix):
    return [
        {"id": "a", "prompt": "What color?", "images": [f"{img_prefix}red.png"], "answer": "red",
         "task": "color", "metadata": {"options": "red,blue"}},
        {"id": "b", "prompt": "Count them.", "images": [f"{img_prefix}red.png", f"{img_prefix}blue.png"],
         "answer": "2", "task": "count", "metadata": {"options": None}},
        {"id": "c", "prompt": "No image here.", "images": [], "answer": "x", "task": "default",
         "metadata": {"options": "x"}},
    ]


@pytest.fixture
def jsonl(root):
    return write_jsonl(root / "data.jsonl", _rows("img/"))


def test_jsonl_fields_and_paths(root, jsonl):
    samples = load_samples(jsonl)
    assert [s.id for s in samples] == ["a", "b", "c"]
    a = samples[0]
    assert a.images == [str(root / "img" / "red.png")] and os.path.isabs(a.images[0])
    assert a.source == f"{jsonl}:1" and a.task == "color" and a.reward is None
    assert a.reward_view() == {"id": "a", "answer": "red", "task": "color", "metadata": {"options": "red,blue"}}
    assert load_samples(root) == samples  # a directory holding data.jsonl
    assert load_samples(jsonl, limit=2) == samples[:2]
    assert load_image(samples[1].images[1]).mode == "RGB"


def test_all_formats_load_the_same(root, jsonl):
    import datasets

    expected = load_samples(jsonl)
    (root / "data.json").write_text(json.dumps(_rows("img/")))
    pq.write_table(pa.Table.from_pylist(_rows("img/")), root / "data.parquet")
    rows = _rows("../img/")
    (root / "parts").mkdir()  # several parquet files, read in sorted order
    pq.write_table(pa.Table.from_pylist(rows[2:]), root / "parts" / "part-1.parquet")
    pq.write_table(pa.Table.from_pylist(rows[:2]), root / "parts" / "part-0.parquet")
    (root / "hub" / "data").mkdir(parents=True)  # HF hub layout: relative to data/
    pq.write_table(pa.Table.from_pylist(_rows("../../img/")), root / "hub" / "data" / "train-00000.parquet")
    datasets.Dataset.from_list(rows).save_to_disk(str(root / "saved"))
    for path in ["data.json", "data.parquet", "parts", "hub", "saved"]:
        assert load_samples(root / path) == expected, path
    assert load_samples(root / "data.parquet")[1].source.endswith("data.parquet:row 1")


def test_datasets_image_feature_bytes(tmp_path):
    import datasets

    buf = io.BytesIO()
    Image.new("RGBA", (6, 5), (0, 0, 255, 255)).save(buf, format="PNG")
    features = datasets.Features({"id": datasets.Value("int64"), "prompt": datasets.Value("string"),
                                  "images": datasets.List(datasets.Image()), "answer": datasets.Value("float64"),
                                  "source_name": datasets.Value("string")})
    ds = datasets.Dataset.from_list(
        [{"id": 7, "prompt": "q", "images": [{"bytes": buf.getvalue(), "path": None}], "answer": 1.5,
          "source_name": "synthetic"}], features=features)
    ds.save_to_disk(str(tmp_path / "ds"))
    [s] = load_samples(tmp_path / "ds")
    assert s.id == "7" and s.answer == 1.5 and s.metadata == {"source_name": "synthetic"}
    assert isinstance(s.images[0], dict) and s.images[0]["bytes"] == buf.getvalue()
    assert load_image(s.images[0]).getpixel((0, 0)) == (0, 0, 255)


def test_answer_types_reward_extras_roundtrip(root):
    path = write_jsonl(root / "t.jsonl", [
        {"id": 1, "prompt": "p", "answer": 3, "reward": "accuracy"},
        {"id": 2, "prompt": "p", "answer": [1, 2.5], "reward": {"accuracy": 1, "format": 0.5}, "extra": True},
        {"id": 3, "prompt": "p", "answer": 0.25, "images": ["img/red.png"]},
    ])
    s1, s2, s3 = load_samples(path)
    assert (s1.id, s1.answer, s1.reward, s1.images, s1.metadata) == ("1", 3, "accuracy", [], {})
    assert s2.answer == [1, 2.5] and s2.reward == {"accuracy": 1, "format": 0.5} and s2.metadata == {"extra": True}
    for s in (s1, s2, s3):
        assert Sample.from_row(s.to_row(), base_dir=root, where="x") == s
        assert Sample.from_row(s.to_row(base_dir=root), base_dir=root, where="x") == s
    assert s3.to_row(base_dir=root)["images"] == [os.path.join("img", "red.png")]


def _error(path, **kw):
    with pytest.raises(DataError) as info:
        load_samples(path, **kw)
    return str(info.value)


def test_missing_answer(root):
    rows = _rows("img/")
    del rows[2]["answer"]
    msg = _error(write_jsonl(root / "data.jsonl", rows))
    assert "data.jsonl:3" in msg and "answer" in msg


@pytest.mark.parametrize("field,value,expected", [
    ("images", 5, "field 'images': expected a list of image paths, got int"),
    ("images", [5], "field 'images': item 0: expected an image path"),
    ("prompt", "", "field 'prompt': expected a non-empty string"),
    ("answer", True, "field 'answer': expected a string, int, float or list of numbers, got bool"),
    ("answer", ["a"], "field 'answer': expected a list of numbers"),
    ("reward", {"acc": "high"}, "field 'reward'"),
    ("metadata", [], "field 'metadata': expected a dict, got list"),
    ("id", 1.5, "field 'id'"),
    ("answer", None, "field 'answer': required, got null"),
])
def test_wrong_types(root, field, value, expected):
    rows = _rows("img/")
    rows[1][field] = value
    msg = _error(write_jsonl(root / "data.jsonl", rows))
    assert f"data.jsonl:2: {expected}" in msg


def test_missing_image(root):
    rows = _rows("img/")
    rows[1]["images"] = ["img/nope.png"]
    msg = _error(write_jsonl(root / "data.jsonl", rows))
    assert "data.jsonl:2" in msg and "images" in msg and str(root / "img" / "nope.png") in msg
    assert len(load_samples(root / "data.jsonl", check_images=False)) == 3


def test_corrupt_image(root):
    (root / "img" / "bad.png").write_bytes(os.urandom(200))
    rows = _rows("img/")
    rows[0]["images"] = ["img/bad.png"]
    msg = _error(write_jsonl(root / "data.jsonl", rows))
    assert "data.jsonl:1" in msg and "bad.png" in msg and "not a readable image" in msg


def test_bad_json_line(root):
    path = root / "data.jsonl"
    path.write_text('{"id": "a", "prompt": "p", "answer": "1"}\n\n{"id": "b", oops}\n')
    msg = _error(path)
    assert "data.jsonl:3" in msg and "malformed JSON" in msg


def test_duplicate_id(root):
    rows = _rows("img/")
    rows[2]["id"] = "a"
    msg = _error(write_jsonl(root / "data.jsonl", rows))
    assert "data.jsonl:3" in msg and "duplicate id 'a'" in msg and "data.jsonl:1" in msg


def test_empty_and_missing_paths(root):
    (root / "blank.jsonl").write_text("\n")
    assert "contains no rows" in _error(root / "blank.jsonl")
    (root / "list.json").write_text("[]")
    assert "contains no rows" in _error(root / "list.json")
    assert f"not found: {root / 'nope.jsonl'}" in _error(root / "nope.jsonl")
    (root / "empty_dir").mkdir()
    assert "no dataset found" in _error(root / "empty_dir")
    (root / "x.csv").write_text("id\n")
    assert "unsupported" in _error(root / "x.csv")
    (root / "obj.json").write_text("{}")
    assert "expected a JSON list" in _error(root / "obj.json")


def test_dataset_dict(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list([{"id": "a", "prompt": "p", "answer": "1"}])
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "dd"))
    msg = _error(tmp_path / "dd")
    assert "DatasetDict" in msg and "train" in msg and "test" in msg
    assert [s.id for s in load_samples(tmp_path / "dd" / "train")] == ["a"]


def test_skip_bad_rows(root, caplog):
    rows = _rows("img/")
    rows[1]["images"] = ["img/nope.png"]
    rows.append({"id": "d", "prompt": "p"})  # no answer
    rows.append({"id": "a", "prompt": "p", "answer": "1"})  # duplicate
    path = write_jsonl(root / "data.jsonl", rows)
    with path.open("a") as f:
        f.write("{broken\n")
    with caplog.at_level(logging.WARNING, logger="mmrft.data"):
        samples, skipped = load_samples_report(path, skip_bad_rows=True)
    assert [s.id for s in samples] == ["a", "c"]
    assert len(skipped) == 4
    for msg, loc, word in zip(skipped, [2, 4, 5, 6], ["nope.png", "'answer'", "duplicate id", "malformed JSON"]):
        assert f"data.jsonl:{loc}" in msg and word in msg
    log = caplog.text
    assert "skipped 4 of 6 rows" in log and "data.jsonl:4" in log
    assert load_samples(path, skip_bad_rows=True) == samples
    path.write_text('{"id": 1}\n')
    assert "all 1 rows were bad" in _error(path, skip_bad_rows=True)

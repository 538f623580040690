"""RefCOCO / RefCOCO+ / RefCOCOg adapters: lmms-lab parquet loading and Acc@IoU0.5 in each box convention."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmrft.errors import ConfigError, DataError
from mmrft.eval.benchmarks.base import BENCHMARKS, Judgement
from mmrft.eval.benchmarks.refcoco import RefCOCO, RefCOCOg, RefCOCOPlus

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "benchmarks"
QWEN = "Locate {}, output its bbox coordinates using JSON format."
LMMS = ("Bounding box coordinates are specified in the format (top-left x, top-left y, bottom-right x, bottom-right y)."
        " All values are floating point numbers bounded between 0 and 1. Please provide the bounding box coordinate "
        "of the region this sentence describes: {}")


@pytest.fixture(scope="module")
def val():
    return {s.id: s for s in RefCOCO().load(FIXTURES / "refcoco")}


def test_registered_variants():
    assert BENCHMARKS.get("refcoco") is RefCOCO
    assert BENCHMARKS.get("refcoco+") is RefCOCOPlus
    assert BENCHMARKS.get("refcocog") is RefCOCOg
    assert RefCOCO.splits == ("val", "test", "testA", "testB")
    assert RefCOCOPlus.splits == ("val", "testA", "testB")
    assert RefCOCOg.splits == ("val", "test")
    for cls in (RefCOCO, RefCOCOPlus, RefCOCOg):
        assert cls.title and cls.source and cls.layout and cls.default_split == "val"
        assert "pickle" in cls.deviations and cls.categories == ("split",)


def test_one_sample_per_referring_expression(val):
    assert list(val) == ["469306_0", "469306_1", "469306_2", "1724390_0"]
    s = val["469306_1"]
    assert s.prompt == "Locate foremost person, output its bbox coordinates using JSON format."
    assert s.answer == [40.0, 20.0, 140.0, 80.0]  # COCO [x, y, w, h] = [40, 20, 100, 60]
    assert s.task == "refcoco"
    assert s.metadata["categories"] == {"split": "val"}
    assert s.metadata["question_id"] == "469306" and s.metadata["expression"] == "foremost person"
    assert s.metadata["file_name"] == "COCO_train2014_000000296747_0.jpg"
    assert s.metadata["bbox_xywh"] == [40.0, 20.0, 100.0, 60.0]
    (image,) = s.images
    assert isinstance(image, dict) and image["bytes"][:2] == b"\xff\xd8"  # embedded JPEG, not decoded
    assert val["1724390_0"].answer == [8.5, 4.25, 28.5, 34.25]


def test_splits_variants_and_norm1_prompt():
    both = RefCOCO().load(FIXTURES / "refcoco", "testA,testB")
    assert [(s.id, s.metadata["categories"]["split"]) for s in both] == [("183829_0", "testA"), ("1362745_0", "testB")]
    plus = RefCOCOPlus(box_format="norm1").load(FIXTURES / "refcoco+", "testB")
    assert [s.prompt for s in plus] == [LMMS.format("chair closest to us")]
    assert plus[0].task == "refcoco+"
    g = RefCOCOg(box_format="norm1000").load(FIXTURES / "refcocog")
    assert [s.prompt for s in g] == [QWEN.format("a black and white cat sitting on a laptop keyboard"),
                                      QWEN.format("the woman holding a tennis racket")]
    assert RefCOCOg().load(FIXTURES / "refcocog", "test")[0].id == "1628442_0"


# The same box (pixels [40, 20, 140, 80] on the 200x100 image) written in each convention.
SAME_BOX = {
    "pixels": '```json\n[\n\t{"bbox_2d": [40, 20, 140, 80], "label": "foremost person"}\n]\n```',
    "norm1000": '```json\n[\n\t{"bbox_2d": [200, 200, 700, 800], "label": "foremost person"}\n]\n```',
    "norm1": "[0.2, 0.2, 0.7, 0.8]",
}


@pytest.mark.parametrize("box_format", ["pixels", "norm1000", "norm1"])
def test_same_box_in_each_convention(val, box_format):
    got = RefCOCO(box_format=box_format).judge(SAME_BOX[box_format], val["469306_1"])
    assert got == Judgement("[40, 20, 140, 80]", 1.0)


@pytest.mark.parametrize(
    "box_format, completion, extracted, score",
    [
        # a pixel answer read as another convention lands elsewhere
        ("norm1000", SAME_BOX["pixels"], "[8, 2, 28, 8]", 0.0),
        ("norm1", SAME_BOX["norm1000"], "[40000, 20000, 140000, 80000]", 0.0),
        ("pixels", SAME_BOX["norm1"], "[0.2, 0.2, 0.7, 0.8]", 0.0),
        # R1 format, other box syntaxes
        ("pixels", "<think>The man in front is on the left.</think><answer>[40,20,140,80]</answer>",
         "[40, 20, 140, 80]", 1.0),
        ("norm1000", "<|object_ref_start|>foremost person<|object_ref_end|><|box_start|>(200,200),(700,800)"
                     "<|box_end|>", "[40, 20, 140, 80]", 1.0),
        ("pixels", "The foremost person is at (40, 20) to (140, 80).", "[40, 20, 140, 80]", 1.0),
        ("pixels", '<answer>{"bbox_2d": [40.4, 19.6, 139.5, 80.2]}</answer>', "[40.4, 19.6, 139.5, 80.2]", 1.0),
        # IoU threshold is inclusive: [40,20,90,80] has IoU 0.5 exactly, [40,20,89,80] 0.49
        ("pixels", "<answer>[40, 20, 90, 80]</answer>", "[40, 20, 90, 80]", 1.0),
        ("pixels", "<answer>[40, 20, 89, 80]</answer>", "[40, 20, 89, 80]", 0.0),
        ("pixels", "<answer>[0, 0, 200, 100]</answer>", "[0, 0, 200, 100]", 0.0),  # IoU 0.3
        ("pixels", "<answer>[140, 80, 40, 20]</answer>", "[140, 80, 40, 20]", 0.0),  # corners swapped
        # no box in the answer
        ("pixels", "<think>maybe [40, 20, 140, 80]</think><answer>the man on the left</answer>", None, 0.0),
        ("pixels", "<think>The box is [40, 20, 140, 80] but let me check the", None, 0.0),  # truncated
        ("pixels", "", None, 0.0),
        ("pixels", "I cannot find foremost person in the image.", None, 0.0),
    ],
)
def test_judge(val, box_format, completion, extracted, score):
    assert RefCOCO(box_format=box_format).judge(completion, val["469306_1"]) == Judgement(extracted, score)


def test_judge_fractional_gold(val):
    s = val["1724390_0"]  # 64x48 image, gold [8.5, 4.25, 28.5, 34.25]
    assert RefCOCO().judge("[8.5, 4.25, 28.5, 34.25]", s) == Judgement("[8.5, 4.25, 28.5, 34.25]", 1.0)
    # 0-1 box [0.25, 0.25, 0.5, 0.75] -> pixels [16, 12, 32, 36]: IoU 0.3
    assert RefCOCO(box_format="norm1").judge("[0.25, 0.25, 0.5, 0.75]", s) == Judgement("[16, 12, 32, 36]", 0.0)


def test_image_size_from_metadata_or_header(val):
    s = val["469306_1"]
    broken = dataclasses.replace(s, id="broken", images=[{"bytes": b"not an image", "path": None}])
    bench = RefCOCO(box_format="norm1000")
    assert bench.judge(SAME_BOX["norm1000"], broken) == Judgement(None, 0.0)  # cannot convert, no raise
    assert RefCOCO().judge(SAME_BOX["pixels"], broken) == Judgement("[40, 20, 140, 80]", 1.0)  # size not needed
    sized = dataclasses.replace(broken, id="sized", metadata={**s.metadata, "image_size": [200, 100]})
    assert bench.judge(SAME_BOX["norm1000"], sized) == Judgement("[40, 20, 140, 80]", 1.0)


def test_judge_never_raises(val):
    bench = RefCOCO(box_format="norm1")
    for junk in (None, 7, "[1e999, 0, 1, 1]", "[" * 1000, "<answer>" * 30):
        assert bench.judge(junk, val["469306_0"]).score == 0.0  # type: ignore[arg-type]


def test_box_format_option():
    assert RefCOCO().box_format == "pixels"
    assert RefCOCO(box_format="pixel").box_format == "pixels"
    with pytest.raises(ConfigError, match="unknown box_format 'xyxy'"):
        RefCOCO(box_format="xyxy")


def test_missing_split_lists_parquet_files(tmp_path):
    with pytest.raises(DataError, match=r"unknown split 'test'; lmms-lab/RefCOCOplus has val, testA, testB"):
        RefCOCOPlus().load(FIXTURES / "refcoco+", "test")
    root = tmp_path / "refcoco"
    shutil.copytree(FIXTURES / "refcoco", root)
    (root / "data" / "testB-00000-of-00001.parquet").unlink()
    with pytest.raises(DataError, match=r"no testB-\*\.parquet.*data/testA-00000-of-00001\.parquet"):
        RefCOCO().load(root, "testB")


def _rewrite(path: Path, **changes) -> None:
    table = pq.read_table(path)
    rows = table.to_pylist()
    for key, value in changes.items():
        if value is None:
            table = table.drop_columns([key])
            rows = table.to_pylist()
        else:
            rows[0][key] = value
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


def test_bad_rows_name_file_row_and_field(tmp_path):
    root = tmp_path / "refcocog"
    shutil.copytree(FIXTURES / "refcocog", root)
    path = root / "data" / "test-00000-of-00001.parquet"
    _rewrite(path, bbox=[1.0, 2.0, 0.0, 5.0])
    with pytest.raises(DataError, match=r"test-00000-of-00001\.parquet:row 0: field 'bbox'"):
        RefCOCOg().load(root, "test")
    _rewrite(path, bbox=[1.0, 2.0])
    with pytest.raises(DataError, match=r"row 0: field 'bbox': expected \[x, y, w, h\]"):
        RefCOCOg().load(root, "test")
    _rewrite(path, bbox=None)
    with pytest.raises(DataError, match=r"missing column\(s\) \['bbox'\]"):
        RefCOCOg().load(root, "test")
    path.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataError, match="cannot read parquet"):
        RefCOCOg().load(root, "test")


def test_fixture_schema_matches_release():
    schema = pq.read_schema(FIXTURES / "refcoco" / "data" / "val-00000-of-00001.parquet")
    assert schema.names == ["question_id", "image", "question", "answer", "segmentation", "bbox", "iscrowd",
                            "file_name"]
    bbox = schema.field("bbox").type
    assert pa.types.is_list(bbox) and bbox.value_type == pa.float32()
    features = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert features["image"] == {"_type": "Image"}

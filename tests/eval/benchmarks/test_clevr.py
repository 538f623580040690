"""CLEVR / Super-CLEVR counting adapters: loading the released layout and R1-V-style exact integer judging."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import BENCHMARKS, Judgement
from mmrft.eval.benchmarks.clevr import ClevrCount, SuperClevrCount

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "benchmarks"
CLEVR = FIXTURES / "clevr_count"
SUPER = FIXTURES / "superclevr_count"


@pytest.fixture(scope="module")
def clevr_samples():
    return {s.id: s for s in ClevrCount().load(CLEVR)}


@pytest.fixture(scope="module")
def super_samples():
    return {s.id: s for s in SuperClevrCount().load(SUPER)}


def test_registered_names():
    assert BENCHMARKS.get("clevr_count") is ClevrCount
    assert BENCHMARKS.get("superclevr_count") is SuperClevrCount
    for cls in (ClevrCount, SuperClevrCount):
        assert cls.title and cls.source and cls.layout and cls.deviations and cls.default_split
        assert cls.categories == ("family", "count")


def test_clevr_keeps_only_counting_questions(clevr_samples):
    # question 1 (exist), 3 (greater_than over two counts) and 5 (query_color) are not counting questions
    assert list(clevr_samples) == ["0", "2", "4"]
    s = clevr_samples["2"]
    assert s.prompt == "How many other things are there of the same size as the matte ball?"
    assert s.answer == 4 and s.task == "clevr_count"
    assert s.images == [os.path.abspath(CLEVR / "images" / "val" / "CLEVR_val_000001.png")]
    assert s.metadata["categories"] == {"family": "60", "count": "4"}
    assert clevr_samples["4"].answer == 0 and clevr_samples["4"].metadata["categories"]["count"] == "0"
    assert clevr_samples["0"].prompt == "How many large things are either cyan metal cylinders or yellow blocks?"


def test_superclevr_splits_by_scene_index(super_samples):
    assert list(super_samples) == ["250000", "250010", "250011"]  # the bool 'exist' question is dropped
    s = super_samples["250010"]
    assert s.prompt == "How many things are either small bicycles or red things?"
    assert s.answer == 3
    assert s.images == [os.path.abspath(SUPER / "images" / "superCLEVR_new_025001.png")]
    assert s.metadata["categories"] == {"family": "one_hop:7", "count": "3"}
    train = SuperClevrCount().load(SUPER, "train")
    assert [x.id for x in train] == ["120"] and train[0].answer == 1
    assert len(SuperClevrCount().load(SUPER, "all")) == 4


@pytest.mark.parametrize(
    "completion, extracted, score",
    [
        ("<think>The cyan metal cylinder is large; no yellow cubes.</think><answer>1</answer>", "1", 1.0),
        ("<think>one big cylinder</think>\n<answer> 1 </answer>", "1", 1.0),
        ("There is 1 large object that matches.", "1", 1.0),
        ("I count 10 objects in total, and 1 of them is a large cyan metal cylinder.", "1", 1.0),
        ("The answer is $\\boxed{1}$.", "1", 1.0),
        ("<answer>one</answer>", "1", 1.0),
        ("<think>maybe 3</think>\nThere is just one.", "1", 1.0),
        ("<answer>1</answer><answer>", "1", 1.0),  # stop string left an empty final tag: last closed block
        ("<think>Counting: 1, 2.</think><answer>2</answer>", "2", 0.0),
        ("<answer>two</answer>", "2", 0.0),
        ("<answer>1.5</answer>", None, 0.0),  # a non-integer last mention is no count
        ("<think>Let me count the objects one by one: there is 1 cylinder and", None, 0.0),  # truncated
        ("", None, 0.0),
        ("<answer></answer>", None, 0.0),
        ("I cannot tell from this image.", None, 0.0),
    ],
)
def test_judge_clevr_gold_1(clevr_samples, completion, extracted, score):
    assert ClevrCount().judge(completion, clevr_samples["0"]) == Judgement(extracted, score)


@pytest.mark.parametrize(
    "completion, extracted, score",
    [
        ("<answer>0</answer>", "0", 1.0),
        ("There are no red rubber objects.", "0", 1.0),
        ("<answer>zero</answer>", "0", 1.0),
        ("<answer>none</answer>", "0", 1.0),
        ("There are no red rubber objects, but 2 red metal ones.", "2", 0.0),
    ],
)
def test_judge_zero_count(clevr_samples, completion, extracted, score):
    assert ClevrCount().judge(completion, clevr_samples["4"]) == Judgement(extracted, score)


@pytest.mark.parametrize(
    "completion, extracted, score",
    [
        ("<think>two yellow motorbikes, one left, one right</think><answer>2</answer>", "2", 1.0),
        ("There are two yellow motorbikes.", "2", 1.0),
        ("<answer>\\(2\\)</answer>", "2", 1.0),
        ("<answer>3</answer>", "3", 0.0),
        ("**Answer:** 20", "20", 0.0),
    ],
)
def test_judge_superclevr(super_samples, completion, extracted, score):
    assert SuperClevrCount().judge(completion, super_samples["250000"]) == Judgement(extracted, score)


def test_judge_never_raises(clevr_samples):
    bench = ClevrCount()
    for junk in (None, 5, "\\boxed{", "<answer>" * 50, "9" * 100):
        result = bench.judge(junk, clevr_samples["0"])  # type: ignore[arg-type]
        assert result.score == 0.0


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_missing_split_file_lists_found_files(tmp_path):
    with pytest.raises(DataError, match=r"CLEVR_train_questions\.json.*CLEVR_val_questions\.json"):
        ClevrCount().load(CLEVR, "train")
    with pytest.raises(DataError, match="no released answers"):
        ClevrCount().load(CLEVR, "test")
    with pytest.raises(DataError, match=r"superCLEVR_questions_30k\.json.*found in"):
        SuperClevrCount().load(tmp_path)
    with pytest.raises(DataError, match="unknown Super-CLEVR split 'testA'"):
        SuperClevrCount().load(SUPER, "testA")


def test_bad_rows_name_file_and_field(tmp_path):
    root = _copy(CLEVR, tmp_path)
    path = root / "questions" / "CLEVR_val_questions.json"
    data = json.loads(path.read_text())
    data["questions"][2]["answer"] = "four"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"CLEVR_val_questions\.json: question 2: field 'answer'"):
        ClevrCount().load(root)
    del data["questions"][4]["program"]
    data["questions"][2]["answer"] = "4"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="question 4: missing field 'program'"):
        ClevrCount().load(root)
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(DataError, match="'questions' list"):
        ClevrCount().load(root)
    path.write_text("{not json")
    with pytest.raises(DataError, match="cannot read"):
        ClevrCount().load(root)


def test_superclevr_needs_image_index(tmp_path):
    root = _copy(SUPER, tmp_path)
    path = root / "superCLEVR_questions_30k.json"
    data = json.loads(path.read_text())
    del data["questions"][0]["image_index"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="question 0: field 'image_index'"):
        SuperClevrCount().load(root)

"""ChartQA adapter: the vis-nlp/ChartQA release layout and the official (pix2struct) relaxed accuracy."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import BENCHMARKS, Judgement
from mmrft.eval.benchmarks.chartqa import ChartQA, relaxed_correctness

DATA = Path(__file__).resolve().parents[2] / "fixtures" / "benchmarks" / "chartqa"
SUFFIX = "\nAnswer the question using a single word or phrase."


@pytest.fixture(scope="module")
def samples():
    return {s.id: s for s in ChartQA().load(DATA)}


def test_registered():
    assert BENCHMARKS.get("chartqa") is ChartQA
    assert ChartQA.title and ChartQA.source and ChartQA.layout and ChartQA.deviations
    assert ChartQA.default_split == "test" and ChartQA.categories == ("subset",)


def test_load_fields(samples):
    assert list(samples) == ["human_0", "human_1", "human_2", "augmented_0", "augmented_1"]
    s = samples["human_1"]
    assert s.prompt == "What is the difference in value between Lamb and Corn?" + SUFFIX
    assert s.answer == "0.57" and s.task == "chartqa"
    assert s.images == [os.path.abspath(DATA / "test" / "png" / "41699051005347.png")]
    assert s.metadata["categories"] == {"subset": "human"}
    a = samples["augmented_1"]
    assert a.prompt == "Who is predicted to have the highest gross profit margin?" + SUFFIX
    assert a.answer == "Ted Baker" and a.metadata["categories"] == {"subset": "augmented"}
    assert a.images == [os.path.abspath(DATA / "test" / "png" / "multi_col_852.png")]


def test_subset_splits_and_nested_release_folder(tmp_path):
    assert [s.id for s in ChartQA().load(DATA, "test_human")] == ["human_0", "human_1", "human_2"]
    assert [s.id for s in ChartQA().load(DATA, "test_augmented")] == ["augmented_0", "augmented_1"]
    shutil.copytree(DATA / "test", tmp_path / "ChartQA Dataset" / "test")
    nested = ChartQA().load(tmp_path)
    assert len(nested) == 5
    assert nested[0].images == [os.path.abspath(tmp_path / "ChartQA Dataset" / "test" / "png" / "41699051005347.png")]


@pytest.mark.parametrize(
    "sid, completion, extracted, score",
    [
        # gold "14"
        ("human_0", "14", "14", 1.0),
        ("human_0", "<think>Count the bars: 14 food items.</think><answer>14</answer>", "14", 1.0),
        ("human_0", "<answer>14.0</answer>", "14", 1.0),
        ("human_0", "<answer>14.5</answer>", "14.5", 1.0),  # 3.6% off: within 5%
        ("human_0", "<answer>15</answer>", "15", 0.0),  # 7.1% off
        ("human_0", "The answer is 14.", "14", 1.0),
        ("human_0", "So the count is $\\boxed{14}$", "14", 1.0),
        ("human_0", "There are 14 food items", "there are 14 food items", 0.0),  # no number parsing in text
        ("human_0", "<answer>14%</answer>", "0.14", 0.0),  # '%' divides by 100 (pix2struct)
        ("human_0", "<answer>$14</answer>", "$14", 0.0),  # float() fails: exact string match
        ("human_0", "<think>There seem to be 14 bars but", None, 0.0),  # truncated reasoning
        ("human_0", "", None, 0.0),
        # gold "0.57"
        ("human_1", "<answer>0.57</answer>", "0.57", 1.0),
        ("human_1", "<answer>57%</answer>", "0.57", 1.0),
        ("human_1", "<answer>0.59</answer>", "0.59", 1.0),  # 3.5% off
        ("human_1", "<answer>0.6</answer>", "0.6", 0.0),  # 5.3% off
        ("human_1", "<answer>57</answer>", "57", 0.0),
        # gold "No"
        ("human_2", "<answer>no</answer>", "no", 1.0),
        ("human_2", "**No**", "no", 1.0),
        ("human_2", "No.", "no", 1.0),
        ("human_2", "No, it is not.", "no, it is not", 0.0),
        ("human_2", "<answer>Yes</answer>", "yes", 0.0),
        # gold "2013": the 5% tolerance applies to years too, as in the official metric
        ("augmented_0", "<answer>2014</answer>", "2014", 1.0),
        ("augmented_0", "In 2013.", "in 2013", 0.0),
        # gold "Ted Baker"
        ("augmented_1", "<answer>ted baker</answer>", "ted baker", 1.0),
        ("augmented_1", "<answer>Ted Baker plc</answer>", "ted baker plc", 0.0),
        ("augmented_1", "<think>Highest margin bar</think>\n\nTed Baker", "ted baker", 1.0),
    ],
)
def test_judge(samples, sid, completion, extracted, score):
    assert ChartQA().judge(completion, samples[sid]) == Judgement(extracted, score)


@pytest.mark.parametrize(
    "target, prediction, ok",
    [
        ("0", "0", True),
        ("0", "0.0", False),  # a zero target needs the exact string (pix2struct: `and target_float`)
        ("100", "95", True),
        ("100", "94.9", False),
        ("-10", "-10.4", True),
        (" Yes ", "yes", True),
        ("45", "45%", False),
        ("0.45", "45%", True),
    ],
)
def test_relaxed_correctness_official_rule(target, prediction, ok):
    assert relaxed_correctness(target, prediction) is ok


def test_judge_never_raises(samples):
    for junk in (None, 3, "nan", "inf", "<answer>" * 40, "1e999"):
        assert ChartQA().judge(junk, samples["human_0"]).score == 0.0  # type: ignore[arg-type]


def test_missing_files_and_bad_rows(tmp_path):
    with pytest.raises(DataError, match=r"missing .*val_human\.json.*val.*does not exist"):
        ChartQA().load(DATA, "val")
    with pytest.raises(DataError, match="unknown ChartQA split 'test_all'"):
        ChartQA().load(DATA, "test_all")
    root = tmp_path / "chartqa"
    shutil.copytree(DATA, root)
    (root / "test" / "test_augmented.json").unlink()
    with pytest.raises(DataError, match=r"missing .*test_augmented\.json.*found: png, test_human\.json"):
        ChartQA().load(root)
    human = root / "test" / "test_human.json"
    rows = json.loads(human.read_text())
    del rows[1]["label"]
    human.write_text(json.dumps(rows))
    with pytest.raises(DataError, match=r"test_human\.json: row 1: missing field 'label'"):
        ChartQA().load(root, "test_human")
    rows[1]["label"] = {"value": 1}
    human.write_text(json.dumps(rows))
    with pytest.raises(DataError, match="row 1: field 'label': expected a string"):
        ChartQA().load(root, "test_human")
    human.write_text('{"imgname": "a.png"}')
    with pytest.raises(DataError, match="expected a JSON list"):
        ChartQA().load(root, "test_human")

"""MathVerse adapter: loading the HF parquet and JSON layouts, rule-based scoring, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import BENCHMARKS
from mmrft.eval.benchmarks.mathverse import MathVerse, parse_choices

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "benchmarks" / "mathverse"
PROMPT_3422 = ("Please first conduct reasoning, and then answer the question and provide the final value, "
               "e.g., 1, 2.5, 300, at the end.\nQuestion: The radius is 3 cm. Find L.\n\n"
               "Give your answer rounded down to the nearest cm.")
PROMPT_10 = ("According to the question shown in the image, please first conduct reasoning, and then answer the "
             "question and provide the correct option letter, e.g., A, B, C, D, at the end.")


@pytest.fixture(scope="module")
def samples():
    return {s.id: s for s in MathVerse().load(FIXTURE)}


def test_registered_with_its_description():
    assert BENCHMARKS.get("mathverse") is MathVerse and MathVerse.name == "mathverse"
    for attr in ("title", "source", "layout", "deviations"):
        assert getattr(MathVerse, attr)
    assert MathVerse.default_split == "testmini" and "GPT" in MathVerse.deviations
    assert {"problem_version", "subject", "question_type"} <= set(MathVerse.categories)


def test_load_parquet_fixture(samples):
    assert list(samples) == ["3421", "3422", "3425", "6", "10", "2261"]
    assert samples["3422"].prompt == PROMPT_3422
    assert samples["10"].prompt == PROMPT_10
    assert {s.task for s in samples.values()} == {"mathverse"}
    assert samples["6"].answer == "D" and samples["2261"].answer == "y=-x^2-2x+1"
    assert samples["6"].metadata["options"] == {"A": "40°", "B": "60°", "C": "120°", "D": "140°"}
    assert samples["10"].metadata["options"] == samples["6"].metadata["options"]  # from question_for_eval
    assert samples["3425"].metadata["categories"] == {
        "problem_version": "Vision Only", "subject": "Solid Geometry", "subfield": "Length",
        "question_type": "free-form"}
    assert samples["6"].metadata["categories"]["question_type"] == "multi-choice"
    for s in samples.values():
        (image,) = s.images
        assert isinstance(image, dict) and image["bytes"].startswith(b"\x89PNG")
    assert samples["3425"].images[0]["path"] == "images_version_6/image_685.png"


def test_query_field_can_be_the_direct_prompt():
    class Direct(MathVerse):
        query_field = "query_wo"

    s = {x.id: x for x in Direct().load(FIXTURE)}["3422"]
    assert s.prompt == ("Please directly answer the question and provide the final value, e.g., 1, 2.5, 300.\n"
                        "Question: The radius is 3 cm. Find L.\n\nGive your answer rounded down to the nearest cm.")


def test_load_json_layout(tmp_path):
    (tmp_path / "images" / "images_version_1-4").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "images_version_1-4" / "image_685.png")
    item = {"sample_index": "3422", "problem_index": "685", "problem_version": "Text Lite",
            "question": "The radius is 3 cm. Find L.", "image": "images_version_1-4/image_685.png", "answer": "14",
            "question_type": "free-form",
            "metadata": {"split": "testmini", "source": "Geo3D_collected", "subject": "Solid Geometry",
                         "subfield": "Length"},
            "query_wo": "WO", "query_cot": "COT", "question_for_eval": "The radius is 3 cm. Find L."}
    text_only = {**item, "sample_index": "1", "image": "", "problem_version": "Text Only"}
    (tmp_path / "testmini.json").write_text(json.dumps([item, text_only]), encoding="utf-8")
    a, b = MathVerse().load(tmp_path)
    assert (a.id, a.prompt, a.answer) == ("3422", "COT", "14")
    assert a.images == [str(tmp_path / "images" / "images_version_1-4" / "image_685.png")]
    assert b.images == []


def test_parse_choices():
    q = "Find x.\nChoices:\nA:2\nB:2\u221a{3}\nC. \u221a{3}\n(D) 2\u221a{2}"
    assert parse_choices(q) == {"A": "2", "B": "2\u221a{3}", "C": "\u221a{3}", "D": "2\u221a{2}"}
    assert parse_choices("Find L.") == {}


JUDGE_CASES = [
    # (sample id, completion, extracted, score)
    ("3421", "14", "14", 1.0),
    ("3421", "L = sqrt(13^2 + 6^2) = sqrt(205) = 14.32, so the length of the longest straw that fits, rounded "
             "down to the nearest cm, is 14 cm.", "14", 1.0),
    ("3421", "<think>sqrt(205) is about 14.32, round down</think><answer>\\boxed{14}</answer>", "14", 1.0),
    ("3421", "L \\approx 14.32", "14.32", 0.0),
    ("3421", "Final answer: 13", "13", 0.0),
    ("3425", "$L = 14$", "14", 1.0),
    ("3425", "<think>The can in the image is", None, 0.0),  # truncated
    ("3425", "", None, 0.0),
    ("6", "D", "D", 1.0),
    ("6", "<think>CED = 180 - 40</think><answer>D</answer>", "D", 1.0),
    ("6", "Since DE is parallel to BC, angle CED = 180° - 40° = 140°. The answer is D: 140°", "D", 1.0),
    ("6", "\\boxed{140^\\circ}", "D", 1.0),  # the option's text, in LaTeX degrees
    ("6", "So the size of angle CED is 140 degrees", "D", 1.0),
    ("6", "C", "C", 0.0),
    ("6", "The answer is A or D", None, 0.0),
    ("10", "(D)", "D", 1.0),
    ("10", "The correct option is B.", "B", 0.0),
    ("2261", "y=-x^2-2x+1", "y=-x^2-2x+1", 1.0),
    ("2261", "\\boxed{y = -x^{2} - 2x + 1}", "y = -x^{2} - 2x + 1", 1.0),
    ("2261", "The equation is $y=-(x+1)^2+2$.", "The equation is $y=-(x+1)^2+2$", 1.0),  # math-verify
    ("2261", "y = x^2 - 2x + 1", "y = x^2 - 2x + 1", 0.0),
]


@pytest.mark.parametrize("sid,completion,extracted,score", JUDGE_CASES)
def test_judge(samples, sid, completion, extracted, score):
    j = MathVerse().judge(completion, samples[sid])
    assert (j.extracted, j.score) == (extracted, score)


@pytest.mark.parametrize("completion", [None, "\\boxed{", "\\frac{" * 300, "x" * 5000, "<answer>\n</answer>"])
def test_judge_never_raises(samples, completion):
    for s in samples.values():
        assert MathVerse().judge(completion, s).score in (0.0, 1.0)  # type: ignore[arg-type]


def test_unparsable_gold_falls_back_to_string_match(samples):
    s = samples["3421"]
    s2 = type(s)(id="x", prompt="p", answer="domain: [-4, 0) and range: (-3, 1]", task="mathverse",
                 metadata={**s.metadata, "question_type": "free-form"})
    assert MathVerse().judge("domain: [-4, 0) and range: (-3, 1]", s2).score == 1.0
    assert MathVerse().judge("domain: [-4, 0)", s2).score == 0.0


def test_missing_split_lists_the_files_found(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "mv")
    with pytest.raises(DataError, match=r"no MathVerse 'testmini_text_only' split.*testmini.parquet"):
        MathVerse().load(tmp_path / "mv", "testmini_text_only")


def test_bad_rows_name_file_and_field(tmp_path):
    item = {"sample_index": "1", "problem_index": "1", "problem_version": "Text Lite", "question": "q",
            "image": "", "answer": "14", "question_type": "free-form", "metadata": {}, "query_wo": "w"}
    (tmp_path / "testmini.json").write_text(json.dumps([item]))
    with pytest.raises(DataError, match=r"testmini.json: item 0: field 'query_cot': expected a string, got null"):
        MathVerse().load(tmp_path)
    (tmp_path / "testmini.json").write_text(json.dumps([{**item, "query_cot": "c", "answer": " "}]))
    with pytest.raises(DataError, match=r"item 0: field 'answer': empty"):
        MathVerse().load(tmp_path)
    (tmp_path / "testmini.json").write_text(json.dumps({"not": "a list"}))
    with pytest.raises(DataError, match="expected a JSON list"):
        MathVerse().load(tmp_path)

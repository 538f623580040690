"""MATH-Vision adapter: loading the HF and GitHub layouts, the official rule-based evaluation, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import BENCHMARKS
from mmrft.eval.benchmarks.mathvision import MathVision, extract_model_answer, is_equal

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "benchmarks" / "mathvision"
INSTRUCTION = ('Please solve the problem and put your answer in one "\\boxed{}". If it is a multiple choice '
               'question, only one letter is allowed in the "\\boxed{}".\n')
PROMPT_4 = INSTRUCTION + "How many different digits can you find in this picture?\n<image1>\n"
PROMPT_39 = (INSTRUCTION + "Ingrid has 4 red, 3 blue, 2 green and 1 yellow cube. She uses them to build the following "
             "object:\n<image1>\nCubes with the same colour don't touch each other. Which colour is the cube with "
             "the question mark?\n(A) red\n(B) blue\n(C) green\n(D) Yellow\n(E) This cannot be worked out for "
             "certain.\n")


@pytest.fixture(scope="module")
def samples():
    return {s.id: s for s in MathVision().load(FIXTURE)}


def test_registered_with_its_description():
    assert BENCHMARKS.get("mathvision") is MathVision and MathVision.name == "mathvision"
    for attr in ("title", "source", "layout", "deviations"):
        assert getattr(MathVision, attr)
    assert MathVision.default_split == "test" and MathVision.categories == ("subject", "level")


def test_load_fixture_splits(samples):
    assert list(samples) == ["4", "6", "27", "39", "59", "91"]
    assert [s.id for s in MathVision().load(FIXTURE, "testmini")] == ["4", "6", "27", "59"]
    assert samples["4"].prompt == PROMPT_4
    assert samples["39"].prompt == PROMPT_39
    assert samples["6"].prompt.endswith("different colour?\n<image1>\n")  # options A-E are in the image
    assert "<image1>" in samples["59"].prompt and "<image4>" in samples["59"].prompt  # markers kept as text
    assert samples["27"].metadata["categories"] == {"subject": "topology", "level": "5"}
    assert samples["91"].metadata["options"][4] == "$12 \\mathrm{~m}$"
    assert {s.task for s in samples.values()} == {"mathvision"}
    for s in samples.values():
        (image,) = s.images
        assert isinstance(image, dict) and image["bytes"][:2] == b"\xff\xd8"


def test_load_github_jsonl_layout(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "4.jpg")
    row = {"id": "4", "question": "How many different digits can you find in this picture?\n<image1>",
           "options": [], "answer": "6", "solution": None, "level": 1, "subject": "counting", "image": "images/4.jpg"}
    (tmp_path / "data" / "test.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    (s,) = MathVision().load(tmp_path)
    assert (s.id, s.prompt, s.answer) == ("4", PROMPT_4, "6")
    assert s.images == [str(tmp_path / "images" / "4.jpg")]


JUDGE_CASES = [
    # (id, completion, extracted, score)
    ("4", "\\boxed{6}", "6", 1.0),
    ("4", "<think>digits: 1, 2, 3, 5, 7, 9</think><answer>\\boxed{6}</answer>", "6", 1.0),
    ("4", "The answer is 6.", "6", 1.0),
    ("4", "There are 6 different digits, so the answer is 6", "6", 1.0),
    ("4", "First I count \\boxed{5}, but rechecking gives \\boxed{6}", "6", 1.0),  # the last box
    ("4", "6.004", "6.004", 1.0),  # equal to 2 decimals, as officially
    ("4", "\\boxed{7}", "7", 0.0),
    ("4", "", None, 0.0),
    ("4", "<think>Let me count the digits one by", None, 0.0),  # truncated
    ("6", "\\boxed{D}", "d", 1.0),
    ("6", "The striped kittens match only in picture D.", "d", 1.0),  # trailing " D."
    ("6", "(D)\nBecause one kitten's ears differ.", "d", 1.0),  # leading "(D)\n"
    ("6", "\\boxed{B}", "b", 0.0),
    ("27", "\\boxed{A}", "a", 1.0),
    ("39", "The cube must be red, so the answer is red.", "red", 1.0),  # the gold option's text
    ("39", "\\boxed{blue}", "blue", 0.0),
    ("59", "The side opposite is C.", "c", 1.0),  # letter gold without options
    ("91", "\\boxed{E}", "e", 1.0),
    ("91", "\\boxed{12}", "12", 0.0),  # sic: the option text "$12 \\mathrm{~m}$" is not a number officially
]


@pytest.mark.parametrize("rid,completion,extracted,score", JUDGE_CASES)
def test_judge(samples, rid, completion, extracted, score):
    j = MathVision().judge(completion, samples[rid])
    assert (j.extracted, j.score) == (extracted, score)


@pytest.mark.parametrize("answer,gold,equal", [
    ("\\frac{1}{2}", "0.5", True),
    ("\\dfrac{1}{2}", "\\frac{1}{2}", True),
    ("7.004", "7", True),
    ("7.01", "7", False),
    ("(2,3)", "(2, 3)", True),  # eval_tuple
    ("(2,4)", "(2, 3)", False),
    ("2\\sqrt3", "2\\sqrt{3}", True),  # _fix_sqrt
    ("3.50", "3.5", True),
    ("60^\\circ", "60", True),
    ("x=5", "5", True),  # the value after "="
    ("b", "a", False),
    ("x+1", "x+2", False),
])
def test_official_equivalence(answer, gold, equal):
    assert is_equal(gold, extract_model_answer(f"\\boxed{{{answer}}}")) is equal


@pytest.mark.parametrize("completion", [None, "\\boxed{", "\\boxed{9^{9^{9^{9}}}}", "(" * 3000, "1/0", "\\boxed{}"])
def test_judge_never_raises(samples, completion):
    for s in samples.values():
        assert MathVision().judge(completion, s).score in (0.0, 1.0)  # type: ignore[arg-type]


def test_missing_split_lists_the_files_found(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "mv")
    with pytest.raises(DataError, match=r"no MATH-Vision 'val' split.*data/test-00000-of-00001"):
        MathVision().load(tmp_path / "mv", "val")


def test_bad_rows_name_file_and_field(tmp_path):
    row = {"id": "6", "question": "Which?", "options": ["A", "B", "C", "D", "E"], "answer": "F", "level": 3,
           "subject": "logic", "image": "images/6.jpg"}
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"test.jsonl:1: field 'answer': expected an option letter A-E, got 'F'"):
        MathVision().load(tmp_path)
    path.write_text(json.dumps({**row, "answer": "B", "question": None}) + "\n")
    with pytest.raises(DataError, match=r"test.jsonl:1: field 'question': expected a string, got null"):
        MathVision().load(tmp_path)
    path.write_text(json.dumps({**row, "answer": "B", "image": None}) + "\n")
    with pytest.raises(DataError, match=r"test.jsonl:1: field 'image'"):
        MathVision().load(tmp_path)
    path.write_text(json.dumps({**row, "answer": "B"}) + "\n{broken\n")
    with pytest.raises(DataError, match=r"test.jsonl:2: invalid JSON"):
        MathVision().load(tmp_path)

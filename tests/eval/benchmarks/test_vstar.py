"""V* Bench adapter: the released test_questions.jsonl + annotation JSONs, the prompt, and can_infer scoring."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import BENCHMARKS
from mmrft.eval.benchmarks.vstar import VStarBench, parse_option_lines

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "benchmarks" / "vstar"


@pytest.fixture(scope="module")
def samples() -> dict[str, Sample]:
    return {s.id: s for s in VStarBench().load(FIXTURE)}


def test_registered():
    assert BENCHMARKS.get("vstar") is VStarBench
    assert VStarBench.default_split == "test"
    assert VStarBench.categories == ("category",)


def test_load_fields(samples):
    assert list(samples) == ["0", "1", "115", "116"]  # file order, ids from question_id
    glove = samples["0"]
    assert (glove.task, glove.answer) == ("vstar", "A")
    assert glove.metadata["categories"] == {"category": "direct_attributes"}
    assert glove.metadata["options"] == {"A": "rubber", "B": "cotton", "C": "kevlar", "D": "leather"}
    assert glove.metadata["question"] == "What is the material of the glove?"
    assert glove.metadata["annotation"] == {"target_object": ["glove"], "bbox": [[564, 142, 155, 157]]}
    assert glove.images == [str((FIXTURE / "direct_attributes" / "sa_4690.jpg").resolve())]
    ladder = samples["115"]
    assert ladder.answer == "B"
    assert ladder.metadata["categories"] == {"category": "relative_position"}
    assert ladder.metadata["options"] == {"A": "The steel ladder is on the right side of the wagon.",
                                          "B": "The steel ladder is on the left side of the wagon."}
    assert ladder.metadata["annotation"]["target_object"] == ["steel ladder", "wagon"]
    assert samples["1"].answer == "C"
    assert sorted(s.metadata["categories"]["category"] for s in samples.values()) == [
        "direct_attributes", "direct_attributes", "relative_position", "relative_position"]


def test_prompt_is_the_released_text(samples):
    assert samples["0"].prompt == (
        "What is the material of the glove?\n(A) rubber\n(B) cotton\n(C) kevlar\n(D) leather\n"
        "Answer with the option's letter from the given choices directly.")
    assert samples["116"].prompt == (
        "Is the umbrella on the left or right side of the bicycle?\n"
        "(A) The umbrella is on the left side of the bicycle.\n"
        "(B) The umbrella is on the right side of the bicycle.\n"
        "Answer with the option's letter from the given choices directly.")


def test_parse_option_lines():
    assert parse_option_lines("Q?\n(A) red\n(B)  dark blue \nAnswer with the letter.") == (
        "Q?", {"A": "red", "B": "dark blue"})
    assert parse_option_lines("Which (A) is it?") == ("Which (A) is it?", {})  # '(A)' inside a line is no option
    assert parse_option_lines("no options") == ("no options", {})


GLOVE = [  # A rubber, B cotton, C kevlar, D leather; gold A
    ("A", "A", 1.0),
    ("(A)", "A", 1.0),
    ("A. rubber", "A", 1.0),
    ("The answer is A.", "A", 1.0),
    ("**A**", "A", 1.0),
    ("\\boxed{A}", "A", 1.0),
    ("<think>The glove looks shiny and stretchy.</think><answer>A</answer>", "A", 1.0),
    ("rubber", "A", 1.0),  # no letter: the one option text found (can_infer_text)
    ("A rubber glove.", "A", 1.0),
    ("D", "D", 0.0),
    ("Answer: B", "B", 0.0),
    ("The answer is C (kevlar).", "C", 0.0),
    ("The glove is made of leather.", "D", 0.0),
    ("<think>It shines like rubber.</think>\nThe answer is (D).", "D", 0.0),  # only the text after </think>
    ("a", None, 0.0),  # letters are case-sensitive, as in VLMEvalKit
    ("A or D", None, 0.0),  # two letters
    ("rubber or cotton", None, 0.0),  # two option texts
    ("I cannot determine the material from this image.", None, 0.0),
    ("Cannot determine the answer", None, 0.0),  # VLMEvalKit's refusal -> 'Z'
    ("", None, 0.0),
    ("<think>It could be rubber, or maybe", None, 0.0),  # generation stopped inside <think>
]


@pytest.mark.parametrize("completion, extracted, score", GLOVE)
def test_judge_direct_attributes(samples, completion, extracted, score):
    j = VStarBench().judge(completion, samples["0"])
    assert (j.extracted, j.score) == (extracted, score)


LADDER = [  # A: ... right side ..., B: ... left side ...; gold B
    ("B", "B", 1.0),
    ("(B) The steel ladder is on the left side of the wagon.", "B", 1.0),
    ("The steel ladder is on the left side of the wagon.", "B", 1.0),  # the option sentence, no letter
    ("<think>The ladder leans on the wall at the left.</think><answer>B</answer>", "B", 1.0),
    ("A", "A", 0.0),
    ("A steel ladder on the left.", "A", 0.0),  # the article 'A' reads as option A (VLMEvalKit quirk)
    ("left", None, 0.0),  # neither the letter nor a whole option sentence: an LLM judge would accept it
    ("On the left side.", None, 0.0),
]


@pytest.mark.parametrize("completion, extracted, score", LADDER)
def test_judge_relative_position(samples, completion, extracted, score):
    j = VStarBench().judge(completion, samples["115"])
    assert (j.extracted, j.score) == (extracted, score)


def test_judge_never_raises(samples):
    for bad in [None, 3.5, "{" * 5000, "<answer>", "(" * 100]:
        assert VStarBench().judge(bad, samples["0"]).score == 0.0  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- bad input
ROW = {"question_id": 7, "image": "direct_attributes/x.jpg",
       "text": "What is the color of the cup?\n(A) red\n(B) blue\nAnswer with the option's letter from the given "
               "choices directly.", "category": "direct_attributes", "label": "B"}


def _write(tmp_path: Path, rows: list, raw: str | None = None) -> Path:
    lines = raw if raw is not None else "".join(json.dumps(r) + "\n" for r in rows)
    (tmp_path / "test_questions.jsonl").write_text(lines, encoding="utf-8")
    return tmp_path


def test_missing_question_file_lists_directory(tmp_path):
    (tmp_path / "direct_attributes").mkdir()
    (tmp_path / "direct_attributes" / "sa_1.json").write_text("{}")
    with pytest.raises(DataError, match=r"test_questions\.jsonl.*PR #3.*direct_attributes/"):
        VStarBench().load(tmp_path)


def test_unknown_split():
    with pytest.raises(DataError, match="single split 'test'"):
        VStarBench().load(FIXTURE, "val")


@pytest.mark.parametrize("change, message", [
    ({"label": "C"}, r"line 1: field 'label': expected one of \['A', 'B'\], got 'C'"),
    ({"label": None}, r"line 1: missing field 'label'"),
    ({"category": ""}, r"line 1: missing field 'category'"),
    ({"text": "What is the color of the cup?"}, r"line 1: field 'text': expected option lines"),
    ({"text": "Q?\n(A) red\n(C) blue"}, r"line 1: field 'text': .*found \['A', 'C'\]"),
    ({"image": "/abs/x.jpg"}, r"line 1: field 'image': expected a path relative to"),
    ({"image": "../x.jpg"}, r"line 1: field 'image'"),
    ({"question_id": [1]}, r"line 1: field 'question_id'"),
])
def test_bad_rows(tmp_path, change, message):
    root = _write(tmp_path, [{**ROW, **change}])
    with pytest.raises(DataError, match=message) as e:
        VStarBench().load(root)
    assert "test_questions.jsonl" in str(e.value)


def test_bad_json_line_and_duplicate_id(tmp_path):
    _write(tmp_path, [], raw=json.dumps(ROW) + "\n{not json\n")
    with pytest.raises(DataError, match=r"test_questions\.jsonl:line 2: not valid JSON"):
        VStarBench().load(tmp_path)
    _write(tmp_path, [ROW, {**ROW, "image": "direct_attributes/y.jpg"}])
    with pytest.raises(DataError, match=r"line 2: duplicate question_id '7' \(first on line 1\)"):
        VStarBench().load(tmp_path)


def test_missing_image_and_annotation_are_not_load_errors(tmp_path):
    (s,) = VStarBench().load(_write(tmp_path, [ROW]))  # neither x.jpg nor x.json exists
    assert s.id == "7" and s.answer == "B" and "annotation" not in s.metadata
    assert s.images == [str((tmp_path / "direct_attributes" / "x.jpg").resolve())]  # reported by the runner


def test_malformed_annotation_names_the_file(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "v")
    ann = tmp_path / "v" / "relative_position" / "sa_79958.json"
    ann.write_text(json.dumps({"target_object": ["ladder"], "bbox": [[1, 2, 3]], "question": "q", "options": []}))
    with pytest.raises(DataError, match=r"sa_79958\.json: field 'bbox'"):
        VStarBench().load(tmp_path / "v")
    ann.write_text("[1, 2]")
    with pytest.raises(DataError, match=r"sa_79958\.json: expected a JSON object"):
        VStarBench().load(tmp_path / "v")

"""Geometry3K adapter: the InterGPS release and the HF parquet layout, choice reading and the official value rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import BENCHMARKS
from mmrft.eval.benchmarks.geometry3k import Geometry3K, choice_by_value

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "benchmarks" / "geometry3k"


@pytest.fixture(scope="module")
def samples() -> dict[str, Sample]:
    return {s.id: s for s in Geometry3K().load(FIXTURE)}


@pytest.fixture(scope="module")
def hf_samples() -> list[Sample]:
    return Geometry3K().load(FIXTURE / "hf")


def test_registered():
    assert BENCHMARKS.get("geometry3k") is Geometry3K
    assert Geometry3K.default_split == "test"
    assert Geometry3K.categories == ("problem_type_goal", "problem_type_graph")


def test_load_intergps(samples):
    assert list(samples) == ["2401", "2402", "2403", "2404"]
    s = samples["2403"]
    assert (s.task, s.answer) == ("geometry3k", "C")
    assert s.metadata["options"] == ["2 \\sqrt { 3 }", "4", "4 \\sqrt { 3 }", "8"]
    assert s.images == [str(FIXTURE / "test" / "2403" / "img_diagram.png")]
    assert s.metadata["categories"] == {"problem_type_goal": ["Length"], "problem_type_graph": ["Triangle"]}


def test_official_category_normalisation(samples):
    # sub_acc.py: quadrilaterals are reported as "Quad"; "Other" is dropped when there is another goal
    assert samples["2402"].metadata["categories"]["problem_type_graph"] == ["Circle", "Quad"]
    assert samples["2404"].metadata["categories"] == {"problem_type_goal": ["Angle"], "problem_type_graph": ["Quad"]}


def test_prompt(samples):
    assert samples["2403"].prompt == (
        "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\n"
        "Question: Find y.\n"
        "Choices:\n"
        "(A) 2 \\sqrt { 3 }\n"
        "(B) 4\n"
        "(C) 4 \\sqrt { 3 }\n"
        "(D) 8")


FIND_Y = [  # (A) 2√3 (B) 4 (C) 4√3 (D) 8 ; gold C ; precise values 3.46, 4, 6.93, 8
    ("C", "C", 1.0),
    ("<think>30-60-90 triangle, long leg = short leg * sqrt 3</think><answer>C</answer>", "C", 1.0),
    ("**(C)**", "C", 1.0),
    ("The answer is B.", "B", 0.0),
    ("Option C: 4 sqrt 3", "C", 1.0),
    ("(A) or (C)", None, 0.0),  # two options named
    # option text / value instead of a letter
    ("<answer>4\\sqrt{3}</answer>", "C", 1.0),  # exact option text, LaTeX spacing ignored
    ("y = 4\\sqrt{3}", "C", 1.0),  # value 6.93 -> closest choice C (option text '4' is not read as B)
    ("So $y = 2\\sqrt{12}$.\n\\boxed{2\\sqrt{12}}", "C", 1.0),  # equivalent value
    ("y is approximately 6.9 units", "C", 1.0),
    ("The answer is 7", "C", 1.0),  # official rule: the closest choice to the value
    ("\\boxed{8}", "D", 0.0),
    # no answer
    ("", None, 0.0),
    ("<think>30-60-90 triangle, so y", None, 0.0),  # truncated
    ("<answer></answer>", None, 0.0),
    ("I am not sure.", None, 0.0),
]


@pytest.mark.parametrize("completion, extracted, score", FIND_Y)
def test_judge_choices(samples, completion, extracted, score):
    j = Geometry3K().judge(completion, samples["2403"])
    assert (j.extracted, j.score) == (extracted, score)


ANGLE = [  # (A) 34 (B) 56 (C) 62 (D) 118 ; gold B
    ("m \\angle 2 = 56", "B", 1.0),
    ("$56^\\circ$", "B", 1.0),
    ("m∠B = 62", "C", 0.0),  # the point label B is not option B
    ("The measure is 124 degrees", "D", 0.0),
    ("B. 56", "B", 1.0),
]


@pytest.mark.parametrize("completion, extracted, score", ANGLE)
def test_judge_angle(samples, completion, extracted, score):
    j = Geometry3K().judge(completion, samples["2404"])
    assert (j.extracted, j.score) == (extracted, score)


def test_choice_by_value_ties_count_for_gold():
    assert choice_by_value(5.0, [4.0, 6.0, 9.0], gold=1) == 1  # tie between A and B: official credits the gold
    assert choice_by_value(5.0, [4.0, 6.0, 9.0], gold=2) == 0
    assert choice_by_value(100.0, [4.0, 6.0, 9.0], gold=0) == 2


def test_value_rule_needs_precise_values(samples):
    s = samples["2401"]
    no_values = Sample(id=s.id, prompt=s.prompt, answer=s.answer, task=s.task,
                       metadata={**s.metadata, "precise_value": [5.8, None, 14.2, 44.3]})
    assert Geometry3K().judge("x = 14.2", s).score == 1.0
    assert Geometry3K().judge("x = 14.19", s).score == 1.0  # value rule
    assert Geometry3K().judge("x = 14.19", no_values).score == 0.0  # official: all values must be known
    assert Geometry3K().judge("C", no_values).score == 1.0


# ----------------------------------------------------------------------------- HF parquet layout
def test_load_hf(hf_samples):
    assert [s.id for s in hf_samples] == ["0", "1", "2"]
    assert hf_samples[0].prompt == "Find x. Round to the nearest tenth."
    assert hf_samples[1].answer == "4 \\sqrt { 3 }"
    assert hf_samples[0].images[0]["bytes"].startswith(b"\x89PNG")
    assert hf_samples[2].metadata["categories"] == {"problem_type_goal": "unknown", "problem_type_graph": "unknown"}


HF = [
    (0, "\\boxed{14.2}", "14.2", 1.0),
    (0, "x = 14.20", "x = 14.20", 1.0),
    (0, "<think>law of sines</think><answer>14.3</answer>", "14.3", 0.0),
    (1, "<answer>4\\sqrt{3}</answer>", "4\\sqrt{3}", 1.0),
    (1, "\\boxed{\\sqrt{48}}", "\\sqrt{48}", 1.0),
    (1, "\\boxed{6.93}", "6.93", 0.0),  # math-verify: a rounded decimal is not 4√3
    (2, "<think>area</think>58.3", "58.3", 1.0),
    (2, "", None, 0.0),
]


@pytest.mark.parametrize("row, completion, extracted, score", HF)
def test_judge_hf(hf_samples, row, completion, extracted, score):
    j = Geometry3K().judge(completion, hf_samples[row])
    assert (j.extracted, j.score) == (extracted, score)


def test_judge_never_raises(samples, hf_samples):
    for bad in [None, 7, "\\boxed{" * 300, "9" * 5000]:
        assert Geometry3K().judge(bad, samples["2403"]).score == 0.0  # type: ignore[arg-type]
        assert Geometry3K().judge(bad, hf_samples[0]).score == 0.0  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- bad input
def test_missing_split_lists_what_is_there():
    with pytest.raises(DataError, match=r"no Geometry3K 'train' data.*found: .*test"):
        Geometry3K().load(FIXTURE, "train")
    with pytest.raises(DataError, match="unknown Geometry3K split 'dev'"):
        Geometry3K().load(FIXTURE, "dev")


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "g3k"
    shutil.copytree(FIXTURE / "test", root / "test")
    return root


@pytest.mark.parametrize("change, message", [
    ({"answer": "E"}, r"field 'answer': expected one of \['A', 'B', 'C', 'D'\]"),
    ({"choices": "5.8, 6.5"}, r"field 'choices': expected a list"),
    ({"problem_text": ""}, r"field 'problem_text'"),
    ({"precise_value": [1.0, 2.0]}, r"field 'precise_value': expected a list of 4 numbers"),
])
def test_bad_data_json(tmp_path, change, message):
    root = _copy(tmp_path)
    path = root / "test" / "2402" / "data.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(DataError, match=message) as e:
        Geometry3K().load(root)
    assert "2402/data.json" in str(e.value)


def test_malformed_and_missing_json(tmp_path):
    root = _copy(tmp_path)
    (root / "test" / "2401" / "data.json").write_text("{not json")
    with pytest.raises(DataError, match=r"cannot read .*2401/data\.json"):
        Geometry3K().load(root)
    (root / "test" / "2401" / "data.json").unlink()
    with pytest.raises(DataError, match=r"2401: missing data\.json \(files: \['img_diagram\.png'\]\)"):
        Geometry3K().load(root)


def test_missing_diagram_is_left_to_the_runner(tmp_path):
    root = _copy(tmp_path)
    (root / "test" / "2404" / "img_diagram.png").unlink()
    s = {x.id: x for x in Geometry3K().load(root)}["2404"]
    assert s.images == [str((root / "test" / "2404" / "img_diagram.png").resolve())]


def test_bad_hf_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "data").mkdir()
    rows = [{"images": [], "problem": "<image>Find x.", "answer": ""}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "test-00000-of-00001.parquet")
    with pytest.raises(DataError, match=r"test-00000-of-00001\.parquet:row 0: field 'answer'"):
        Geometry3K().load(tmp_path)

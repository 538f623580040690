"""MathVista adapter: loading the HF and GitHub layouts, the official rule-based scorer, bad input."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import BENCHMARKS
from mmrft.eval.benchmarks.mathvista import MathVista, answer_number, build_query, normalize_extracted_answer

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "benchmarks" / "mathvista"
HINT_INT = ("Hint: Please answer the question requiring an integer answer and provide the final value, "
            "e.g., 1, 2, 3, at the end.")
HINT_MC = "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end."
PROMPT_2 = f"{HINT_INT}\nQuestion: what is the total volume of the measuring cup? (Unit: g)"
PROMPT_5 = f"{HINT_MC}\nQuestion: Find $m\\angle H$\nChoices:\n(A) 97\n(B) 102\n(C) 107\n(D) 122"


@pytest.fixture(scope="module")
def samples():
    return {s.id: s for s in MathVista().load(FIXTURE)}


def test_registered_with_its_description():
    assert BENCHMARKS.get("mathvista") is MathVista and MathVista.name == "mathvista"
    for attr in ("title", "source", "layout", "deviations"):
        assert getattr(MathVista, attr)
    assert MathVista.default_split == "testmini"
    assert "GPT-4" in MathVista.deviations
    assert {"skills", "source", "task", "grade", "question_type"} <= set(MathVista.categories)


def test_load_hf_fixture(samples):
    assert list(samples) == ["1", "2", "5", "7", "901", "902"]
    s2, s5, s1 = samples["2"], samples["5"], samples["1"]
    assert s2.prompt == PROMPT_2 and s5.prompt == PROMPT_5
    assert s1.prompt.startswith("Hint: Please answer the question requiring a floating-point number with one "
                                "decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.\n"
                                "Question: When a spring does work")
    assert "\r\n\r\nIn Figure" in s1.prompt
    assert {s.task for s in samples.values()} == {"mathvista"}
    assert s2.answer == "1000" and s5.answer == "97" and samples["902"].answer == "[2007, 2008]"
    assert s5.metadata["choices"] == ["97", "102", "107", "122"] and s5.metadata["question_type"] == "multi_choice"
    assert s1.metadata["precision"] == 1 and isinstance(s1.metadata["precision"], int)
    assert samples["2"].metadata["precision"] is None and samples["2"].metadata["unit"] == "g"
    assert s2.metadata["categories"] == {
        "question_type": "free_form", "answer_type": "integer", "language": "english", "source": "TextVQA",
        "category": "general-vqa", "task": "visual question answering", "context": "natural image",
        "grade": "not applicable", "skills": ["numeric commonsense", "arithmetic reasoning"]}
    for s in samples.values():
        (image,) = s.images
        assert isinstance(image, dict) and image["bytes"][:2] == b"\xff\xd8"  # embedded JPEG, not decoded
        assert Image.open(io.BytesIO(image["bytes"])).size == (16, 16)


def _github_layout(root: Path, with_query: bool) -> Path:
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "images" / "5.jpg")
    data = {
        "5": {"question": "Find $m\\angle H$", "image": "images/5.jpg", "choices": ["97", "102", "107", "122"],
              "unit": None, "precision": None, "answer": "97", "question_type": "multi_choice",
              "answer_type": "text", "pid": "5",
              "metadata": {"split": "testmini", "language": "english", "img_width": 322, "img_height": 245,
                           "source": "Geometry3K", "category": "math-targeted-vqa",
                           "task": "geometry problem solving", "context": "geometry diagram",
                           "grade": "high school", "skills": ["geometry reasoning", "algebraic reasoning"]}},
        "2": {"question": "what is the total volume of the measuring cup?", "image": "images/2.jpg",
              "choices": None, "unit": "g", "precision": None, "answer": "1000", "question_type": "free_form",
              "answer_type": "integer", "pid": "2",
              "metadata": {"split": "testmini", "language": "english", "source": "TextVQA",
                           "category": "general-vqa", "task": "visual question answering",
                           "context": "natural image", "grade": "not applicable",
                           "skills": ["numeric commonsense", "arithmetic reasoning"]}},
    }
    (root / "testmini.json").write_text(json.dumps(data), encoding="utf-8")
    if with_query:
        (root / "query.json").write_text(json.dumps({"5": "QUERY FIVE", "2": "QUERY TWO"}), encoding="utf-8")
    return root


def test_load_github_layout_builds_the_official_query(tmp_path):
    root = _github_layout(tmp_path / "mathvista", with_query=False)
    samples = {s.id: s for s in MathVista().load(root)}
    assert samples["5"].prompt == PROMPT_5 and samples["2"].prompt == PROMPT_2
    assert samples["5"].images == [str(root / "images" / "5.jpg")]
    assert samples["2"].images == [str(root / "images" / "2.jpg")]  # missing file: a reference, reported later
    assert samples["5"].metadata["categories"]["skills"] == ["geometry reasoning", "algebraic reasoning"]


def test_load_github_layout_prefers_query_json(tmp_path):
    root = _github_layout(tmp_path / "mathvista", with_query=True)
    assert {s.id: s.prompt for s in MathVista().load(root)} == {"5": "QUERY FIVE", "2": "QUERY TWO"}


def test_build_query_float_and_list_hints():
    float2 = {"question": "How much?", "unit": "$", "choices": None, "precision": 2, "question_type": "free_form",
              "answer_type": "float"}
    assert build_query(float2) == ("Hint: Please answer the question requiring a floating-point number with two "
                                   "decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end."
                                   "\nQuestion: How much? (Unit: $)")
    lst = {"question": "Which years?", "unit": None, "choices": None, "precision": None,
           "question_type": "free_form", "answer_type": "list"}
    assert build_query(lst) == ("Hint: Please answer the question requiring a Python list as an answer and provide "
                                "the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.\nQuestion: Which years?")


JUDGE_CASES = [
    # (pid, completion, extracted, score)
    ("1", "1.2", "1.2", 1.0),
    ("1", "<think>k = 750, m = 0.4, so d = v*sqrt(m/k)</think><answer>1.2</answer>", "1.2", 1.0),
    ("1", "Using energy conservation the spring is compressed by d = 1.2 cm.", "1.2", 1.0),
    ("1", "d \\approx 1.15", "1.1", 0.0),  # round(1.15, 1) == 1.1 in floating point, as officially
    ("1", "\\boxed{1.25}", "1.2", 1.0),  # official round-to-precision credits 1.25 -> 1.2
    ("901", "1.450", "1.45", 1.0),
    ("901", "1.4500001", "1.45", 1.0),
    ("901", "Luca needs $0.86 + $0.59 = $1.45.", "1.45", 1.0),
    ("901", "The answer is 1.4", "1.4", 0.0),
    ("901", "1.455", "1.46", 0.0),
    ("2", "1000", "1000", 1.0),
    ("2", "The cup holds up to 1,000 g.\nFinal answer: 1000", "1000", 1.0),
    ("2", "999.7", "999", 0.0),  # official int(float(x)) truncates
    ("2", "<think>the cup is marked in", None, 0.0),  # truncated reasoning
    ("2", "", None, 0.0),
    ("5", "A", "97", 1.0),
    ("5", "97", "97", 1.0),  # the option text itself
    ("5", "Angles of a quadrilateral... The answer is (A) 97.", "97", 1.0),
    ("5", "Therefore $m\\angle H = 97°$", "97", 1.0),  # names an option's text
    ("5", "**Answer:** B", "102", 0.0),
    ("5", "<answer>\\boxed{C}</answer>", "107", 0.0),
    ("5", "It is A or C", None, 0.0),  # two options named
    ("7", "quarter", "quarter", 1.0),
    ("7", "(B)", "quarter", 1.0),
    ("7", "It is quarter past eight.", "quarter past", 0.0),
    ("7", 'The answer is "quarter to".', "quarter to", 0.0),  # official quick extraction
    ("7", "Looking at the clock, the minute hand points at 3.", None, 0.0),  # nothing close to an option
    ("902", "[2007, 2008]", "[2007, 2008]", 1.0),
    ("902", "The line graph saw its maximum peak between 2007 and 2008.", "[2007, 2008]", 1.0),
    ("902", "<answer>[2007,2008]</answer>", "[2007, 2008]", 1.0),
    ("902", "[2008, 2009]", "[2008, 2009]", 0.0),
]


@pytest.mark.parametrize("pid,completion,extracted,score", JUDGE_CASES)
def test_judge(samples, pid, completion, extracted, score):
    j = MathVista().judge(completion, samples[pid])
    assert (j.extracted, j.score) == (extracted, score)


# mmrft's rule extractor (module docstring, rules 1-4; none of it official: it stands in for the GPT-4 extraction).
# Each row is a model output the previous rules (boxed / English "answer is" / last line, then the last number)
# misread, unless marked "guard": a row they read right that the new rules must not break.
RULE_CASES = [
    # (pid, completion, extracted, score)
    # Chinese answer statements (rules 1-2): 答案是 / 答案为 / 故选 / 选项, full-width punctuation
    ("5", "答案是A", "97", 1.0),
    ("5", "∠H与∠G互补，故选A。", "97", 1.0),
    ("5", "答案可能是C", "107", 0.0),  # hedged
    ("7", "答案是B", "quarter", 1.0),
    ("7", "B选项正确。", "quarter", 1.0),
    ("2", "量杯的总容量是1000克。", "1000", 1.0),
    ("1", "答案为1.2厘米", "1.2", 1.0),
    # hedged / modal answer statements (rule 2): the statement, not the explanation on the last line
    ("5", "The answer would be A.\nThis is because the angles of the quadrilateral add up to 360°.", "97", 1.0),
    ("901", "The answer should be $1.45.\nThe two candies cost $0.86 and $0.59.", "1.45", 1.0),
    ("5", "I think the answer is probably A, since 360 - 122 - 141 = 97.", "97", 1.0),  # 122, 97 in the reason
    ("2", "It might be around 1000 g.", "1000", 1.0),  # guard: hedge and unit
    # distractor numbers after the answer (rule 4)
    ("901", "Luca needs $1.45 in total (0.86 + 0.59).", "1.45", 1.0),  # a: remark
    ("901", "Luca needs $1.45, because the sour apple candy costs $0.86 and the butterscotch candy costs $0.59.",
     "1.45", 1.0),  # b: justification
    ("2", "The total volume is 1000 (4 × 250).", "1000", 1.0),  # a
    ("2", "The measuring cup holds 1000 g, twice the 500 g it is filled with.", "1000", 1.0),  # d: comparison
    ("1", "The spring is compressed by about 1.2 cm, which is less than the 5 cm length of the canister.", "1.2",
     1.0),  # d: comparison
    ("1", "d = v·sqrt(m/k) ≈ 0.0115 m, which is about 1.2 cm.", "1.2", 1.0),  # guard: c then last number
    ("901", "Luca needs $0.86 + $0.59 = $1.45, so 1.45.", "1.45", 1.0),  # guard: conclusion
]


@pytest.mark.parametrize("pid,completion,extracted,score", RULE_CASES)
def test_judge_rule_extractor(samples, pid, completion, extracted, score):
    j = MathVista().judge(completion, samples[pid])
    assert (j.extracted, j.score) == (extracted, score)


def _problem(question: str, answer: str, answer_type: str = "integer", choices: tuple = (),
             precision=None, unit=None) -> Sample:
    """A sample with the metadata the loader writes (the fixture has no counting or unit-option question)."""
    qtype = "multi_choice" if choices else "free_form"
    md = {"question": question, "unit": unit, "choices": list(choices), "precision": precision,
          "question_type": qtype, "answer_type": answer_type}
    return Sample(id="t", prompt=question, answer=answer, task="mathvista", metadata=md)


PROBLEMS = {
    "apples": _problem("How many apples are there in the bowl?", "5"),
    "green": _problem("How many green apples are there in the bowl?", "2"),
    "left": _problem("Subtract all large rubber spheres. Subtract all big shiny cylinders. How many objects are "
                     "left?", "4"),
    "bars": _problem("How many bars have values larger than 6?", "3"),
    "age": _problem("What is the age gap between these two people in image?", "7", unit="years"),
    "perimeter": _problem("Find the perimeter of the triangle.", "12 cm", "text", ("6 cm", "12 cm", "18 cm", "24 cm")),
}

COUNT_AND_UNIT_CASES = [
    # (problem, completion, extracted, score)
    # the number that answers "how many" (rule 4), not the last one
    ("apples", "There are 5 apples, 2 of which are green.", "5", 1.0),  # d: breakdown
    ("apples", "There are 5 apples. Of these, 2 are green.", "5", 1.0),  # d
    ("apples", "There are 5 apples and 2 bananas in the bowl.", "5", 1.0),  # e: 2 counts bananas
    ("apples", "图中碗里有5个苹果，其中2个是绿色的。", "5", 1.0),  # rule 1 + d: 其中
    ("apples", "There were 7 apples; 2 were eaten, so 5 are left.", "5", 1.0),  # guard: c
    ("apples", "So far there are 3 apples; adding 2 gives 5.", "5", 1.0),  # guard: 5 counts nothing else
    ("green", "There are 5 apples, 2 of which are green.", "2", 1.0),  # guard: the breakdown is the count asked
    ("green", "I count 5 apples: 3 red and 2 green.", "2", 1.0),  # guard: e, "2 green" names the modifier
    ("left", "4 objects are left: 2 cubes, 1 sphere and 1 cylinder.", "4", 1.0),  # e
    ("left", "There are 6 objects; removing the 2 that match leaves 4 objects.", "4", 1.0),  # guard
    ("bars", "There are 3 bars with values larger than 6.", "3", 1.0),  # d: comparison
    ("age", "The age gap is 7 years (45 - 38).", "7", 1.0),  # a
    ("age", "7 years, since the man is about 45 and the woman about 38.", "7", 1.0),  # b
    ("age", "The man looks about 45 and the woman about 38, so the age gap is 7 years.", "7", 1.0),  # guard
    # options that carry a unit, answered with or without it (rule 3)
    ("perimeter", "12", "12 cm", 1.0),
    ("perimeter", "The perimeter is 3 + 4 + 5 = 12.", "12 cm", 1.0),
    ("perimeter", "The answer is 12 centimeters.", "12 cm", 1.0),
    ("perimeter", "答案是18", "18 cm", 0.0),
    ("perimeter", "B", "12 cm", 1.0),  # guard
    ("perimeter", "The perimeter is 12 cm.", "12 cm", 1.0),  # guard: the option text
]


@pytest.mark.parametrize("problem,completion,extracted,score", COUNT_AND_UNIT_CASES)
def test_judge_counts_and_units(problem, completion, extracted, score):
    j = MathVista().judge(completion, PROBLEMS[problem])
    assert (j.extracted, j.score) == (extracted, score)


def test_answer_number_rules():
    q = "How many apples are there?"
    assert answer_number("5 apples, 2 of which are green", q) == (5.0,)
    assert answer_number("5 apples, 2 of which are green") == (5.0,)  # the breakdown rule needs no question
    assert answer_number("5 apples and 2 pears", q) == (5.0,)
    assert answer_number("5 apples and 2 pears") == (2.0,)  # without a counted noun: the last number
    assert answer_number("The ratio is 3:4 (0.75)") == (0.75,)  # a restated bare value is not a remark
    assert answer_number("x = 3 because 2x = 6, and the perimeter is 4x + 2 = 14") == (14.0,)
    assert answer_number("45%") == (45.0, 0.45)
    assert answer_number("no number here", q) is None


@pytest.mark.parametrize("completion", [None, 42, "\\boxed{", "A" * 5000, "<answer></answer>", "\x00\ud800"])
def test_judge_never_raises(samples, completion):
    for s in samples.values():
        j = MathVista().judge(completion, s)  # type: ignore[arg-type]
        assert j.score in (0.0, 1.0)


def test_normalize_extracted_answer_follows_calculate_score():
    choices = ["half", "quarter", "o'clock"]
    assert normalize_extracted_answer("(b) quarter", choices, "multi_choice", "text", None) == "quarter"
    assert normalize_extracted_answer("C", choices, "multi_choice", "text", None) == "o'clock"
    assert normalize_extracted_answer("quartre", choices, "multi_choice", "text", None) == "quarter"
    assert normalize_extracted_answer("", choices, "multi_choice", "text", None) is None
    assert normalize_extracted_answer("3.99", [], "free_form", "integer", None) == "3"
    assert normalize_extracted_answer("2.005", [], "free_form", "float", 2) == "2.0"  # sic: float rounding
    assert normalize_extracted_answer("abc", [], "free_form", "float", 1) is None


def test_missing_split_lists_the_files_found(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "mv")
    with pytest.raises(DataError, match=r"no MathVista 'test' split.*testmini-00000-of-00001"):
        MathVista().load(tmp_path / "mv", "test")
    with pytest.raises(DataError, match="no .parquet/.json files"):
        MathVista().load(tmp_path / "empty")


def test_bad_rows_name_file_and_field(tmp_path):
    root = _github_layout(tmp_path / "a", with_query=False)
    data = json.loads((root / "testmini.json").read_text())
    data["5"]["choices"] = None
    (root / "testmini.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"testmini.json: pid 5: field 'choices'"):
        MathVista().load(root)
    data["5"]["choices"], data["2"]["answer"] = ["97", "102"], ""
    (root / "testmini.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"pid 2: field 'answer': empty"):
        MathVista().load(root)
    data["2"]["answer"], data["2"]["answer_type"] = "1000", "float"
    (root / "testmini.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"pid 2: field 'precision'"):
        MathVista().load(root)
    (root / "testmini.json").write_text("{not json")
    with pytest.raises(DataError, match="testmini.json: cannot read JSON"):
        MathVista().load(root)


def test_corrupt_parquet(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "testmini-00000-of-00001.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(DataError, match="testmini-00000-of-00001.parquet: cannot read parquet"):
        MathVista().load(tmp_path)

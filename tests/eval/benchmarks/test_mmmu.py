"""MMMU adapter: loading the released parquet layout, the official prompt, and the official parsing rules."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import BENCHMARKS
from mmrft.eval.benchmarks.mmmu import (MMMU, eval_open, parse_multi_choice_response, parse_open_response,
                                        response_text)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "benchmarks" / "mmmu"


@pytest.fixture(scope="module")
def samples() -> dict[str, Sample]:
    return {s.id: s for s in MMMU().load(FIXTURE)}


def test_registered():
    assert BENCHMARKS.get("mmmu") is MMMU
    assert MMMU.default_split == "validation"
    assert MMMU.categories == ("discipline", "subject", "question_type", "topic_difficulty")


def test_load_fields_and_categories(samples):
    assert sorted(samples) == ["validation_Architecture_and_Engineering_14", "validation_Art_Theory_1",
                               "validation_Math_2", "validation_Math_5"]
    s = samples["validation_Math_5"]
    assert s.task == "mmmu"
    assert s.answer == "D"
    assert s.metadata["options"] == ["5", "6", "8", "10", "12"]
    assert s.metadata["categories"] == {"discipline": "Science", "subject": "Math",
                                        "question_type": "multiple-choice", "topic_difficulty": "Easy"}
    art = samples["validation_Art_Theory_1"]
    assert art.metadata["categories"]["discipline"] == "Art & Design"
    open_q = samples["validation_Architecture_and_Engineering_14"]
    assert open_q.answer == "1.06"
    assert open_q.metadata["categories"]["discipline"] == "Tech & Engineering"
    assert open_q.metadata["categories"]["question_type"] == "open"


def test_images_are_embedded_refs_in_column_order(samples):
    imgs = samples["validation_Math_2"].images
    assert [im["path"] for im in imgs] == ["image_1.png", "image_2.png", "image_3.png"]
    assert all(isinstance(im["bytes"], bytes) and im["bytes"].startswith(b"\x89PNG") for im in imgs)
    assert len(samples["validation_Art_Theory_1"].images) == 1


def test_multiple_choice_prompt_is_the_official_template(samples):
    expected = ("Which graph shows the function in <image 1>?\n"
                "(A) <image 2>\n"
                "(B) <image 3>\n"
                "(C) Neither\n"
                "\n"
                "Answer with the option's letter from the given choices directly.")
    assert samples["validation_Math_2"].prompt == expected


def test_open_prompt_is_the_official_template(samples):
    expected = ("<image 1> The dam shown is 6 m high. Find the factor of safety against sliding "
                "(round to two decimal places).\nAnswer the question using a single word or phrase.")
    assert samples["validation_Architecture_and_Engineering_14"].prompt == expected


MATH5 = [  # options (A) 5 (B) 6 (C) 8 (D) 10 (E) 12, gold D
    ("D", "D", 1.0),
    ("(D)", "D", 1.0),
    ("The answer is D.", "D", 1.0),
    ("Answer: D", "D", 1.0),
    ("<think>AB = sqrt(36 + 64) = 10</think><answer>D</answer>", "D", 1.0),
    ("<think>legs 6 and 8</think>\nThe answer is (C).", "C", 0.0),
    # several letters: the last occurrence wins
    ("A is wrong. The correct choice is D", "D", 1.0),
    ("(B) or (D)", "D", 1.0),
    ("(D) is tempting, but the answer is (B)", "B", 0.0),
    # option text instead of a letter: only for responses longer than 5 tokens; the last mentioned option wins
    ("Using Pythagoras, AB = sqrt(6^2 + 8^2) = 10, so AB is 10 units long", "D", 1.0),
    ("The answer is option D, which is 10.", "D", 1.0),
    ("10", None, 0.0),  # official: random guess; here 0
    # \boxed is unwrapped before the official parser
    ("<think>hyp = 10</think><answer>$\\boxed{D}$</answer>", "D", 1.0),
    ("so the final answer is \\boxed{(E)}", "E", 0.0),
    # empty / truncated
    ("", None, 0.0),
    # truncated mid-reasoning (unclosed <think>): no answer (base.final_text), whatever numbers the reasoning holds
    ("<think>Let me compute AB from the legs 6 and 8", None, 0.0),
    ("I cannot determine this from the figure.", None, 0.0),
]


@pytest.mark.parametrize("completion, extracted, score", MATH5)
def test_judge_multiple_choice(samples, completion, extracted, score):
    j = MMMU().judge(completion, samples["validation_Math_5"])
    assert (j.extracted, j.score) == (extracted, score)


# A plain completion is parsed as the model wrote it, surrounding whitespace included, as the official pipeline
# does (main_parse_and_eval.py passes `response` to parse_multi_choice_response unchanged). The official parser
# strips only , . ! ? ; : ' from the ends and then looks for "(D)", then " D ", then (responses of more than 5
# tokens) an option's text; "guess" is its random.choice fallback, which mmrft scores as no answer (None, 0).
# Each `official` entry was worked out from the official eval_utils.py and checked against it.
WHITESPACE = [  # (completion, official verdict); sample Math_5: (A) 5 (B) 6 (C) 8 (D) 10 (E) 12, gold D
    ("D\n", "guess"),  # " D\n " holds no " D "
    ("\nD", "guess"),
    ("\n\nD", "guess"),
    ("D.\n", "guess"),  # the newline shields the period from the strip: " D.\n "
    ("The answer is D.\n", "guess"),  # 4 tokens: too short for option-text matching
    ("The answer is D\n", "guess"),
    ("Answer: D\n", "guess"),
    ("D\n\nExplanation: 6-8-10 triangle.", "guess"),  # "triangle." loses its period; "D\n" still no " D "
    ("  (D) ", "D"),  # brackets need no surrounding spaces
    ("(D)\n", "D"),
    ("(D) 10\n", "D"),
    ("D.", "D"),  # no newline: the period is stripped, " D " found
    ("The answer is D.", "D"),
    ("The correct option is (D).\n", "D"),
    # longer than 5 tokens, no letter found: the option texts decide, the last one mentioned wins
    ("The hypotenuse is sqrt(6^2 + 8^2) = 10, so the answer is D.\n", "D"),  # "10" is mentioned last
    ("AB = sqrt(6^2 + 8^2), so AB is option D.\n", "C"),  # "8" is mentioned last: official C, not D
]


@pytest.mark.parametrize("completion, official", WHITESPACE)
def test_judge_parses_plain_completions_unstripped(samples, completion, official):
    j = MMMU().judge(completion, samples["validation_Math_5"])
    expected = None if official == "guess" else official
    assert (j.extracted, j.score) == (expected, 1.0 if expected == "D" else 0.0)


def test_option_text_and_whitespace():  # (A) Claude Monet (B) Vincent van Gogh ...: official verdicts
    letters, options = ["A", "B", "C", "D"], ["Claude Monet", "Vincent van Gogh", "Paul Cézanne", "Edgar Degas"]
    index2ans = dict(zip(letters, options))
    assert parse_multi_choice_response("B\n", letters, index2ans) is None  # official: random guess
    assert parse_multi_choice_response("The answer is B.\n", letters, index2ans) is None  # official: guess
    assert parse_multi_choice_response("B. Vincent van Gogh\n", letters, index2ans) is None  # 4 tokens: guess
    assert parse_multi_choice_response("The painting is by Vincent van Gogh.\n", letters, index2ans) == "B"


R1_WHITESPACE = [  # R1 format (mmrft's deviation 1): the final answer is read with the tags' whitespace removed
    ("<think>6-8-10 triangle</think>\n<answer>\nD\n</answer>", "D", 1.0),
    ("<think>6-8-10 triangle</think>\nD\n", "D", 1.0),
    ("<think>6-8-10 triangle</think><answer> The answer is D.\n</answer>", "D", 1.0),
    ("<think>6-8-10 triangle</think>\n<answer>\n$\\boxed{D}$\n</answer>", "D", 1.0),
    ("The answer is \\boxed{ D }.\n", "D", 1.0),  # deviation 2: the stripped boxed content
]


@pytest.mark.parametrize("completion, extracted, score", R1_WHITESPACE)
def test_judge_r1_format_strips_around_the_tags(samples, completion, extracted, score):
    j = MMMU().judge(completion, samples["validation_Math_5"])
    assert (j.extracted, j.score) == (extracted, score)


def test_response_text_is_what_the_official_parser_reads():
    assert response_text("The answer is D.\n") == "The answer is D.\n"  # plain: unchanged
    assert response_text("  (C) ") == "  (C) "
    assert response_text("<think>x</think>\n<answer>\nB\n</answer>\n") == "B"
    assert response_text("<think>x</think>\nB\n") == "B"
    assert response_text("<think>unfinished reasoning, B") == ""
    assert response_text("so \\boxed{ B }\n") == "B"


ART = [  # (A) Claude Monet (B) Vincent van Gogh (C) Paul Cézanne (D) Edgar Degas, gold B
    ("This painting, The Starry Night, was painted by Vincent van Gogh in 1889.", "B", 1.0),
    ("Vincent van Gogh", None, 0.0),  # option text in a short response is not matched (official 5-token gate)
    ("A painting by Monet? No, the answer is B", "B", 1.0),
    ("It is clearly in the style of claude monet, with loose brushwork and light.", "A", 0.0),
    ("<answer>b</answer>", None, 0.0),  # letters are case-sensitive in the official parser
]


@pytest.mark.parametrize("completion, extracted, score", ART)
def test_judge_option_text(samples, completion, extracted, score):
    j = MMMU().judge(completion, samples["validation_Art_Theory_1"])
    assert (j.extracted, j.score) == (extracted, score)


OPEN = [  # gold "1.06"
    # the official open parser strips whitespace itself: surrounding whitespace never changes the verdict
    ("The factor of safety is 1.06.\n", "1.06", 1.0),
    ("\n1.06\n", "1.06", 1.0),
    ("The factor of safety is 1.06.", "1.06", 1.0),
    ("FS = 1.0625", "1.06", 1.0),  # rounded to 2 decimals, as the official normalize_str does
    ("<think>resisting / driving</think><answer>1.6</answer>", "1.6", 0.0),
    ("Therefore, the factor of safety is approximately 1.1", "1.1", 0.0),
    ("<answer>\\boxed{1.06}</answer>", "1.06", 1.0),
    ("Sliding force 240 kN; resisting force 254.4 kN.\nSo the factor of safety is 1.06", "1.06", 1.0),
    ("", None, 0.0),
]


@pytest.mark.parametrize("completion, extracted, score", OPEN)
def test_judge_open(samples, completion, extracted, score):
    j = MMMU().judge(completion, samples["validation_Architecture_and_Engineering_14"])
    assert (j.extracted, j.score) == (extracted, score)


def test_open_gold_list_literal_and_strings():
    s = Sample(id="validation_Pharmacy_9", prompt="q", answer="['24/7', '3.429']", task="mmmu",
               metadata={"question_type": "open"})
    assert MMMU().judge("The ratio is 3.429", s).score == 1.0
    assert MMMU().judge("The ratio is 3.43", s).score == 1.0  # official: both sides rounded to 2 decimals
    assert MMMU().judge("The ratio is 3.5", s).score == 0.0
    assert MMMU().judge("The pharmacy is open 24/7", s).score == 1.0  # string gold: substring of the key phrase
    word = Sample(id="validation_History_3", prompt="q", answer="Renaissance", task="mmmu",
                  metadata={"question_type": "open"})
    assert MMMU().judge("The period is the Renaissance.", word).score == 1.0
    assert MMMU().judge("Baroque", word).score == 0.0


def test_official_helpers_directly():
    assert parse_multi_choice_response(" (A) ", ["A", "B"], {"A": "x", "B": "y"}) == "A"
    assert parse_multi_choice_response("nothing here", ["A", "B"], {"A": "x", "B": "y"}) is None
    assert 3.0 in parse_open_response("x = 3")
    assert eval_open("3", [3.0]) and not eval_open("3", [4.0])


def test_judge_never_raises(samples):
    s = samples["validation_Math_5"]
    for bad in [None, 123, "\\boxed{", "(" * 10000]:
        j = MMMU().judge(bad, s)  # type: ignore[arg-type]
        assert j.score == 0.0


# ----------------------------------------------------------------------------- bad input
def _write(tmp_path: Path, subject: str, rows: list[dict], split: str = "validation") -> Path:
    (tmp_path / subject).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / subject / f"{split}-00000-of-00001.parquet")
    return tmp_path


ROW = {"id": "validation_Math_1", "question": "q <image 1>", "options": "['1', '2']", "explanation": "",
       "image_1": None, "img_type": "['Other']", "answer": "A", "topic_difficulty": "Easy",
       "question_type": "multiple-choice", "subfield": "Algebra"}


def test_missing_split_lists_files_found():
    with pytest.raises(DataError, match=r"no MMMU 'test' files.*Art_Theory/validation-00000-of-00001\.parquet"):
        MMMU().load(FIXTURE, "test")


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match="not found"):
        MMMU().load(tmp_path / "nope")


@pytest.mark.parametrize("change, message", [
    ({"options": "__import__('os').getcwd()"}, r"row 0: field 'options': not a Python list literal"),
    ({"options": "'just a string'"}, r"field 'options': expected a list literal"),
    ({"answer": "C"}, r"row 0: field 'answer': expected one of \['A', 'B'\], got 'C'"),
    ({"answer": None}, r"row 0: missing field 'answer'"),
    ({"options": "[]"}, r"a multiple-choice question needs options"),
])
def test_bad_rows(tmp_path, change, message):
    root = _write(tmp_path, "Math", [{**ROW, **change}])
    with pytest.raises(DataError, match=message) as e:
        MMMU().load(root)
    assert "Math/validation-00000-of-00001.parquet" in str(e.value)


def test_corrupt_parquet(tmp_path):
    (tmp_path / "Math").mkdir()
    (tmp_path / "Math" / "validation-00000-of-00001.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot read parquet file"):
        MMMU().load(tmp_path)

"""MMStar adapter: the released parquet, the prompt, and VLMEvalKit's rule-based option matching."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import BENCHMARKS
from mmrft.eval.benchmarks.mmstar import MMStar, can_infer, parse_inline_options

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "benchmarks" / "mmstar"


@pytest.fixture(scope="module")
def samples() -> dict[str, Sample]:
    return {s.id: s for s in MMStar().load(FIXTURE)}


def test_registered():
    assert BENCHMARKS.get("mmstar") is MMStar
    assert MMStar.default_split == "val"
    assert MMStar.categories == ("category", "l2_category")


def test_load_fields(samples):
    assert sorted(samples) == ["0", "1", "2", "3"]
    s = samples["3"]
    assert (s.task, s.answer) == ("mmstar", "B")
    assert s.metadata["categories"] == {"category": "math", "l2_category": "geometry"}
    assert s.metadata["options"] == {"A": "2", "B": "3", "C": "4", "D": "6"}
    assert s.metadata["meta_info"]["source"] == "MathVista"
    assert samples["2"].metadata["categories"] == {"category": "fine-grained perception",
                                                   "l2_category": "object counting"}
    (image,) = samples["0"].images
    assert image["bytes"].startswith(b"\xff\xd8")  # embedded JPEG, kept as a reference


def test_prompt(samples):
    assert samples["3"].prompt == (
        "As shown in the figure, in triangle ABC, D and E are the midpoints of AB and AC. If BC = 6, then DE = ?\n"
        "Options: A: 2, B: 3, C: 4, D: 6\n"
        "Answer with the option's letter from the given choices directly.")


def test_inline_options_keep_commas_and_periods(samples):
    assert samples["0"].metadata["options"]["D"] == "The suitcase is beneath the book."
    assert parse_inline_options("Q?\nOptions: A: 1, 2 or 3, B: none") == {"A": "1, 2 or 3", "B": "none"}
    assert parse_inline_options("Q?\nOptions:\nA: x\nB: y\nC: z") == {"A": "x", "B": "y", "C": "z"}
    assert parse_inline_options("no options here") == {}


GEOMETRY = [  # options A: 2, B: 3, C: 4, D: 6; gold B
    ("B", "B", 1.0),
    ("B. 3", "B", 1.0),
    ("(B)", "B", 1.0),
    ("The answer is B.", "B", 1.0),
    ("**B**", "B", 1.0),
    ("<think>DE = BC/2 = 3</think><answer>B</answer>", "B", 1.0),
    ("<think>DE is half of BC</think>\n\\boxed{B}", "B", 1.0),
    ("DE = 3", "B", 1.0),  # no letter: the option text '3' is the only one found (can_infer_text)
    ("C", "C", 0.0),
    ("A or B", None, 0.0),  # two letters: not inferable
    # chatty: D and B both appear as tokens, option texts '2' and '3' both appear -> no rule applies ('Z')
    ("Since D and E are midpoints, DE = BC/2 = 3, so the answer is B", None, 0.0),
    ("Cannot determine the answer", None, 0.0),  # refusal -> 'Z'
    ("Z", None, 0.0),
    ("b", None, 0.0),  # letters are case-sensitive
    ("", None, 0.0),
    ("<think>By the midpoint theorem DE is", None, 0.0),  # truncated inside <think>
]


@pytest.mark.parametrize("completion, extracted, score", GEOMETRY)
def test_judge(samples, completion, extracted, score):
    j = MMStar().judge(completion, samples["3"])
    assert (j.extracted, j.score) == (extracted, score)


SCENE = [  # A: A lake, B: A mountain, C: A city, D: A forest; gold B
    ("The background shows a mountain.", "B", 1.0),  # option text
    ("A mountain", "A", 0.0),  # VLMEvalKit quirk: the article 'A' is read as option A
    ("mountain", None, 0.0),  # the option text is 'a mountain'
    # tokens 'B' and 'A' are two letters (can_infer_option fails), then the text 'a mountain' decides
    ("<answer>B: A mountain</answer>", "B", 1.0),
    ("<answer>A: A lake or B: A mountain</answer>", None, 0.0),
]


@pytest.mark.parametrize("completion, extracted, score", SCENE)
def test_judge_option_text_and_article(samples, completion, extracted, score):
    j = MMStar().judge(completion, samples["1"])
    assert (j.extracted, j.score) == (extracted, score)


def test_can_infer_directly():
    choices = {"A": "cat", "B": "dog"}
    assert can_infer("I think B", choices) == "B"
    assert can_infer("It is a dog", choices) == "B"
    assert can_infer("a cat and a dog", choices) is False


def test_judge_never_raises(samples):
    for bad in [None, 3.5, "{" * 5000]:
        assert MMStar().judge(bad, samples["3"]).score == 0.0  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- bad input
ROW = {"index": 7, "question": "Q?\nOptions: A: x, B: y", "image": {"bytes": b"\xff\xd8fake", "path": None},
       "answer": "A", "category": "math", "l2_category": "geometry",
       "meta_info": {"source": "s", "split": "val", "image_path": "images/7.jpg"}}


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "mmstar.parquet")
    return tmp_path


def test_missing_file_lists_directory(tmp_path):
    (tmp_path / "MMStar.tsv").write_text("index\tquestion\n")
    with pytest.raises(DataError, match=r"mmstar\.parquet.*MMStar\.tsv"):
        MMStar().load(tmp_path)


def test_unknown_split():
    with pytest.raises(DataError, match="single split 'val'"):
        MMStar().load(FIXTURE, "test")


@pytest.mark.parametrize("change, message", [
    ({"answer": "C"}, r"row 0: field 'answer': expected one of \['A', 'B'\], got 'C'"),
    ({"category": None}, r"row 0: missing field 'category'"),
    ({"image": {"bytes": None, "path": None}}, r"row 0: field 'image'"),
])
def test_bad_rows(tmp_path, change, message):
    root = _write(tmp_path, [{**ROW, **change}])
    with pytest.raises(DataError, match=message) as e:
        MMStar().load(root)
    assert "mmstar.parquet" in str(e.value)


def test_corrupt_parquet(tmp_path):
    (tmp_path / "mmstar.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(DataError, match="cannot read parquet file"):
        MMStar().load(tmp_path)

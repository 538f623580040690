"""HR-Bench 4K / 8K adapter: the released TSV / parquet, VLMEvalKit's prompt, can_infer scoring, and the official
cycle-averaged aggregate."""

from __future__ import annotations

import base64
import csv
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmrft.data.schema import Sample
from mmrft.errors import DataError
from mmrft.eval.benchmarks.base import BENCHMARKS
from mmrft.eval.benchmarks.hrbench import HRBench, HRBench4K, HRBench8K, build_prompt, hrbench_report

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "benchmarks"
FIXTURE, FIXTURE_8K = FIXTURES / "hrbench4k", FIXTURES / "hrbench8k"
COLUMNS = ["index", "question", "A", "B", "C", "D", "answer", "category", "cycle_category", "image"]


@pytest.fixture(scope="module")
def samples() -> dict[str, Sample]:
    return {s.id: s for s in HRBench4K().load(FIXTURE)}


def test_registered():
    assert BENCHMARKS.get("hrbench4k") is HRBench4K
    assert BENCHMARKS.get("hrbench8k") is HRBench8K
    assert HRBench4K.default_split == "hrbench_4k" and HRBench8K.default_split == "hrbench_8k"
    assert HRBench4K.categories == ("category", "cycle_category")


def test_load_fields(samples):
    assert list(samples) == ["0", "1", "200", "201", "400", "401", "600", "601"]
    s = samples["0"]
    assert (s.task, s.answer) == ("hrbench4k", "C")
    assert s.metadata["options"] == {"A": "7", "B": "11", "C": "23", "D": "31"}
    assert s.metadata["categories"] == {"category": "FSP", "cycle_category": "cycle_1"}
    assert s.metadata["hrbench_category"] == "single"
    # the second cycle of the same question: options shifted by one, the answer letter with them
    assert samples["200"].metadata["options"] == {"A": "11", "B": "23", "C": "31", "D": "7"}
    assert samples["200"].answer == "B"
    assert samples["200"].metadata["categories"] == {"category": "FSP", "cycle_category": "cycle_2"}
    assert samples["601"].metadata["categories"] == {"category": "FCP", "cycle_category": "cycle_4"}
    assert samples["601"].metadata["hrbench_category"] == "cross"
    assert samples["601"].answer == "B"
    (image,) = s.images
    assert image["bytes"].startswith(b"\xff\xd8") and image["path"] is None  # decoded base64 JPEG, still bytes
    assert samples["200"].images[0]["bytes"] is image["bytes"]  # one copy per distinct image


def test_8k_reads_its_own_file():
    s8 = {s.id: s for s in HRBench8K().load(FIXTURE_8K)}
    assert s8["0"].task == "hrbench8k" and s8["0"].answer == "C"
    assert s8["1"].images[0]["bytes"] != HRBench4K().load(FIXTURE)[1].images[0]["bytes"]


def test_tsv_and_parquet_give_the_same_samples(tmp_path, samples):
    shutil.copy(FIXTURE / "hr_bench_4k.tsv", tmp_path)  # no parquet here: the TSV is read
    from_tsv = HRBench4K().load(tmp_path)
    assert [s.id for s in from_tsv] == list(samples)
    for s in from_tsv:
        p = samples[s.id]
        assert (s.prompt, s.answer, s.metadata, s.images) == (p.prompt, p.answer, p.metadata, p.images)
        assert s.source.startswith(str(tmp_path / "hr_bench_4k.tsv"))


def test_prompt(samples):
    assert samples["0"].prompt == (
        "Question: What is the number on the jersey of the player holding the ball?\n"
        "Options:\nA. 7\nB. 11\nC. 23\nD. 31\n"
        "Please select the correct answer from the options above. \n")
    assert samples["401"].prompt == (
        "Question: Which building is closer to the river, the church or the clock tower?\n"
        "Options:\nA. They are equally close\nB. Neither is near the river\nC. The church\nD. The clock tower\n"
        "Please select the correct answer from the options above. \n")
    assert build_prompt("Q?", {"A": "x", "C": "z"}, hint="look left") == (
        "Hint: look left\nQuestion: Q?\nOptions:\nA. x\nC. z\nPlease select the correct answer from the options "
        "above. \n")


JERSEY = [  # sample 0: A 7, B 11, C 23, D 31; gold C
    ("C", "C", 1.0),
    ("C. 23", "C", 1.0),
    ("(C)", "C", 1.0),
    ("The answer is C.", "C", 1.0),
    ("Option C: 23", "C", 1.0),
    ("<think>The jersey shows 23.</think><answer>C</answer>", "C", 1.0),
    ("23", "C", 1.0),  # the option text
    ("The number is 23.", "C", 1.0),
    ("Looking closely, the player wears number 23, so the answer is C", "C", 1.0),
    ("D. 31", "D", 0.0),
    ("A", "A", 0.0),
    ("7", "A", 0.0),
    ("The number is 231.", None, 0.0),  # contains the option texts '23' and '31'
    ("c", None, 0.0),  # lower case: no letter (VLMEvalKit)
    ("B or C", None, 0.0),
    ("I'm sorry, but without the image provided I cannot say.", None, 0.0),  # refusal -> 'Z'
    ("", None, 0.0),
    ("<think>the digits are blurry, maybe 2", None, 0.0),
]


@pytest.mark.parametrize("completion, extracted, score", JERSEY)
def test_judge_fsp(samples, completion, extracted, score):
    j = HRBench4K().judge(completion, samples["0"])
    assert (j.extracted, j.score) == (extracted, score)


def test_judge_reads_each_rows_own_options(samples):
    # cycle 2 of the same question: '23' is now option B, the gold
    assert HRBench4K().judge("23", samples["200"]).extracted == "B"
    assert HRBench4K().judge("23", samples["200"]).score == 1.0
    assert HRBench4K().judge("C", samples["200"]).score == 0.0


RIVER = [  # sample 1: A The church, B The clock tower, C They are equally close, D Neither...; gold A
    ("A", "A", 1.0),
    ("The church", "A", 1.0),
    ("The church is closer than the clock tower.", None, 0.0),  # both option texts appear
    ("They are equally close.", "C", 0.0),
]


@pytest.mark.parametrize("completion, extracted, score", RIVER)
def test_judge_fcp(samples, completion, extracted, score):
    j = HRBench4K().judge(completion, samples["1"])
    assert (j.extracted, j.score) == (extracted, score)


def test_judge_never_raises(samples):
    for bad in [None, 3.5, "{" * 5000, "<answer>"]:
        assert HRBench4K().judge(bad, samples["0"]).score == 0.0  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- the official aggregate
def _row(cycle: str, category: str, score: float) -> dict:
    return {"id": "x", "score": score, "categories": {"category": category, "cycle_category": cycle}}


def test_report_averages_the_cycles():
    rows = [_row("c1", "FSP", 1), _row("c1", "FSP", 0), _row("c1", "FCP", 1),
            _row("c2", "FSP", 1), _row("c2", "FCP", 0), _row("c2", "FCP", 0), _row("c2", "FCP", 1)]
    report = hrbench_report(rows)
    assert report["cycles"]["c1"] == pytest.approx({"all": 2 / 3, "FSP": 1 / 2, "FCP": 1.0})
    assert report["cycles"]["c2"] == pytest.approx({"all": 2 / 4, "FSP": 1.0, "FCP": 1 / 3})
    # (2/3 + 1/2) / 2, not the plain mean 4/7 over the rows
    assert report["average"] == pytest.approx({"all": 7 / 12, "FSP": 3 / 4, "FCP": 2 / 3})
    assert list(report["cycles"]) == ["c1", "c2"]


def test_report_divides_by_all_cycles_even_when_a_category_is_absent():
    rows = [_row("c1", "FSP", 1), _row("c1", "FCP", 1), _row("c2", "FSP", 0), _row("c2", "FCP", 1),
            _row("c3", "FSP", 1)]  # c3 has no FCP row
    report = hrbench_report(rows)
    assert report["average"]["FCP"] == pytest.approx((1 + 1) / 3)  # the official loop's quirk: / 3 cycles
    assert report["average"]["FSP"] == pytest.approx((1 + 0 + 1) / 3)
    assert report["average"]["all"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert hrbench_report([]) == {"cycles": {}, "average": {}}


def test_always_answering_c_on_the_fixture(samples):
    """Cyclic orders expose position bias: 'C' is right once per question over its four orders."""
    bench = HRBench4K()
    rows = [{"id": s.id, "score": bench.judge("C", s).score, "categories": s.metadata["categories"]}
            for s in samples.values()]
    report = HRBench.aggregate(rows)
    assert report["cycles"] == {"cycle_1": {"all": 0.5, "FCP": 0.0, "FSP": 1.0},
                                "cycle_2": {"all": 0.0, "FCP": 0.0, "FSP": 0.0},
                                "cycle_3": {"all": 0.5, "FCP": 1.0, "FSP": 0.0},
                                "cycle_4": {"all": 0.0, "FCP": 0.0, "FSP": 0.0}}
    assert report["average"] == {"all": 0.25, "FCP": 0.25, "FSP": 0.25}
    assert sum(r["score"] for r in rows) / len(rows) == 0.25  # balanced cycles: the plain mean agrees


# ----------------------------------------------------------------------------- bad input
FAKE_JPEG = b"\xff\xd8\xff\xe0" + bytes(60) + b"\xff\xd9"  # bytes only: images are decoded by the runner
JPEG_B64 = base64.b64encode(FAKE_JPEG).decode()  # 88 characters
ROW = {"index": 5, "question": "Q?", "A": "x", "B": "y", "C": "z", "D": "w", "answer": "B", "category": "single",
       "cycle_category": "cycle_1", "image": JPEG_B64}  # longer than 64 characters: an image, not a reference


def _tsv(tmp_path: Path, rows: list[dict], columns: list[str] = COLUMNS) -> Path:
    with open(tmp_path / "hr_bench_4k.tsv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r[c] for c in columns])
    return tmp_path


def test_missing_files_list_directory(tmp_path):
    (tmp_path / "hr_bench_8k.tsv").write_text("index\n")
    with pytest.raises(DataError, match=r"neither hr_bench_4k\.parquet nor hr_bench_4k\.tsv.*hr_bench_8k\.tsv"):
        HRBench4K().load(tmp_path)


def test_unknown_split():
    with pytest.raises(DataError, match="single split 'hrbench_8k'"):
        HRBench8K().load(FIXTURE_8K, "test")


def test_missing_column_tsv_and_parquet(tmp_path):
    cols = [c for c in COLUMNS if c != "cycle_category"]
    _tsv(tmp_path, [ROW], cols)
    with pytest.raises(DataError, match=r"hr_bench_4k\.tsv: missing column \['cycle_category'\]"):
        HRBench4K().load(tmp_path)
    pq.write_table(pa.Table.from_pylist([{c: ROW[c] for c in cols}]), tmp_path / "hr_bench_4k.parquet")
    with pytest.raises(DataError, match=r"hr_bench_4k\.parquet: missing column \['cycle_category'\]"):
        HRBench4K().load(tmp_path)


@pytest.mark.parametrize("change, message", [
    ({"answer": "E"}, r"row 1: field 'answer': expected one of \['A', 'B', 'C', 'D'\], got 'E'"),
    ({"category": None}, r"row 1: missing field 'category'"),
    ({"C": None, "D": None, "answer": "A", "B": None}, r"row 1: expected at least two options"),
    ({"image": "!!not base64!!" * 10}, r"row 1: field 'image': not valid base64"),
    ({"image": "99"}, r"row 1: field 'image': '99' is neither a base64 image nor the index of a row"),
    ({"index": 5}, r"row 1: duplicate index '5' \(first at row 0\)"),
])
def test_bad_rows_tsv(tmp_path, change, message):
    _tsv(tmp_path, [ROW, {**ROW, "index": 6, **change}])
    with pytest.raises(DataError, match=message) as e:
        HRBench4K().load(tmp_path)
    assert "hr_bench_4k.tsv" in str(e.value)


def test_bad_row_parquet(tmp_path):
    pq.write_table(pa.Table.from_pylist([ROW, {**ROW, "index": 6, "answer": "Z"}]), tmp_path / "hr_bench_4k.parquet")
    with pytest.raises(DataError, match=r"hr_bench_4k\.parquet:row 1: field 'answer'"):
        HRBench4K().load(tmp_path)


def test_ragged_tsv_row(tmp_path):
    _tsv(tmp_path, [ROW])
    with open(tmp_path / "hr_bench_4k.tsv", "a", encoding="utf-8") as f:
        f.write("6\tQ?\tx\n")
    with pytest.raises(DataError, match=r"hr_bench_4k\.tsv:row 1 \(line 3\): 3 fields, the header has 10"):
        HRBench4K().load(tmp_path)


def test_corrupt_parquet(tmp_path):
    (tmp_path / "hr_bench_4k.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(DataError, match=r"hr_bench_4k\.parquet: cannot read parquet file"):
        HRBench4K().load(tmp_path)


def test_image_field_naming_another_index(tmp_path):
    """VLMEvalKit's TSV convention: a short image field is the index of the row holding the image."""
    _tsv(tmp_path, [{**ROW, "index": 6, "image": "5"}, ROW])  # the reference may come first
    first, second = HRBench4K().load(tmp_path)
    assert first.id == "6" and first.images[0]["bytes"] is second.images[0]["bytes"]
    assert second.images[0]["bytes"] == FAKE_JPEG

"""Per-item records of held-out evaluations (`mmrft.eval.records`): where a run writes them, reading them back with
errors that name the file and line, and gains paired by item (one run, or pooled over runs), hand-computed."""

import json

import pytest

from mmrft.errors import MmrftError
from mmrft.eval.records import (gain_line, paired_gain, pooled_gain, read_records, records_path,
                                write_records)


def recs(correct: dict[str, bool]) -> list[dict]:
    return [{"id": i, "task": "count", "correct": c} for i, c in correct.items()]


def test_records_path_follows_the_metric_names(tmp_path):
    # data.eval: PATH -> one split named "eval", its records straight under RUN/eval/held_out
    assert records_path(tmp_path, 0, "eval", {"eval": "d"}) == tmp_path / "eval" / "held_out" / "step_0.jsonl"
    splits = {"id": "a", "ood": "b"}
    assert records_path(tmp_path, 25, "ood", splits) == tmp_path / "eval" / "held_out" / "ood" / "step_25.jsonl"


def test_write_then_read_gives_the_records_back(tmp_path):
    rows = [{"id": "a", "correct": True, "completion": "<answer>3</answer>", "trajectory": {"calls": []}},
            {"id": 7, "correct": False, "completion": "ünïcode"}]
    path = write_records(tmp_path / "deep" / "step_0.jsonl", rows)
    assert read_records(path) == rows
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.mark.parametrize("text,match", [
    ('{"id": "a", "correct": true}\n{"id": "b", "correct": \n', r"step_3\.jsonl:2: not JSON"),
    ('{"id": "a", "correct": true}\n\n{"id": "b"}\n', r"step_3\.jsonl:3: expected an object with keys id, correct"),
    ('[1, 2]\n', r"step_3\.jsonl:1: expected an object"),
    ('{"id": "a", "correct": true}\n{"id": "a", "correct": false}\n', r"step_3\.jsonl:2: id 'a' appears twice"),
])
def test_bad_records_name_the_file_and_line(tmp_path, text, match):
    path = tmp_path / "step_3.jsonl"
    path.write_text(text)
    with pytest.raises(MmrftError, match=match):
        read_records(path)


def test_a_missing_records_file_says_what_writes_it(tmp_path):
    with pytest.raises(MmrftError, match=r"no such records file .*eval/held_out/step_<N>\.jsonl"):
        read_records(tmp_path / "step_9.jsonl")


def test_gain_pairs_items_by_id_not_by_position():
    # the same answers in another order: no gain and no spread (a by-position pairing would give d = -1, +1)
    g = paired_gain(recs({"x": True, "y": False}), recs({"y": False, "x": True}))
    assert (g["points"], g["low"], g["high"], g["p_value"], g["n"]) == (0.0, 0.0, 0.0, 1.0, 2)


def test_gain_every_item_gained():
    # d = 1 on every item: +100 points, every resample +100, p = 1 / (R + 1) with R = 10000
    g = paired_gain(recs({"a": False, "b": False, "c": False}), recs({"a": True, "b": True, "c": True}))
    assert (g["points"], g["low"], g["high"]) == (100.0, 100.0, 100.0)
    assert g["p_value"] == pytest.approx(1 / 10001)


def test_gain_interval_brackets_the_mean():
    # d = +1, +1, 0, -1 over four items: delta = 1/4; resample means lie in [-1, 1] on a grid of 1/4
    g = paired_gain(recs({"a": False, "b": False, "c": True, "d": True}),
                    recs({"a": True, "b": True, "c": True, "d": False}))
    assert g["points"] == 25.0
    assert -100.0 <= g["low"] < 25.0 < g["high"] <= 100.0
    assert 0.0 < g["p_value"] <= 1.0


def test_gain_refuses_different_items():
    with pytest.raises(ValueError, match="different items"):
        paired_gain(recs({"a": True}), recs({"b": True}))


def test_pooled_gain_averages_each_item_over_runs():
    # run 0: d = (+1, 0); run 1: d = (+1, -1); per item mean d = (+1, -0.5): gain 25 points
    run0 = (recs({"p": False, "q": True}), recs({"p": True, "q": True}))
    run1 = (recs({"p": False, "q": True}), recs({"p": True, "q": False}))
    g = pooled_gain([run0, run1])
    assert g["points"] == pytest.approx(25.0) and g["runs"] == 2 and g["n"] == 2
    # resamples of two items: both p (+100), both q (-50) or one of each (+25)
    assert g["low"] == pytest.approx(-50.0) and g["high"] == pytest.approx(100.0)
    # a constant per-item mean gain has no spread: runs +1 and 0 on every item -> +50 everywhere
    g = pooled_gain([(recs({"p": False, "q": False}), recs({"p": True, "q": True})),
                     (recs({"p": True, "q": False}), recs({"p": True, "q": False}))])
    assert (g["points"], g["low"], g["high"]) == (50.0, 50.0, 50.0)


def test_pooled_gain_of_one_run_is_the_paired_gain():
    a, b = recs({"a": False, "b": True, "c": False}), recs({"a": True, "b": True, "c": False})
    pooled = pooled_gain([(a, b)])
    assert {k: v for k, v in pooled.items() if k != "runs"} == paired_gain(a, b)


def test_pooled_gain_needs_the_same_items_in_every_run():
    with pytest.raises(ValueError, match="run 1 scored other items"):
        pooled_gain([(recs({"a": True}), recs({"a": False})), (recs({"b": True}), recs({"b": True}))])
    with pytest.raises(ValueError, match="no runs"):
        pooled_gain([])


def test_gain_line():
    g = {"points": 9.0, "low": 1.0, "high": 17.0, "n": 200}
    assert gain_line("SFT+GRPO - SFT", g) == \
        "SFT+GRPO - SFT: +9.0 points (95 % paired bootstrap interval +1.0 to +17.0, 200 items)"
    assert gain_line("(c) - (b)", {**g, "points": -2.5, "low": -8.0, "runs": 3}) == \
        "(c) - (b): -2.5 points (95 % paired bootstrap interval -8.0 to +17.0, 200 items x 3 runs)"


def test_records_are_json_lines(tmp_path):
    path = write_records(tmp_path / "r.jsonl", recs({"a": True, "b": False}))
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ["a", "b"]


def test_eval_compare_reads_two_held_out_evaluations(tmp_path, capsys):
    from mmrft.cli import main

    run = tmp_path / "run" / "eval" / "held_out"
    # count: 1 of 2 right, then 2 of 2 (+50 points); ocr: 1 of 1, then 0 of 1 (-100); overall 2/3 -> 2/3 (0)
    write_records(run / "step_0.jsonl", [{"id": "a", "task": "count", "correct": True},
                                         {"id": "b", "task": "count", "correct": False},
                                         {"id": "c", "task": "ocr", "correct": True}])
    write_records(run / "step_300.jsonl", [{"id": "c", "task": "ocr", "correct": False},
                                           {"id": "b", "task": "count", "correct": True},
                                           {"id": "a", "task": "count", "correct": True}])
    assert main(["eval", "compare", str(run / "step_0.jsonl"), str(run / "step_300.jsonl"),
                 "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "held-out data" in out and "3 paired samples" in out
    assert "| overall | 3 | 66.67 | 66.67 | +0.00 |" in out
    assert "| task: count | 2 | 50.00 | 100.00 | +50.00 |" in out
    assert "| task: ocr | 1 | 100.00 | 0.00 | -100.00 |" in out

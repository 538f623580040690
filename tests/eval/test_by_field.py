"""`mmrft eval --by FIELD`: accuracy broken down by a sample field (task, a category, a metadata field), samples
without it under (none), in results.json, results.md and the printed table."""

import json

from mmrft.cli import main
from mmrft.data.schema import Sample
from mmrft.eval.results import (accuracy_by_field, by_field_markdown, field_value, markdown, summarize,
                                with_fields)


def _sample(i, task="count", **metadata):
    return Sample(id=str(i), prompt="q", answer="1", task=task, metadata=metadata)


def test_field_value_reads_task_categories_then_metadata():
    s = _sample(0, task="zoom", difficulty=2, categories={"domain": "charts", "difficulty": "hard"})
    assert field_value(s, "task") == "zoom"
    assert field_value(s, "domain") == "charts"
    assert field_value(s, "difficulty") == "hard"  # a benchmark category wins over the raw metadata field
    assert field_value(_sample(1, difficulty=1), "difficulty") == 1
    assert field_value(_sample(2), "difficulty") is None


def test_by_difficulty_groups_a_hand_built_table():
    # difficulty 0: 3 samples, 2 correct; difficulty 1: 2 samples, 0 correct (one of 2 completions right on one:
    # 0.5); no difficulty: 1 sample, correct; one skipped sample is not counted
    samples = [_sample(0, difficulty=0), _sample(1, difficulty=0), _sample(2, difficulty=0),
               _sample(3, difficulty=1), _sample(4, difficulty=1), _sample(5), _sample(6, difficulty=1)]
    scores = [[1.0], [1.0], [0.0], [0.0], [0.5], [1.0]]
    records = [{"id": str(i), "categories": {"task": "count"}, "scores": sc, "extracted": ["1"] * len(sc)}
               for i, sc in enumerate(scores)]
    records.append({"id": "6", "categories": {"task": "count"}, "skipped": "image not found"})
    records = with_fields(records, samples, ("difficulty", "task"))
    assert records[0]["fields"] == {"difficulty": 0, "task": "count"} and records[5]["fields"]["difficulty"] is None
    table = accuracy_by_field(records, ("difficulty", "task"))
    assert list(table) == ["difficulty", "task"]
    assert table["difficulty"] == {"(none)": {"n": 1, "accuracy": 1.0}, "0": {"n": 3, "accuracy": 2 / 3},
                                   "1": {"n": 2, "accuracy": 0.25}}
    assert table["task"] == {"count": {"n": 6, "accuracy": 3.5 / 6}}
    meta = {"benchmark": "synthetic", "model": "m", "samples": 1, "temperature": 0.0}
    summary = summarize(records, meta, ("task",), ("difficulty",))
    assert summary["by_field"] == {"difficulty": table["difficulty"]}
    md = by_field_markdown(summary)
    assert "## by difficulty (--by)" in md
    assert "| 0 | 3 | 66.67 |" in md and "| 1 | 2 | 25.00 |" in md and "| (none) | 1 | 100.00 |" in md
    assert md in markdown(summary)
    assert "by_field" not in summarize(records, meta, ("task",))  # without --by: as before


def test_cli_eval_by_difficulty(tmp_path, tiny_model_dir, capsys):
    from mmrft.data.synthetic import write_dataset

    data = tmp_path / "data"
    rows = []
    for d, n in ((0, 3), (1, 2)):
        path = write_dataset("count", n, tmp_path / f"d{d}", seed=7 + d, difficulty=d)
        for line in path.read_text().splitlines():
            row = json.loads(line)
            row["images"] = [str(path.parent / p) for p in row["images"]]
            rows.append(row)
    data.mkdir()
    (data / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["eval", "--model", str(tiny_model_dir), "--benchmark", "synthetic", "--data", str(data),
                 "--max-new-tokens", "2", "--no-progress", "--by", "difficulty", "--by", "task",
                 "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "## by difficulty (--by)" in out and "| count | 5 |" in out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["meta"]["by"] == ["difficulty", "task"]
    assert {k: v["n"] for k, v in results["by_field"]["difficulty"].items()} == {"0": 3, "1": 2}
    assert "## by difficulty (--by)" in (tmp_path / "run" / "results.md").read_text()

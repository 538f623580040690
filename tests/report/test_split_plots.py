"""`mmrft report` with several held-out splits: a held-out accuracy line per split, each split's first and last
accuracy in the summary; a single-split run keeps its one line and its metric names."""

import json

from mmrft.report.plots import accuracy_series, draw_reward_accuracy, eval_split_names, plt
from mmrft.report.summary import HELD_OUT, draw_report, markdown_summary, write_report


def _write_run(run, evals):
    run.mkdir(parents=True)
    rows = [{"step": s, "phase": "train", "reward/mean": 0.1 * s, "accuracy": 0.1 * s} for s in (1, 2, 3, 4)]
    rows += [{"step": s, "phase": "eval", **m} for s, m in evals]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


SPLITS = [(0, {"eval/id/accuracy": 0.2, "eval/id/reward": 0.2, "eval/id/count/accuracy": 0.2,
               "eval/ood/accuracy": 0.1, "eval/ood/reward": 0.1, "eval/ood/count/accuracy": 0.1}),
          (2, {"eval/id/accuracy": 0.5, "eval/ood/accuracy": 0.15}),
          (4, {"eval/id/accuracy": 0.8, "eval/id/reward": 0.8, "eval/id/count/accuracy": 0.8,
               "eval/ood/accuracy": 0.25, "eval/ood/reward": 0.25, "eval/ood/count/accuracy": 0.25})]
SINGLE = [(0, {"eval/accuracy": 0.3, "eval/count/accuracy": 0.3}), (4, {"eval/accuracy": 0.6,
                                                                         "eval/count/accuracy": 0.6})]


def _held_out_axes(fig):
    return next(ax for ax in fig.axes if ax.get_title() == HELD_OUT)


def _lines(ax):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}


def test_one_line_per_split(tmp_path):
    run = _write_run(tmp_path / "splits", SPLITS)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert eval_split_names(rows) == ["id", "ood"]  # eval/<split>/<task>/accuracy is not a split
    fig = draw_report([run])
    try:
        assert _lines(_held_out_axes(fig)) == {"id": ([0, 2, 4], [0.2, 0.5, 0.8]),
                                               "ood": ([0, 2, 4], [0.1, 0.15, 0.25])}
    finally:
        plt.close(fig)
    fig = draw_reward_accuracy(rows, "splits")  # the plot `mmrft train` writes
    try:
        labels = [line.get_label() for line in fig.axes[0].get_lines()]
        assert "held-out accuracy: id (greedy)" in labels and "held-out accuracy: ood (greedy)" in labels
    finally:
        plt.close(fig)
    md = markdown_summary([run])
    assert "| eval/id/accuracy | 0.2 | 0.8 |" in md and "| eval/ood/accuracy | 0.1 | 0.25 |" in md
    assert "| id | 0.2 | 0.8 | +0.6 |" in md and "| ood | 0.1 | 0.25 | +0.15 |" in md
    png, md_path = write_report([run])
    assert png.is_file() and md_path.read_text() == markdown_summary([run], png)


def test_several_runs_each_with_splits(tmp_path):
    a, b = _write_run(tmp_path / "a", SPLITS), _write_run(tmp_path / "b", SINGLE)
    fig = draw_report([a, b])
    try:
        lines = _held_out_axes(fig).get_lines()
        assert [ln.get_label() for ln in lines] == ["a: id", "a: ood", "b: held-out accuracy"]
        assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()  # a run's colour
        assert lines[0].get_linestyle() != lines[1].get_linestyle()  # a split's line style
    finally:
        plt.close(fig)


def test_single_split_run_unchanged(tmp_path):
    run = _write_run(tmp_path / "single", SINGLE)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert eval_split_names(rows) == []
    assert accuracy_series(rows) == [("", [0, 4], [0.3, 0.6])]
    fig = draw_report([run])
    try:
        assert _lines(_held_out_axes(fig)) == {"held-out accuracy": ([0, 4], [0.3, 0.6])}
    finally:
        plt.close(fig)
    md = markdown_summary([run])
    assert "| eval/accuracy | 0.3 | 0.6 |" in md and "by split" not in md

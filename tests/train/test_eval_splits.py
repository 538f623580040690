"""Several named held-out splits (`data.eval: {name: path}`): the config accepts a path or a mapping and names
`data.eval` in its errors; an RL run logs each split under eval/<split>/ before and after, records each split, and
writes each split's answers item by item."""

import json

import pytest

from mmrft.config import Config, DataConfig, eval_split_prefix, eval_splits, load_config
from mmrft.errors import ConfigError
from mmrft.eval.records import read_records, write_records


def test_a_path_is_the_one_split_named_eval():
    cfg = load_config(None, ["data.eval=data/count-test"])
    assert cfg.data.eval == "data/count-test"
    assert eval_splits(cfg) == {"eval": "data/count-test"}
    assert eval_split_prefix("eval", eval_splits(cfg)) == "eval"  # single-split metric names unchanged
    assert eval_splits(load_config(None, [])) == {}


def test_a_mapping_names_each_split(tmp_path):
    cfg = load_config(None, ["data.eval={id: data/count-test, ood_shapes: data/shapes-test}"])
    splits = eval_splits(cfg)
    assert splits == {"id": "data/count-test", "ood_shapes": "data/shapes-test"}
    assert list(splits) == ["id", "ood_shapes"]
    assert [eval_split_prefix(n, splits) for n in splits] == ["eval/id", "eval/ood_shapes"]
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  eval:\n    id: a/test\n    ood: b/test\n")
    assert eval_splits(load_config(path)) == {"id": "a/test", "ood": "b/test"}


@pytest.mark.parametrize("override,match", [
    ("data.eval=[a, b]", r"data\.eval: expected a path or a mapping of split name -> path"),
    ("data.eval={}", r"data\.eval: an empty mapping"),
    ("data.eval={'bad name': a}", r"data\.eval: split name 'bad name' is not a simple identifier"),
    ("data.eval={'1st': a}", r"data\.eval: split name '1st' is not a simple identifier"),
    ("data.eval={id: [a, b]}", r"data\.eval\.id: expected a path"),
])
def test_bad_values_name_the_field(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


def test_a_config_built_in_code_is_checked_where_it_is_read():
    with pytest.raises(ConfigError, match="data.eval"):
        eval_splits(Config(data=DataConfig(eval=True)))


def test_rl_run_logs_each_split_before_and_after(tmp_path, tiny_model_dir, count_data):
    from mmrft.data.synthetic import write_dataset
    from mmrft.report.table import comparison_table
    from mmrft.train.rl import train_rl

    easy = write_dataset("count", 3, tmp_path / "easy", seed=5, difficulty=0)
    hard = write_dataset("count", 2, tmp_path / "hard", seed=6, difficulty=1)
    run = tmp_path / "run"
    cfg = load_config(None, [
        f"model.path={tiny_model_dir}", f"data.train={count_data['train']}",
        f"data.eval={{id: '{easy}', ood: '{hard}'}}", "data.eval_limit=2",
        f"trainer.output_dir={run}", "trainer.steps=1", "trainer.progress=false", "tracking.tensorboard=false",
        "rollout.group_size=2", "rollout.prompts_per_step=1", "rollout.max_new_tokens=4",
    ])
    res = train_rl(cfg)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["phase"] == "eval"]
    assert [r["step"] for r in evals] == [0, 1]
    for r in evals:
        for split in ("id", "ood"):
            for key in ("accuracy", "reward", "count/accuracy", "count/reward"):
                assert r[f"eval/{split}/{key}"] is not None, (split, key)
        assert "eval/accuracy" not in r and "eval/count/accuracy" not in r
    # each split's results, data.eval_limit applied per split (3 -> 2 and 2 -> 2 samples)
    assert set(res["eval_splits"]) == {"id", "ood"}
    for split in ("id", "ood"):
        assert res["eval_splits"][split]["before"]["count"]["n"] == 2
        assert res["eval_splits"][split]["after"]["count"]["n"] == 2
    assert set(res["eval_before"]) == set(res["eval_after"]) == {"id/count", "ood/count"}
    # each split's answers at each evaluation, item by item, under RUN/eval/held_out/<split>/
    for split in ("id", "ood"):
        for r in evals:
            records = read_records(run / "eval" / "held_out" / split / f"step_{r['step']}.jsonl")
            assert len(records) == 2 and {"completion", "answer", "reward", "task"} <= set(records[0])
            assert sum(x["correct"] for x in records) / 2 == pytest.approx(r[f"eval/{split}/accuracy"])
    assert sorted(p.name for p in (run / "eval" / "held_out").iterdir()) == ["id", "ood"]
    assert "ood/count" in comparison_table(res["eval_before"], res["eval_after"])


def test_a_resumed_run_reads_each_splits_start_back(tmp_path):
    from mmrft.data.schema import Sample
    from mmrft.eval.runner import results_from_metrics

    rows = [{"step": 0, "phase": "eval", "eval/id/count/accuracy": 0.5, "eval/id/count/reward": 0.4,
             "eval/ood/count/accuracy": 0.25, "eval/ood/count/reward": 0.2}]
    s = Sample(id="a", prompt="q", answer="1", task="count")
    splits = {"id": "x", "ood": "y"}
    got = results_from_metrics(rows, {"id": [s, s], "ood": [s]}, splits)
    assert {k: v.per_task for k, v in got.items()} == {
        "id": {"count": {"accuracy": 0.5, "reward": 0.4, "n": 2}},
        "ood": {"count": {"accuracy": 0.25, "reward": 0.2, "n": 1}}}
    # a single-split run: eval/<task>/... as before
    rows = [{"step": 0, "phase": "eval", "eval/count/accuracy": 0.75, "eval/count/reward": 0.5}]
    got = results_from_metrics(rows, {"eval": [s]}, {"eval": "x"})
    assert got["eval"].per_task == {"count": {"accuracy": 0.75, "reward": 0.5, "n": 1}}
    assert results_from_metrics([], {"eval": [s]}, {"eval": "x"}) is None  # nothing logged
    assert got["eval"].records == []  # no run directory given: no records
    # the records the interrupted run wrote come back with the figures, so item-by-item gains work after a resume
    write_records(tmp_path / "eval" / "held_out" / "step_0.jsonl", [{"id": "a", "correct": True}])
    got = results_from_metrics(rows, {"eval": [s]}, {"eval": "x"}, tmp_path)
    assert got["eval"].records == [{"id": "a", "correct": True}]
    assert results_from_metrics(rows, {"eval": [s]}, {"eval": "x"}, tmp_path / "none")["eval"].records == []


def test_sft_logs_each_split(tmp_path, tiny_model_dir, count_data):
    from mmrft.data.synthetic import write_dataset
    from mmrft.train.sft import train_sft

    easy = write_dataset("count", 2, tmp_path / "easy", seed=5, difficulty=0)
    hard = write_dataset("count", 2, tmp_path / "hard", seed=6, difficulty=1)
    run = tmp_path / "sft"
    res = train_sft(load_config(None, [
        f"model.path={tiny_model_dir}", f"data.train={count_data['train']}",
        f"data.eval={{id: '{easy}', ood: '{hard}'}}", f"trainer.output_dir={run}", "sft.steps=1",
        "sft.batch_size=2", "sft.warmup_steps=0", "trainer.progress=false", "rollout.max_new_tokens=4"]))
    evals = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in evals if r["phase"] == "eval"]
    assert len(evals) == 1 and {"eval/id/accuracy", "eval/ood/accuracy", "eval/ood/count/reward"} <= set(evals[0])
    assert set(res["eval"]) == {"id/count", "ood/count"}
    for split in ("id", "ood"):
        records = read_records(run / "eval" / "held_out" / split / "step_1.jsonl")
        assert sum(x["correct"] for x in records) / 2 == pytest.approx(evals[0][f"eval/{split}/accuracy"])

"""`mmrft eval` end to end on the tiny model: every adapter's fixture, caching/resume, skipped images, compare."""

import json
from pathlib import Path

import pytest

from mmrft.cli import main
from mmrft.errors import MmrftError
from mmrft.eval.benchmarks import BENCHMARKS, get_benchmark
from mmrft.eval.harness import CACHE_FILE, evaluate_benchmark
from mmrft.rollout.hf import HFRolloutEngine

FIXTURES = Path(__file__).parent.parent / "fixtures" / "benchmarks"
ADAPTERS_WITH_FIXTURES = [n for n in BENCHMARKS.names() if n != "synthetic"]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from mmrft.config import ModelConfig
    from mmrft.models.load import load_policy

    return load_policy(ModelConfig(path=str(tiny_model_dir)))


def test_every_registered_benchmark_has_a_fixture():
    expected = {"mathvista", "mathverse", "mathvision", "mmmu", "mmstar", "geometry3k", "clevr_count",
                "superclevr_count", "refcoco", "refcoco+", "refcocog", "chartqa", "synthetic"}
    assert expected <= set(BENCHMARKS.names())
    for name in ADAPTERS_WITH_FIXTURES:
        assert (FIXTURES / name).is_dir(), name


@pytest.mark.parametrize("name", ADAPTERS_WITH_FIXTURES)
def test_eval_runs_end_to_end_on_each_fixture(tmp_path, tiny_model_dir, tiny, name):
    bench = get_benchmark(name)
    summary = evaluate_benchmark(str(tiny_model_dir), name, str(FIXTURES / name), max_new_tokens=8, batch_size=4,
                                 out_dir=str(tmp_path / "run"), progress=False, model_and_processor=tiny)
    n = len(bench.load(FIXTURES / name, bench.default_split))
    overall = summary["overall"]
    assert overall["n"] == n and overall["n_scored"] + overall["n_skipped"] == n and overall["n_scored"] > 0
    assert 0.0 <= overall["accuracy"] <= 1.0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["meta"]["benchmark"] == name and results["meta"]["deviations"]
    for rec in results["records"]:
        if "skipped" not in rec:
            assert len(rec["completions"]) == 1 and 0.0 <= rec["scores"][0] <= 1.0
    assert set(results["by_category"]) == set(bench.categories)
    assert (tmp_path / "run" / "results.md").read_text().startswith("# ")


@pytest.fixture()
def synth_dir(tmp_path):
    from mmrft.data.synthetic import write_dataset

    return write_dataset("count", 6, tmp_path / "data", seed=3).parent


def test_cache_resumes_and_refuses_another_setup(tmp_path, tiny_model_dir, tiny, synth_dir, monkeypatch):
    out = tmp_path / "run"
    kw = dict(max_new_tokens=6, batch_size=2, out_dir=str(out), progress=False, model_and_processor=tiny)
    first = evaluate_benchmark(str(tiny_model_dir), "synthetic", str(synth_dir), **kw)
    lines = (out / CACHE_FILE).read_text().splitlines()
    assert len(lines) == 1 + 6 and "setup" in json.loads(lines[0])
    # an interrupted run: the last two records gone, the one before torn mid-write
    (out / CACHE_FILE).write_text("\n".join(lines[:4]) + "\n" + lines[4][: len(lines[4]) // 2])
    calls = []
    orig = HFRolloutEngine.sample

    def counting_sample(self, prompts, *a, **k):
        calls.append(len(prompts.samples))
        return orig(self, prompts, *a, **k)

    monkeypatch.setattr(HFRolloutEngine, "sample", counting_sample)
    again = evaluate_benchmark(str(tiny_model_dir), "synthetic", str(synth_dir), **kw)
    assert sum(calls) == 3  # only the torn record and the two missing ones were sampled again
    assert [r["id"] for r in again["records"]] == [r["id"] for r in first["records"]]
    assert again["records"] == first["records"]  # greedy: the same predictions
    assert len((out / CACHE_FILE).read_text().splitlines()) == 1 + 6
    with pytest.raises(MmrftError, match="different setup.*max_new_tokens"):
        evaluate_benchmark(str(tiny_model_dir), "synthetic", str(synth_dir), **{**kw, "max_new_tokens": 7})


def test_missing_and_corrupt_images_are_skipped_and_counted(tmp_path, tiny_model_dir, tiny, synth_dir):
    rows = [json.loads(x) for x in (synth_dir / "data.jsonl").read_text().splitlines()]
    (synth_dir / rows[1]["images"][0]).unlink()
    (synth_dir / rows[4]["images"][0]).write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    summary = evaluate_benchmark(str(tiny_model_dir), "synthetic", str(synth_dir), max_new_tokens=6,
                                 out_dir=str(tmp_path / "run"), progress=False, model_and_processor=tiny)
    assert summary["overall"]["n_skipped"] == 2 and summary["overall"]["n_scored"] == 4
    reasons = {s["id"]: s["reason"] for s in summary["skipped"]}
    assert set(reasons) == {rows[1]["id"], rows[4]["id"]}
    assert "not found" in reasons[rows[1]["id"]] and rows[1]["images"][0].split("/")[-1] in reasons[rows[1]["id"]]
    assert "2 skipped" in (tmp_path / "run" / "results.md").read_text()


def test_cli_eval_samples_and_compare(tmp_path, tiny_model_dir, synth_dir, capsys):
    common = ["--model", str(tiny_model_dir), "--benchmark", "synthetic", "--data", str(synth_dir),
              "--max-new-tokens", "6", "--no-progress"]
    assert main(["eval", *common, "--out", str(tmp_path / "a")]) == 0
    assert main(["eval", *common, "--samples", "4", "--out", str(tmp_path / "b")]) == 0
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    assert b["meta"]["temperature"] == 1.0 and all(len(r["completions"]) == 4 for r in b["records"])
    assert {"pass@1", "pass@2", "pass@4", "majority_accuracy"} <= set(b["overall"])
    assert b["overall"]["pass@1"] <= b["overall"]["pass@2"] <= b["overall"]["pass@4"]
    capsys.readouterr()
    assert main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "6 paired samples" in out and "| overall | 6 |" in out and "| task: count | 6 |" in out
    # bad input: one-line errors naming what is wrong
    assert main(["eval", *common, "--samples", "2", "--temperature", "0"]) == 2
    assert "needs sampling" in capsys.readouterr().err
    assert main(["eval", "--model", str(tiny_model_dir), "--benchmark", "mathvistaa", "--data", "x"]) == 2
    assert "unknown benchmark 'mathvistaa'" in capsys.readouterr().err


def test_training_config_eval_block_scores_benchmarks_during_rl(tmp_path, tiny_model_dir, count_data, monkeypatch):
    from mmrft.config import load_config
    from mmrft.eval.benchmarks.chartqa import ChartQA
    from mmrft.train.rl import train_rl

    reads = []
    real_load = ChartQA.load
    monkeypatch.setattr(ChartQA, "load", lambda self, *a, **k: reads.append(a) or real_load(self, *a, **k))

    cfg = load_config(None, [
        "algorithm.name=dr_grpo", f"model.path={tiny_model_dir}", f"data.train={count_data['train']}",
        f"trainer.output_dir={tmp_path / 'rl'}", "trainer.steps=2", "trainer.eval_every=1", "trainer.progress=false",
        "rollout.group_size=2", "rollout.prompts_per_step=2", "rollout.max_new_tokens=4",
        f"eval.benchmarks=[{{name: chartqa, data: {FIXTURES / 'chartqa'}, limit: 3}}]",
    ])
    train_rl(cfg)
    rows = [json.loads(x) for x in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["phase"] == "eval"]
    assert [r["step"] for r in evals] == [0, 1, 2]
    assert all(0.0 <= r["bench/chartqa/accuracy"] <= 1.0 for r in evals)
    for step in (0, 1, 2):
        res = json.loads((tmp_path / "rl" / "eval" / "chartqa" / f"step_{step}" / "results.json").read_text())
        assert res["overall"]["n"] == 3
    assert len(reads) == 1  # the benchmark's files are parsed once per run, not at every evaluation


def test_training_config_rejects_an_unknown_benchmark(tmp_path, tiny_model_dir, count_data):
    from mmrft.config import load_config
    from mmrft.errors import ConfigError
    from mmrft.train.rl import train_rl

    cfg = load_config(None, [f"model.path={tiny_model_dir}", f"data.train={count_data['train']}",
                             f"trainer.output_dir={tmp_path / 'rl'}", "eval.benchmarks=[{name: chartqaa, data: .}]"])
    with pytest.raises(ConfigError, match=r"eval.benchmarks\[0\].name: unknown benchmark 'chartqaa'"):
        train_rl(cfg)


def test_cli_eval_imports_a_user_adapter(tmp_path, tiny_model_dir, synth_dir, capsys, monkeypatch):
    pkg = tmp_path / "userbench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from mmrft.eval.benchmarks import Judgement, register_benchmark\n"
        "from mmrft.eval.benchmarks.synthetic import Synthetic\n\n"
        "@register_benchmark('always_right')\n"
        "class AlwaysRight(Synthetic):\n"
        "    def judge(self, completion, sample):\n"
        "        return Judgement('x', 1.0)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert main(["eval", "--model", str(tiny_model_dir), "--benchmark", "always_right", "--data", str(synth_dir),
                     "--max-new-tokens", "2", "--no-progress", "--import", "userbench"]) == 0
        assert "always_right: accuracy 100.00 on 6 samples" in capsys.readouterr().out
    finally:
        BENCHMARKS.unregister("always_right")


def test_cli_eval_with_tools_runs_the_multi_turn_loop(tmp_path, tiny_model_dir, capsys, monkeypatch):
    """`mmrft eval --tools zoom_in`: the prompts offer the tool, each answer may call it (a scripted policy stands
    in for a tiny model that does: it zooms on the whole image, then answers), the results count the calls and
    keep each answer's trajectory; the tools are part of the cached setup."""
    import mmrft.eval.harness as harness
    from mmrft.data.synthetic import write_dataset
    from tests.rollout.test_multiturn import ScriptedPolicy

    data = write_dataset("zoom", 4, tmp_path / "zoom", seed=0).parent
    zoom = '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [0, 0, 1000, 1000]}}</tool_call>'
    seen = {}

    def scripted(model, processor):
        seen["policy"] = ScriptedPolicy(processor, [zoom, "<think>looked</think><answer>3</answer>"])
        return seen["policy"]

    monkeypatch.setattr(harness, "HFRolloutEngine", scripted)
    common = ["--model", str(tiny_model_dir), "--benchmark", "synthetic", "--data", str(data), "--no-progress",
              "--max-new-tokens", "256", "--batch-size", "4"]
    assert main(["eval", *common, "--tools", "zoom_in", "--out", str(tmp_path / "run")]) == 0
    assert "1.00 tool calls per answer" in capsys.readouterr().out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["overall"]["tool_calls_per_answer"] == 1.0 and results["overall"]["answers_with_a_call"] == 1.0
    assert results["meta"]["tools"]["tools"] == ["zoom_in"] and results["meta"]["tools"]["max_turns"] == 4
    for rec in results["records"]:
        (t,) = rec["trajectories"]
        assert rec["calls"] == [1] and t["end"] == "answer" and t["images"] == 1
        assert t["calls"][0]["info"] == {"image_index": 0, "pixel_box": [0, 0, 448, 448]}
        assert rec["completions"] == ["<think>looked</think><answer>3</answer>"]
    assert "| tool calls per answer | 1.00 |" in (tmp_path / "run" / "results.md").read_text()
    # the same directory without tools is another setup
    assert main(["eval", *common, "--out", str(tmp_path / "run")]) == 2
    assert "tools" in capsys.readouterr().err


def test_a_benchmark_with_its_own_aggregate_reports_it(tmp_path, tiny_model_dir, tiny):
    """HR-Bench's official number averages over its option cycles: the run stores it beside the plain mean."""
    from mmrft.eval.benchmarks.hrbench import hrbench_report

    summary = evaluate_benchmark(str(tiny_model_dir), "hrbench4k", str(FIXTURES / "hrbench4k"), max_new_tokens=4,
                                 batch_size=4, out_dir=str(tmp_path / "run"), progress=False, model_and_processor=tiny)
    assert summary["official"] == hrbench_report(summary["samples"])
    assert summary["overall"]["official_accuracy"] == summary["official"]["average"]["all"]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "official" in results and "official accuracy" in (tmp_path / "run" / "results.md").read_text()
    vstar = evaluate_benchmark(str(tiny_model_dir), "vstar", str(FIXTURES / "vstar"), max_new_tokens=4,
                               batch_size=4, progress=False, model_and_processor=tiny)
    assert "official" not in vstar and "official_accuracy" not in vstar["overall"]  # the plain mean is official

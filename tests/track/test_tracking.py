"""Tracker backends (JSONL, TensorBoard, W&B, MLflow), metrics truncation on resume, rollout dumps, reports."""

import json
import sys
import types

import pytest

from mmrft.errors import ConfigError
from mmrft.track.metrics import Tracker, read_metrics, truncate_metrics


def _fake(name, calls):
    mod = types.ModuleType(name)

    def rec(fn):
        def f(*a, **k):
            calls.append((fn, a, k))
            return run if fn == "init" else None
        return f

    run = types.SimpleNamespace(log=rec("log"), finish=rec("finish"))
    if name == "wandb":
        mod.init = rec("init")
        mod.util = types.SimpleNamespace(generate_id=lambda: "abc123")
    else:
        for fn in ("set_tracking_uri", "set_experiment", "start_run", "log_params", "log_metrics", "end_run"):
            setattr(mod, fn, rec(fn))
    return mod


def test_jsonl_always_and_non_finite_as_null(tmp_path):
    t = Tracker(tmp_path, tensorboard=False)
    t.log(1, {"reward/mean": 0.5, "loss": float("nan")})
    t.log(2, {"eval/accuracy": 0.75}, "eval")
    t.close()
    assert read_metrics(tmp_path) == [{"step": 1, "phase": "train", "reward/mean": 0.5, "loss": None},
                                      {"step": 2, "phase": "eval", "eval/accuracy": 0.75}]


def test_wandb_and_mlflow_receive_the_metrics(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "wandb", _fake("wandb", calls))
    monkeypatch.setitem(sys.modules, "mlflow", _fake("mlflow", calls))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    t = Tracker(tmp_path / "run", tensorboard=False, wandb=True, mlflow=True, project="p",
                config={"trainer": {"lr": 1e-4}})
    t.log(3, {"reward/mean": 0.5, "lr": 1e-4, "bad": float("inf")})
    t.close()
    by = {fn: (a, k) for fn, a, k in calls}
    assert by["init"][1]["project"] == "p" and by["init"][1]["id"] == "abc123" and by["init"][1]["resume"] == "allow"
    assert (tmp_path / "run" / "wandb_id").read_text() == "abc123"  # a resumed run continues the same W&B run
    assert by["log"] == (({"reward/mean": 0.5, "train/lr": 1e-4},), {"step": 3})
    assert by["set_tracking_uri"][0][0].startswith("file:") and by["set_tracking_uri"][0][0].endswith("/run/mlruns")
    assert by["log_params"][0][0] == {"trainer.lr": "0.0001"}
    assert by["log_metrics"] == (({"reward/mean": 0.5, "train/lr": 1e-4},), {"step": 3})
    assert "finish" in by and "end_run" in by


def test_asking_for_a_missing_backend_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import fails
    with pytest.raises(ConfigError, match="tracking.wandb: true needs the `wandb` package: pip install wandb"):
        Tracker(tmp_path, tensorboard=False, wandb=True)


def test_truncate_metrics_keeps_rows_up_to_the_checkpoint(tmp_path):
    t = Tracker(tmp_path, tensorboard=False)
    for s in range(5):
        t.log(s, {"x": s})
    t.close()
    truncate_metrics(tmp_path, 2)
    assert [r["step"] for r in read_metrics(tmp_path)] == [0, 1, 2]


def _fake_run(tmp_path, with_kl=True):
    run = tmp_path / "run"
    t = Tracker(run, tensorboard=False)
    for s in range(1, 21):
        m = {"reward/mean": s / 20, "accuracy": s / 20, "response_length/mean": 10 + s, "actor/entropy": 1 - s / 40,
             "actor/clip_frac": 0.01 * s}
        if with_kl:
            m["actor/kl"] = 0.001 * s
        t.log(s, m)
        if s % 10 == 0:
            t.log(s, {"eval/accuracy": s / 25}, "eval")
    t.close()
    return run


def test_report_writes_plots_and_a_summary(tmp_path):
    from PIL import Image

    from mmrft.cli import main

    a = _fake_run(tmp_path / "a")
    b = _fake_run(tmp_path / "b", with_kl=False)
    assert main(["report", str(a)]) == 0
    md = (a / "report.md").read_text()
    assert "| reward/mean | 0.05 | 1 |" in md and "| actor/kl |" in md and "![training curves](report.png)" in md
    assert Image.open(a / "report.png").size[0] > 500
    assert main(["report", str(a), str(b), "--out", str(tmp_path / "both")]) == 0
    both = (tmp_path / "both" / "report.md").read_text()
    assert both.count("## ") == 2 and (tmp_path / "both" / "report.png").is_file()
    assert main(["report", str(tmp_path / "nothing")]) == 2

"""Metrics to JSONL, TensorBoard, and optionally Weights & Biases / MLflow."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from mmrft import faults

log = logging.getLogger("mmrft")


class NullTracker:
    """What ranks other than 0 log to: nothing (rank 0 logs the step's metrics combined over ranks)."""

    def log(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


class Tracker:
    """Metrics of a run: `metrics.jsonl` always; TensorBoard, Weights & Biases and MLflow when asked for.

    W&B and MLflow are optional dependencies, imported only when enabled (`tracking.wandb` / `tracking.mlflow`);
    enabling one that is not installed is a ConfigError saying what to install. MLflow logs to
    `MLFLOW_TRACKING_URI` when set, else to `RUN/mlruns`. A W&B run id is kept in `RUN/wandb_id` so a resumed run
    continues the same W&B run.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, purge_step: int | None = None, *,
                 wandb: bool = False, mlflow: bool = False, project: str = "mmrft", run_name: str | None = None,
                 config: dict | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", buffering=1)
        self._tb = self._wandb = self._mlflow = None
        name = run_name or self.run_dir.name
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: a resumed run drops the events an interrupted run wrote after its checkpoint
            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge_step)
        if wandb:
            wb = _optional("wandb", "tracking.wandb")
            id_file = self.run_dir / "wandb_id"
            run_id = id_file.read_text().strip() if id_file.is_file() else wb.util.generate_id()
            id_file.write_text(run_id)
            self._wandb = wb.init(project=project, name=name, id=run_id, resume="allow", dir=str(self.run_dir),
                                  config=config or {})
        if mlflow:
            mf = _optional("mlflow", "tracking.mlflow")
            if not os.environ.get("MLFLOW_TRACKING_URI"):
                mf.set_tracking_uri((self.run_dir / "mlruns").resolve().as_uri())
            mf.set_experiment(project)
            mf.start_run(run_name=name)
            if config:
                mf.log_params({k: str(v)[:250] for k, v in _flatten(config).items()})
            self._mlflow = mf

    def log(self, step: int, metrics: dict[str, float], phase: str = "train") -> None:
        clean = {k: (float(v) if v is not None and math.isfinite(float(v)) else None) for k, v in metrics.items()}
        line = json.dumps({"step": step, "phase": phase, **clean}) + "\n"
        if faults.armed("metrics_append"):  # a test hook (mmrft.faults): die with half the line on disk
            self._jsonl.write(line[: len(line) // 2])
            self._jsonl.flush()
            faults.point("metrics_append")
            line = line[len(line) // 2:]
        self._jsonl.write(line)
        named = {(k if "/" in k else f"{phase}/{k}"): v for k, v in clean.items() if v is not None}
        if self._tb is not None:
            for k, v in named.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(named, step=step)
        if self._mlflow is not None:
            self._mlflow.log_metrics(named, step=step)

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
        if self._mlflow is not None:
            self._mlflow.end_run()


def _optional(module: str, key: str):
    import importlib

    from mmrft.errors import ConfigError

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{key}: true needs the `{module}` package: pip install {module}") from None


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(run_dir: str | Path, last_step: int) -> None:
    """Drop the rows logged after `last_step` (a resumed run logs those steps again), atomically."""
    from mmrft import atomic

    rows = [r for r in read_metrics(run_dir) if r["step"] <= last_step]
    atomic.write_text(Path(run_dir) / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def restore_metrics(run_dir: str | Path, checkpoint: str | Path, last_step: int) -> None:
    """Before a resumed run logs again: the metrics up to `last_step`, from the checkpoint's copy when it has one
    (the run's own file may be gone or torn), else the run's file cut after `last_step`."""
    from mmrft import atomic

    saved = Path(checkpoint) / "metrics.jsonl"
    if saved.is_file():
        atomic.write_text(Path(run_dir) / "metrics.jsonl", saved.read_text())
    truncate_metrics(run_dir, last_step)

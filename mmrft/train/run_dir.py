"""A run's directory: created with its resolved config, never shared by two runs, and the checkpoint a resumed run
continues from."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

from mmrft import atomic
from mmrft.config import Config, config_to_yaml
from mmrft.errors import ConfigError
from mmrft.train.state import latest_checkpoint


def prepare_run_dir(cfg: Config, name: str = "config.yaml", resuming: bool = False) -> Path:
    """Create the run directory and save the resolved config; refuse to mix two runs in one directory.

    A resumed run continues in its own directory (its metrics and checkpoints stay); its config is saved as
    `config.resumed.yaml` beside the original."""
    run_dir = Path(cfg.trainer.output_dir)
    if resuming:
        atomic.write_text(run_dir / name.replace(".yaml", ".resumed.yaml"), config_to_yaml(cfg))
        return run_dir
    if run_dir.exists() and (run_dir / "metrics.jsonl").exists() and not cfg.trainer.overwrite:
        raise ConfigError(
            f"trainer.output_dir: {run_dir} already holds a run; choose another directory, set "
            "trainer.overwrite=true, or continue it with trainer.resume=auto"
        )
    if run_dir.exists() and cfg.trainer.overwrite:
        for f in ("metrics.jsonl",):
            (run_dir / f).unlink(missing_ok=True)
        for d in ["tensorboard", "rollouts", *(p.name for p in run_dir.glob("checkpoint-*"))]:
            shutil.rmtree(run_dir / d, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(run_dir / name, config_to_yaml(cfg))
    return run_dir


def resume_checkpoint(cfg: Config) -> Optional[Path]:
    """The checkpoint `trainer.resume` points at (None: start fresh). `auto` resumes trainer.output_dir when it has
    a valid checkpoint; a run directory given explicitly must have one."""
    resume = cfg.trainer.resume
    if not resume:
        return None
    run = Path(cfg.trainer.output_dir if resume == "auto" else resume)
    ckpt = latest_checkpoint(run) if run.is_dir() else None
    if ckpt is None and resume != "auto":
        raise ConfigError(f"trainer.resume: {run} has no usable checkpoint (checkpoint-<step>/ with a valid manifest)")
    if ckpt is not None and run.resolve() != Path(cfg.trainer.output_dir).resolve():
        raise ConfigError(f"trainer.resume: {run} is not trainer.output_dir ({cfg.trainer.output_dir}); a resumed run "
                          "continues in its own directory: set trainer.output_dir to it")
    return ckpt

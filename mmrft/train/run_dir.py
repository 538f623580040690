"""A run's directory: created with its resolved config, never shared by two runs, and the checkpoint a resumed run
continues from."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Optional

from mmrft import atomic
from mmrft.config import Config, config_to_yaml
from mmrft.errors import ConfigError
from mmrft.train.state import latest_checkpoint

log = logging.getLogger("mmrft")


def prepare_run_dir(cfg: Config, name: str = "config.yaml", resuming: bool = False) -> Path:
    """Create the run directory and save the resolved config; refuse to mix two runs in one directory. Called with the
    directory's lock held (`mmrft.run_lock`).

    A resumed run continues in its own directory (its metrics and checkpoints stay); its config is saved as
    `config.resumed.yaml` beside the original. With `trainer.resume=auto`, a run interrupted before its first usable
    checkpoint (metrics, no checkpoint, no final model) starts again from scratch in its directory."""
    run_dir = Path(cfg.trainer.output_dir)
    if resuming:
        atomic.write_text(run_dir / name.replace(".yaml", ".resumed.yaml"), config_to_yaml(cfg))
        return run_dir
    holds_run = (run_dir / "metrics.jsonl").exists()
    restart = holds_run and cfg.trainer.resume == "auto" and not (run_dir / "final").exists()
    if holds_run and not cfg.trainer.overwrite and not restart:
        raise ConfigError(
            f"trainer.output_dir: {run_dir} already holds a run; choose another directory, set "
            "trainer.overwrite=true, or continue it with trainer.resume=auto"
        )
    if restart and not cfg.trainer.overwrite:
        log.warning("trainer.resume=auto: %s holds a run interrupted before its first usable checkpoint; starting "
                    "it again from step 1", run_dir)
    if run_dir.exists() and (cfg.trainer.overwrite or restart):
        for f in ("metrics.jsonl",):
            (run_dir / f).unlink(missing_ok=True)
        for d in ["tensorboard", "rollouts", "eval", *(p.name for p in run_dir.glob("checkpoint-*"))]:
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

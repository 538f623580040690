"""Dataclass configs, loaded from YAML with dotted command-line overrides.

One `Config` holds every section (their dataclasses are in `mmrft.config_sections`); `mmrft sft` reads
model/data/sft/trainer/eval, `mmrft train` every section, and `mmrft eval --config` model/data/rollout/eval. Each field carries its help text. OmegaConf does the YAML merging
and type checking against the dataclasses (`mmrft.config_layers` turns its errors into one-line messages that name
the key and suggest the closest one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mmrft.config_layers import Layers
from mmrft.config_sections import (  # noqa: F401  (the sections are imported from here)
    AlgorithmConfig, BenchmarkEvalConfig, CriticConfig, DataConfig, EvalConfig, HealthConfig, LoraConfig,
    ModelConfig, RewardsConfig, RolloutConfig, SFTConfig, TrackingConfig, TrainerConfig, _help,
)
from mmrft.errors import ConfigError
from mmrft.presets import apply_preset


@dataclass
class Config:
    imports: list[str] = _help(
        "Python modules imported first (by the reward worker processes too), to register your own estimators, "
        "losses, aggregations, rewards, tasks or benchmarks", factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    rewards: RewardsConfig = field(default_factory=RewardsConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    health: HealthConfig = field(default_factory=HealthConfig)


# Keys that were renamed or removed, and what to write instead.
RENAMED = {
    "algorithm.normalize_std": "algorithm.whiten_advantages (whitening after any estimator, PPO's GAE whitening); "
                               "GRPO without the std division is algorithm.advantage=dr_grpo",
    "rollout.eval_batch_size": "eval.batch_size (one batch size for every evaluation)",
}


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults <- algorithm preset <- YAML file <- `key.sub=value` overrides, type-checked against the dataclasses.

    The preset (`mmrft.presets.PRESETS[algorithm.name]`) fills in the published knobs of the chosen method; the
    name is taken from the overrides, else the YAML file, else the default `grpo`. Any knob set in the file or
    on the command line wins over the preset, so `algorithm.name=dapo` switches exactly the knobs not set
    explicitly. A resolved config saved with `config_to_yaml` sets every knob, so it reloads unchanged.
    """
    layers = Layers(Config, RENAMED)
    path = Path(path) if path is not None else None
    file_cfg = layers.read_file(path) if path is not None else None
    # First pass without a preset: validates the user's layers (errors name the key) and resolves
    # algorithm.name with the right precedence (command line > file > default).
    user_only = layers.merge(OmegaConf.structured(Config), file_cfg, path, overrides)
    try:
        name = user_only.algorithm.name
    except OmegaConfBaseException as e:
        raise layers.explain(e, "algorithm.name") from None
    # Second pass: the same user layers on top of the preset.
    try:
        base = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(apply_preset(name)))
    except OmegaConfBaseException as e:  # a broken preset is a bug, but say which one
        raise layers.explain(e, f"algorithm preset {name!r}") from None
    base = layers.merge(base, file_cfg, path, overrides)
    cfg: Config = OmegaConf.to_object(base)  # type: ignore[assignment]
    eval_splits(cfg)  # a bad data.eval fails here, naming the key
    return cfg


DEFAULT_EVAL_SPLIT = "eval"  # the name of the one split `data.eval: PATH` gives
_SPLIT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def eval_splits(cfg: Config) -> dict[str, str]:
    """`data.eval` as split name -> path, in the order given: {} when unset; a path: {"eval": path}; a mapping
    split name -> path as it is. The one place `data.eval` is read. Split names are identifiers (they become
    metric names, `eval/<split>/accuracy`); anything else is a ConfigError naming `data.eval`."""
    value = cfg.data.eval
    expected = "a path or a mapping of split name -> path (e.g. {id: data/test, ood: data/ood-test})"
    if value is None or value == "":
        return {}
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # a path that YAML read as a number
        value = str(value)
    if isinstance(value, str):
        return {DEFAULT_EVAL_SPLIT: value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"data.eval: expected {expected}, got {type(value).__name__} {value!r}")
    if not value:
        raise ConfigError(f"data.eval: an empty mapping; expected {expected}")
    out: dict[str, str] = {}
    for name, path in value.items():
        if not isinstance(name, str) or not _SPLIT_NAME.match(name):
            raise ConfigError(f"data.eval: split name {name!r} is not a simple identifier (letters, digits, _; "
                              f"not starting with a digit); expected {expected}")
        if isinstance(path, (int, float)) and not isinstance(path, bool):
            path = str(path)
        if not isinstance(path, str) or not path:
            raise ConfigError(f"data.eval.{name}: expected a path (a string), got {path!r}")
        out[name] = path
    return out


def eval_split_prefix(name: str, splits: Mapping[str, str]) -> str:
    """The metric prefix of split `name`: `eval` for the one split of `data.eval: PATH` (the metric names of every
    single-split run: eval/accuracy, eval/<task>/accuracy), else `eval/<name>`."""
    return "eval" if list(splits) == [DEFAULT_EVAL_SPLIT] else f"eval/{name}"


def import_plugins(cfg: Config) -> None:
    """Import the modules named in `imports` (they register their entries on import)."""
    import importlib

    for name in cfg.imports:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ConfigError(f"imports: cannot import {name!r}: {e}") from None


def algorithm_knobs(algo: AlgorithmConfig) -> dict[str, Any]:
    """The `algorithm.*` settings by name, for `mmrft.algorithms.options_for`."""
    return {f.name: getattr(algo, f.name) for f in fields(algo)}


def eval_budget(cfg: Config) -> tuple[int, int]:
    """(max new tokens, batch size) of every evaluation: `eval.max_new_tokens` (else `rollout.max_new_tokens`) and
    `eval.batch_size`. The one place they are decided, for evaluation during training and `mmrft eval` alike."""
    return cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens, cfg.eval.batch_size


def config_to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))

"""Putting a user's YAML file and `key.sub=value` overrides on top of a dataclass config schema with OmegaConf, with
errors that name the key (and its place in a list), suggest the closest known key, and say what replaced a renamed
one; a mapping written whole replaces the default mapping instead of being merged into it key by key.

`mmrft.config.load_config` is the user of this module; it holds the schema (`Config`) and the renamed keys.
"""

from __future__ import annotations

import difflib
import re
import typing
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from mmrft.errors import ConfigError


def known_keys(cls, prefix: str = "") -> list[str]:
    """Every dotted key of the dataclass `cls`, nested sections included."""
    keys = []
    for f in fields(cls):
        path = f"{prefix}{f.name}"
        keys.append(path)
        sub = f.default_factory() if f.default_factory is not MISSING and callable(f.default_factory) else None  # type: ignore[misc]
        if is_dataclass(sub):
            keys.extend(known_keys(type(sub), path + "."))
    return keys


def _fields_where(cls, keep, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, type hint) of the fields of `cls` (nested dataclasses searched) whose hint `keep` accepts."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        hint = hints[f.name]
        if keep(hint):
            out.append((prefix + f.name, hint))
        elif is_dataclass(hint):
            out.extend(_fields_where(hint, keep, f"{prefix}{f.name}."))
    return out


def list_fields(cls) -> list[tuple[str, type]]:
    """(dotted path, item dataclass) of every list-of-dataclasses field, e.g. ("eval.benchmarks", BenchmarkEvalConfig)."""
    def is_list(hint) -> bool:
        args = typing.get_args(hint)
        return typing.get_origin(hint) is list and bool(args) and is_dataclass(args[0])

    return [(path, typing.get_args(hint)[0]) for path, hint in _fields_where(cls, is_list)]


def dict_fields(cls) -> list[str]:
    """Dotted paths of the dict-valued fields (e.g. "rewards.weights")."""
    return [path for path, _ in _fields_where(cls, lambda hint: typing.get_origin(hint) is dict)]


class Layers:
    """Merges user layers onto configs of the dataclass `schema`; `renamed` maps old dotted keys to what to write
    instead."""

    def __init__(self, schema, renamed: Mapping[str, str] | None = None) -> None:
        self.schema, self.renamed = schema, dict(renamed or {})
        self.dicts = dict_fields(schema)

    def explain(self, err: OmegaConfBaseException, origin: str, user: Any = None) -> ConfigError:
        """One line naming `origin` (a file, an override), the key and what is wrong with it."""
        key = self._locate_in_list(err, user, getattr(err, "full_key", None) or "")
        if isinstance(err, ConfigKeyError):
            if key in self.renamed:
                return ConfigError(f"{origin}: '{key}' is gone: use {self.renamed[key]}")
            match = difflib.get_close_matches(key, known_keys(self.schema), n=1, cutoff=0.6)
            hint = f" (did you mean '{match[0]}'?)" if match else ""
            return ConfigError(f"{origin}: unknown key '{key}'{hint}")
        if isinstance(err, ValidationError):
            return ConfigError(f"{origin}: bad value for '{key}': {str(err).splitlines()[0]}")
        return ConfigError(f"{origin}: {str(err).splitlines()[0]}")

    def _locate_in_list(self, err: OmegaConfBaseException, user: Any, key: str) -> str:
        """OmegaConf reports a bad field inside a list item without its path ('limit'); find it in the user's layer
        ('eval.benchmarks[0].limit') by the item type and the offending value."""
        if "." in key or user is None:
            return key
        item_type = getattr(err, "object_type", None)
        bad = re.search(r"Value '(.*?)' of type", str(err))
        for path, cls in list_fields(self.schema):
            if cls is not item_type:
                continue
            items = OmegaConf.select(user, path, default=None) if isinstance(user, DictConfig) else None
            for i, item in enumerate(items or []):
                if isinstance(item, DictConfig) and key in item and (bad is None or str(item[key]) == bad.group(1)):
                    return f"{path}[{i}].{key}"
        return key

    @staticmethod
    def _replace_dicts(base, layer, paths: list[str]):
        """A dict the user writes replaces the default one instead of being merged into it key by key (OmegaConf's
        merge), so `rewards.weights: {format: 1.0}` means exactly that reward, not `format` beside the default
        `task`."""
        for path in paths:
            value = OmegaConf.select(layer, path, default=None)
            if value is not None:
                OmegaConf.update(base, path, OmegaConf.to_container(value), merge=False)
        return base

    def merge(self, base, file_cfg, path: Path | None, overrides) -> Any:
        """`base` <- the YAML file's mapping <- each `key.sub=value` override, errors naming the key and its origin.
        A dict given whole (in the file, or as `rewards.weights={...}`) replaces the default dict; `key.sub.name=v`
        sets one entry of it."""
        if file_cfg is not None:
            try:
                base = self._replace_dicts(OmegaConf.merge(base, file_cfg), file_cfg, self.dicts)
            except OmegaConfBaseException as e:
                raise self.explain(e, str(path), file_cfg) from None
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r}: expected key.sub=value")
            try:
                layer = OmegaConf.from_dotlist([item])
                whole = [p for p in self.dicts if item.startswith(p + "=")]
                base = self._replace_dicts(OmegaConf.merge(base, layer), layer, whole)
            except OmegaConfBaseException as e:
                raise self.explain(e, f"override {item!r}") from None
        return base

    def read_file(self, path: Path):
        """The YAML file at `path` as an OmegaConf mapping; errors name the file."""
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(raw).__name__}")
        try:
            return OmegaConf.create(raw)
        except OmegaConfBaseException as e:
            raise self.explain(e, str(path)) from None

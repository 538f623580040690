"""`Registry`: the one name -> entry mapping behind every extension point of mmrft.

Advantage estimators, policy losses, loss aggregations, KL estimators, rewards, synthetic tasks, model families,
benchmarks and rollout engines are each a `Registry`. A user adds an entry with the decorator and selects it by name
in a config; a module named in the config's `imports:` can do that without editing mmrft:

    from mmrft.algorithms import ADVANTAGE_ESTIMATORS

    @ADVANTAGE_ESTIMATORS.register("my_estimator")
    def my_estimator(rewards, group_ids, mask): ...

A `Registry` is a read-only `Mapping`: `REG["name"]`, `"name" in REG`, `list(REG)` (sorted names), `REG.items()`.
A lookup of an unknown name raises `KeyError` listing the known names. Entries may carry facts the trainer needs
about them (`REG.register("grpo", needs_groups=True)`, read with `REG.info("grpo")`), so that no trainer code
keeps its own list of names.

This module imports nothing from the rest of mmrft, so every layer may use it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry"]


def _same_entry(a: object, b: object) -> bool:
    # A module imported twice (by path and by package name, or re-imported in a worker) registers an equivalent
    # object again: not a conflict.
    qualname = getattr(a, "__qualname__", None)  # functions and classes; instances have none
    return a is b or (
        qualname is not None
        and qualname == getattr(b, "__qualname__", None)
        and getattr(a, "__module__", None) == getattr(b, "__module__", None)
    )


class Registry(Mapping[str, T], Generic[T]):
    """Names -> entries of one kind (`kind` names it in error messages).

    Args:
        kind: what an entry is, e.g. "advantage estimator".
        builtin_modules: modules imported on the first lookup that misses (or on listing), so that importing the
            registry alone is enough to find the built-in entries they register.
        import_paths: also accept `"some.module:attribute"` names, imported and registered under that exact
            string on first use.
    """

    def __init__(self, kind: str, *, builtin_modules: Iterable[str] = (), import_paths: bool = False) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._info: dict[str, dict[str, Any]] = {}
        self._builtin_modules = tuple(builtin_modules)
        self._builtins_loaded = not self._builtin_modules
        self._import_paths = import_paths
        self._lock = threading.RLock()

    # -- adding entries ----------------------------------------------------------------------------------------

    def register(self, name: str, *, override: bool = False, **info: Any) -> Callable[[T], T]:
        """Decorator registering its argument under `name` and returning it unchanged; `info` is kept for
        `info(name)`. A *different* entry under a taken name raises `ValueError` unless `override=True`, because
        silently shadowing a built-in would change results without a word."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def decorator(entry: T) -> T:
            self.add(name, entry, override=override, **info)
            return entry

        return decorator

    def add(self, name: str, entry: T, *, override: bool = False, **info: Any) -> T:
        """Register `entry` under `name` (the non-decorator form of `register`)."""
        with self._lock:
            old = self._entries.get(name)
            if old is not None and not override and not _same_entry(old, entry):
                raise ValueError(f"{self.kind} {name!r} is already registered ({_describe(old)}); pass "
                                 "override=True to replace it")
            self._entries[name] = entry
            self._info[name] = dict(info)
        return entry

    def unregister(self, name: str) -> None:
        """Remove `name` (for tests that register temporary entries)."""
        with self._lock:
            self[name]
            del self._entries[name]
            self._info.pop(name, None)

    # -- lookups ---------------------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> T:
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None:
                return entry
            if self._import_paths and isinstance(name, str) and ":" in name:
                return self.add(name, _import_attribute(name, self.kind))
            if not self._builtins_loaded:
                self._load_builtins()
                if name in self._entries:
                    return self._entries[name]
            known = ", ".join(self.names()) or "<none>"
            hint = " (or 'some.module:attribute')" if self._import_paths else ""
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}{hint}")

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """`Mapping.get`: the entry, or `default` for an unknown name."""
        try:
            return self[name]
        except KeyError:
            return default

    def info(self, name: str) -> dict[str, Any]:
        """The facts registered with `name` (empty when none were given)."""
        self[name]
        return dict(self._info.get(name, {}))

    def names(self) -> list[str]:
        """Sorted registered names (built-in modules loaded first)."""
        with self._lock:
            self._load_builtins()
            return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        with self._lock:
            if name in self._entries:
                return True
            self._load_builtins()
            return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"

    def _load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True  # before importing: the modules register into this registry
        for module in self._builtin_modules:
            importlib.import_module(module)


def _describe(entry: object) -> str:
    return f"{getattr(entry, '__module__', '?')}.{getattr(entry, '__qualname__', type(entry).__name__)}"


def _import_attribute(ref: str, kind: str) -> Any:
    """`"pkg.module:attr.sub"` -> that object; `KeyError` saying what is wrong with the reference."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise KeyError(f"bad {kind} reference {ref!r}: expected 'some.module:attribute'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise KeyError(f"cannot import module {module_name!r} for {kind} {ref!r}: {e}") from e
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise KeyError(f"module {module_name!r} has no attribute {attr!r} ({kind} {ref!r})") from None
    if not callable(obj):
        raise KeyError(f"{kind} {ref!r} resolved to a non-callable {type(obj).__name__}")
    return obj
